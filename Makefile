# The two commands of the README, and helpers.
.PHONY: up test images crds chart-docs fmt mutants fuzz soak ceiling bench-build

up:    ## bring up the local environment (control plane + CRDs + example), Ctrl-C to stop
	bash scripts/local-up.sh

test:  ## every check and test, installing what is missing
	bash scripts/test-all.sh

images:  ## static binaries and OCI image tarballs in target/images (wfe-controller, wfe-webhook), no daemon
	bash scripts/build-images.sh

mutants:  ## mutation testing of the pure crates; FILES='glob ...' for a subset, BASE=rev for only what changed since it
	FILES='$(FILES)' BASE='$(BASE)' bash scripts/mutants.sh

crds:  ## regenerate the CRD and the webhooks' match conditions in the Helm chart
	cargo run --quiet -p wfe-shared --bin crdgen

chart-docs:  ## regenerate the README's configuration table from the chart's values.yaml
	cargo run --quiet -p wfe-tools --bin chart-docs

fmt:
	cargo fmt --all

fuzz:  ## fuzz every target for FUZZ_SECONDS (default 600) each, TARGETS='admission ...' for some; grows and minimises fuzz/corpus
	TARGETS='$(TARGETS)' FUZZ_SECONDS='$(FUZZ_SECONDS)' bash scripts/fuzz.sh

# The control plane's binaries and the release controller and benchmark, for the two below.
bench-build:
	bash scripts/build-control-plane.sh >/dev/null
	cargo build --release -p wfe-controller -p wfe-tools --bin wfe-controller --bin controller-bench

soak: bench-build  ## the soak of docs/reliability.md: 10 executions/s for SOAK_MINUTES (default 30), memory, descriptors, tasks
	target/release/controller-bench --soak-minutes $(or $(SOAK_MINUTES),30)

ceiling: bench-build  ## the controller's executions/s against a minimal client's, same requests, same control plane (docs/benchmarks.md)
	target/release/controller-bench --executions 1000 --idle-seconds 1 --ceiling
