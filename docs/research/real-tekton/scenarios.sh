#!/usr/bin/env bash
# Pushes one bundle per outcome and runs a PipelineRun for each against the env of up.sh; prints what Tekton wrote.
set -euo pipefail
R=/tmp/tekton-research; DIR=${DIR:-$R/run/state}; REG=127.0.0.1:${REG_PORT:-24500}
KUBECTL="/root/.cache/wfe-testbin/kubectl-v1.36.4/kubectl --kubeconfig=$DIR/kubeconfig"
cd $R/bundles && python3 gen.py $REG
for o in ok exit1 oom pull-fail hang; do $R/bin/tekton-bundle-push $REG/wf/$o:v1 $o.yaml >/dev/null; done
pr() { # name outcome [pipeline-timeout]
  cat <<YAML | $KUBECTL apply -f - >/dev/null
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: $1, namespace: default}
spec:
  pipelineRef:
    resolver: bundles
    params:
    - {name: bundle, value: "$REG/wf/$2:v1"}
    - {name: name, value: wf}
    - {name: kind, value: pipeline}
  params: [{name: greeting, value: hi}]
  timeouts: {pipeline: ${3:-10m}}
YAML
}
start=$(date +%s)
pr s-ok ok; pr s-exit1 exit1; pr s-oom oom; pr s-pull pull-fail; pr s-hang hang 20s; pr s-missing no-such-bundle; pr s-delete hang
sleep 5; $KUBECTL delete pipelinerun s-delete --wait=false >/dev/null
for pr in s-ok s-exit1 s-oom s-pull s-hang s-missing; do
  until [[ $($KUBECTL get pipelinerun $pr -o jsonpath='{.status.conditions[0].status}') =~ True|False ]]; do sleep 0.5; done
  echo "== $pr done after $(( $(date +%s) - start ))s"
  $KUBECTL get pipelinerun $pr -o jsonpath='  PR {.status.conditions[0].reason}: {.status.conditions[0].message}{"\n"}'
  for tr in $($KUBECTL get taskrun -l tekton.dev/pipelineRun=$pr -o name); do
    $KUBECTL get $tr -o json | python3 -c '
import json,sys; o=json.load(sys.stdin); s=o["status"]; c=s["conditions"][0]
print("  TR %s %s: %s" % (o["metadata"]["name"], c["reason"], c["message"]))
for st in s.get("steps",[]):
    k=[x for x in ("terminated","running","waiting") if x in st][0]; v=st[k]
    print("     step %-8s %s exit=%s reason=%s terminationReason=%s" % (st["name"], k, v.get("exitCode","-"), v.get("reason","-"), st.get("terminationReason","-")))'
  done
done
echo "== s-delete: $($KUBECTL get pipelinerun,taskrun,pod --no-headers 2>/dev/null | grep -c s-delete || true) objects left"
$KUBECTL get pod -o wide
