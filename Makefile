# The two commands of the README, and helpers.
.PHONY: up test crds fmt

up:    ## bring up the local environment (control plane + CRDs + example), Ctrl-C to stop
	bash scripts/local-up.sh

test:  ## every check and test, installing what is missing
	bash scripts/test-all.sh

crds:  ## regenerate the CRD in the Helm chart
	cargo run --quiet -p wfe-shared --bin crdgen

fmt:
	cargo fmt --all
