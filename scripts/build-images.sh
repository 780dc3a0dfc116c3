#!/usr/bin/env bash
# Builds both binaries static and assembles an OCI image for each, from scratch and without a
# container daemon: one layer (the binary and the CA bundle), user 65532, no shell.
#   target/images/wfe-controller.oci.tar, target/images/wfe-webhook.oci.tar  (OCI image layouts, tarred)
# crane (go-containerregistry, built from its Go module by build-control-plane.sh) assembles them
# in a registry it serves on localhost for the duration of the build.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${IMAGE_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/workflowexecution-operator/Chart.yaml)}
OUT=${IMAGES_DIR:-target/images}
TRIPLE=x86_64-unknown-linux-gnu
log() { printf '[images] %s\n' "$*" >&2; }

cache=$(bash scripts/build-control-plane.sh)
crane="$cache/crane-v${CRANE_VERSION:-0.22.1}/crane"

log "building wfe-controller and wfe-webhook static (release, $TRIPLE)"
# --target keeps the static flag off build scripts and proc macros, which must stay dynamic.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TRIPLE" \
  -p wfe-controller -p wfe-webhook >&2

work=$(mktemp -d)
registry_pid=""
cleanup() { [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -f $ca_bundle ]] || { log "missing $ca_bundle (Debian package ca-certificates)"; exit 1; }

mkdir -p "$OUT"
for bin in wfe-controller wfe-webhook; do
  root="$work/$bin/root"
  mkdir -p "$root/etc/ssl/certs"
  install -m 0755 "target/$TRIPLE/release/$bin" "$root/$bin"
  # The system's CAs, for an HTTPS audit endpoint signed by a public CA.
  install -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
  # Reproducible layer: sorted, owned by root, fixed times.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/$bin/layer.tar" "$bin" etc
  ref="127.0.0.1:$port/$bin:$TAG"
  "$crane" append --insecure --oci-empty-base -f "$work/$bin/layer.tar" -t "$ref" >/dev/null
  "$crane" mutate --insecure "$ref" -t "$ref" \
    --set-platform linux/amd64 --entrypoint "/$bin" --user 65532:65532 --workdir / \
    -l org.opencontainers.image.title="$bin" \
    -l org.opencontainers.image.version="$TAG" \
    -l org.opencontainers.image.source=charts/workflowexecution-operator >/dev/null
  rm -rf "$work/$bin/layout"
  "$crane" pull --insecure --format=oci "$ref" "$work/$bin/layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/$bin/layout" \
    -cf "$OUT/$bin.oci.tar" .
  size=$(du -k "$OUT/$bin.oci.tar" | cut -f1)
  log "$OUT/$bin.oci.tar ($size KiB; $("$crane" digest --insecure "$ref"))"
done
