#!/usr/bin/env bash
# Brings up, from nothing, in $DIR (default /tmp/tekton-research/run/state):
#   etcd + kube-apiserver v1.36.4, Tekton CRDs (conversion None + ResolutionRequest status `required` dropped),
#   Tekton v1.15.0 ConfigMaps, tekton controller + resolvers, kube-scheduler, kube-controller-manager (GC only),
#   KWOK with /tmp/tekton-research/kwok/kwok.yaml, one fake node, crane registry on 127.0.0.1:$REG_PORT.
# Ports: 24379/24380 etcd, 24443 apiserver, 24500 registry, 24080/24081 probes, 24008/24009 pprof,
#        24090/24091 metrics, 24259 scheduler, 24257 kcm. (sharedmain also binds :8080 — hardcoded.)
set -euo pipefail
R=/tmp/tekton-research; TB=/root/.cache/wfe-testbin; BIN=$R/bin
DIR=${DIR:-$R/run/state}; REG_PORT=${REG_PORT:-24500}
P=/root/go/pkg/mod/github.com/tektoncd/pipeline@v1.15.0/config
rm -rf "$DIR"; mkdir -p "$DIR"/{pids,logs,home}; cd "$DIR"
KUBECTL="$TB/kubectl-v1.36.4/kubectl --kubeconfig=$DIR/kubeconfig"
bg() { local name=$1; shift; "$@" > "logs/$name.log" 2>&1 & echo $! > "pids/$name"; }
t0=$(date +%s.%N); el() { printf '[%5.1fs] %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$*"; }

openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
echo 'admintoken,admin,admin,system:masters' > tokens.csv
cat > kubeconfig <<KC
apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "https://127.0.0.1:24443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: admintoken}}]
contexts: [{name: t, context: {cluster: t, user: admin, namespace: default}}]
current-context: t
KC
bg etcd $TB/etcd-v3.6.14/etcd --name=t --data-dir=$DIR/etcd --listen-client-urls=http://127.0.0.1:24379 \
  --advertise-client-urls=http://127.0.0.1:24379 --listen-peer-urls=http://127.0.0.1:24380 \
  --initial-advertise-peer-urls=http://127.0.0.1:24380 --initial-cluster=t=http://127.0.0.1:24380 --unsafe-no-fsync=true --log-level=warn
bg kube-apiserver $TB/kube-apiserver-v1.36.4/kube-apiserver --etcd-servers=http://127.0.0.1:24379 --secure-port=24443 \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --cert-dir=$DIR/apiserver-certs --token-auth-file=$DIR/tokens.csv \
  --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true --disable-admission-plugins=ServiceAccount \
  --service-account-issuer=https://127.0.0.1:24443/ --service-account-key-file=$DIR/sa.pub --service-account-signing-key-file=$DIR/sa.key \
  --endpoint-reconciler-type=none --profiling=false
bg registry $TB/crane-v0.22.1/crane registry serve --address 127.0.0.1:$REG_PORT
until $KUBECTL get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done; el "apiserver ready"

# Tekton CRDs as cached by the project (conversion: None), plus: drop the `required` lists of
# ResolutionRequest .status (data/refSource/source) — otherwise a failed resolution can never be recorded.
mkdir -p crds; cp $TB/tekton-crds-v1.15.0/*.yaml crds/
python3 - crds/300-resolutionrequest.yaml <<'PY'
import re,sys
p=sys.argv[1]; s=open(p).read()
s,n=re.subn(r"(?m)^(\s+)required:\n(?:\1  - (?:data|refSource|source)\n)+","",s); assert n==2,n
open(p,"w").write(s)
PY
$KUBECTL apply -f crds/ >/dev/null
$KUBECTL wait --for=condition=Established crd --all --timeout=60s >/dev/null; el "CRDs established"

$KUBECTL create namespace tekton-pipelines >/dev/null; $KUBECTL create namespace tekton-pipelines-resolvers >/dev/null
for f in config-defaults config-feature-flags config-events config-spire config-tracing config-wait-exponential-backoff \
         config-observability config-logging config-leader-election-controller config-registry-cert; do
  $KUBECTL apply -f $P/$f.yaml >/dev/null; done
for f in bundleresolver-config cluster-resolver-config config-feature-flags git-resolver-config http-resolver-config \
         hubresolver-config resolver-cache-config config-observability config-logging config-leader-election; do
  $KUBECTL apply -f $P/resolvers/$f.yaml >/dev/null; done
el "ConfigMaps applied"

IMG=example.local/tekton
bg tekton-controller env SYSTEM_NAMESPACE=tekton-pipelines KUBECONFIG=$DIR/kubeconfig PROBES_PORT=24080 PROFILING_PORT=24008 \
  METRICS_PROMETHEUS_PORT=24090 METRICS_DOMAIN=tekton.dev/pipeline \
  $BIN/tekton-controller -disable-ha -entrypoint-image=$IMG/entrypoint:v1.15.0 -nop-image=$IMG/nop:v1.15.0 \
  -sidecarlogresults-image=$IMG/sidecarlogresults:v1.15.0 -workingdirinit-image=$IMG/workingdirinit:v1.15.0 \
  -shell-image=$IMG/busybox:latest -shell-image-win=$IMG/powershell:latest
bg tekton-resolvers env SYSTEM_NAMESPACE=tekton-pipelines-resolvers KUBECONFIG=$DIR/kubeconfig PROBES_PORT=24081 PROFILING_PORT=24009 \
  METRICS_PROMETHEUS_PORT=24091 METRICS_DOMAIN=tekton.dev/resolution CONFIG_LEADERELECTION_NAME=config-leader-election-resolvers \
  $BIN/tekton-resolvers
bg kube-scheduler $BIN/kube-scheduler --kubeconfig=$DIR/kubeconfig --authentication-kubeconfig=$DIR/kubeconfig \
  --authorization-kubeconfig=$DIR/kubeconfig --authentication-skip-lookup=true --leader-elect=false --secure-port=24259 --bind-address=127.0.0.1
bg kube-controller-manager $BIN/kube-controller-manager --kubeconfig=$DIR/kubeconfig --authentication-kubeconfig=$DIR/kubeconfig \
  --authorization-kubeconfig=$DIR/kubeconfig --authentication-skip-lookup=true --controllers=garbagecollector --leader-elect=false \
  --secure-port=24257 --bind-address=127.0.0.1
bg kwok env HOME=$DIR/home $BIN/kwok --kubeconfig=$DIR/kubeconfig --config=$R/kwok/kwok.yaml \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake --node-ip=10.99.0.1 --cidr=10.244.0.0/16

$KUBECTL apply -f $R/manifests/node.yaml >/dev/null
until [[ $($KUBECTL get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]; do sleep 0.2; done
# TaintNodesByCondition admission put node.kubernetes.io/not-ready:NoSchedule on the new Node; no node
# lifecycle controller runs here to lift it.
$KUBECTL taint nodes kwok-node-0 node.kubernetes.io/not-ready:NoSchedule- >/dev/null
el "fake node Ready and untainted"
until grep -q "Starting controllers" logs/tekton-controller.log && grep -q "Starting controllers" logs/tekton-resolvers.log; do sleep 0.2; done
el "tekton controller + resolvers started"
$KUBECTL create serviceaccount default >/dev/null   # no ServiceAccount controller: Tekton's credsInit needs it
el "up"
