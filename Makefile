.PHONY: demo test lint bench

# Installs cti-bridge into .venv and runs the demo: simulated PBX, daemon, web screens.
demo:
	./scripts/bootstrap
	.venv/bin/cti-bridge demo

# Installs everything the tests need and runs the whole suite (what CI runs).
test:
	./scripts/test

lint:
	./scripts/bootstrap test
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

# The benchmarks' own environment (peers: panoramisk, pyst2); then e.g.
# bench/.venv/bin/python bench/ami_parse.py  (see bench/README.md)
bench:
	./bench/setup
