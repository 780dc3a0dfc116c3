#!/usr/bin/env bash
# Stops what up.sh started (by pid file), newest first; SIGKILL after 5 s.
DIR=${DIR:-/tmp/tekton-research/run/state}
for n in kwok kube-controller-manager kube-scheduler tekton-resolvers tekton-controller registry kube-apiserver etcd; do
  f=$DIR/pids/$n; [[ -f $f ]] || continue; pid=$(cat $f); kill $pid 2>/dev/null && echo "stopped $n ($pid)"
  for i in $(seq 1 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -0 $pid 2>/dev/null && kill -9 $pid && echo "  (SIGKILL $n)"
  rm -f $f
done
