#!/usr/bin/env bash
# Mirrors build_apiserver in /work/main/scripts/build-control-plane.sh, for cmd/kube-scheduler.
set -euo pipefail
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
K8S_VERSION=1.36.4
minor=36
cd "$(dirname "$0")"
rm -f go.mod go.sum
go mod init example.local/k8sbins 2>/dev/null
upstream=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$upstream"); do
  go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
done
go mod edit -tool=k8s.io/kubernetes/cmd/kube-scheduler
go mod tidy
ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
time go build -p 1 -trimpath -ldflags "$ld" -o /tmp/tekton-research/bin/kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
