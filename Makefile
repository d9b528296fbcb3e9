# modelops: `make help` lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST := $(PY) -m pytest
DEVCLUSTER_DIR ?= $(HOME)/.cache/modelops/devcluster

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

setup: ## Install Debian packages, the venv, the pinned Kubernetes binaries and the node's (idempotent)
	bash tools/setup.sh --node

image: setup ## Build the serving and operator images (offline-capable)
	bash tools/image/build.sh

test: setup image ## Run every test tier that this machine can run (the CI command)
	$(PYTEST) tests -p no:cacheprovider

test-unit: ## Unit tests only (no cluster, no Docker)
	$(PYTEST) tests/unit

test-cluster: setup ## Tests against the real control plane
	$(PYTEST) tests/cluster

test-gitops: setup ## Flux and Argo CD, built from their Go modules, against the real control plane
	$(PYTEST) tests/gitops

cluster-up: setup ## Start the local control plane; prints KUBECONFIG=<path> last
	$(PY) -m modelops.devcluster up --dir $(DEVCLUSTER_DIR)

cluster-down: ## Stop the local control plane started by cluster-up
	$(PY) -m modelops.devcluster down --dir $(DEVCLUSTER_DIR)

run: setup image ## The main job: local cluster, operator, the example models and pipeline
	bash tools/run.sh

bench-serving: setup ## Serving throughput vs MLServer and KServe (wrk), prints ratios
	$(PY) bench/serving.py

bench-shadow: setup ## Users' answers with shadow traffic off / on / to a hanging candidate (wrk), ratios
	$(PY) bench/shadow.py

bench-scale: setup ## Operator convergence with 100/300/1000 Models
	$(PY) bench/scale.py

bench-rollback: setup ## Time from first failing request to rollback
	$(PY) bench/rollback.py

e2e: setup image ## End to end on kind (the host node where kind cannot run): tests/e2e
	$(PYTEST) tests/e2e -p no:cacheprovider

.PHONY: help setup image test test-unit test-cluster test-gitops cluster-up cluster-down run e2e bench-serving bench-shadow bench-scale bench-rollback
