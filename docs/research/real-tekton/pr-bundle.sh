#!/usr/bin/env bash
# pr-bundle.sh NAME OUTCOME [TIMEOUT] : PipelineRun resolving Pipeline "wf" from bundle 127.0.0.1:24500/wf/OUTCOME:v1
name=$1 o=$2 timeout=${3:-}
cat <<YAML
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: $name
  namespace: default
spec:
  pipelineRef:
    resolver: bundles
    params:
    - {name: bundle, value: "127.0.0.1:24500/wf/$o:v1"}
    - {name: name, value: wf}
    - {name: kind, value: pipeline}
  params:
  - {name: greeting, value: hi}
$( [[ -n $timeout ]] && printf '  timeouts:\n    pipeline: %s\n' "$timeout" )
YAML
