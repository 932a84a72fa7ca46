# roadbike: `make plan` plans the dev stack offline; `make test` runs lint and the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
TOOLS := .tools
SARIF_SCHEMA := $(TOOLS)/sarif-schema-2.1.0.json
POLICY_VENV := $(TOOLS)/policy-venv
CRDS := $(TOOLS)/crds
JEST_SARIF := @microsoft/jest-sarif@1.0.0-beta.0
# The real Pulumi engine built from Go modules (tools/go-tools.txt), cached outside the work tree.
ENGINE_TOOLS := pulumi pulumi-language-python kubernetes docker-build random
ENGINE_BIN ?= $(shell tools/build-go-tools.sh --bin-dir)
# The generated pipeline's Go tools the tests run on examples/go-http-server (same file, same cache).
GO_TOOLS := actionlint govulncheck golangci-lint crane cosign syft
# The Kubernetes API server (and its etcd) that tests/kubernetes deploys the stacks to.
KUBE_TOOLS := kube-apiserver etcd
GRAFANA := $(TOOLS)/grafana
GRAFANA_SCHEMA_VERSION := 13.2.3
TYPESCRIPT_VERSION := 5.9.3
# The GitHub provider's input types (its Node.js SDK, generated from the provider schema) at the Python
# SDK's pin, and the Pulumi Node.js SDK whose `Input<T>` they use: 3.272.0, the Python SDK's pin, is not
# published on the npm registry; 3.270.0 is the nearest below it.
GITHUB_TYPES := $(TOOLS)/github-types
PULUMI_GITHUB_VERSION := 6.15.0
PULUMI_NODEJS_VERSION := 3.270.0

.PHONY: venv plan plan-all test test-fast lint format bench bench-interrupts tools crds engine go-tools kube-apiserver clean

$(BIN)/roadbike: pyproject.toml
	@echo "Installing roadbike with Pulumi, its providers' SDKs and the dev tools into $(VENV) (first run: a minute or two)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/roadbike

# AGAINST=REV (a git revision, plan directory or checkpoint) shows what changes from it. make's own exit
# status is 2 whenever a command fails: CI calls .venv/bin/roadbike itself to get 1 (violations) or 2.
plan: venv
	$(BIN)/roadbike plan --stack $(STACK) $(if $(AGAINST),--against "$(AGAINST)")

# Every stack file, each planned whatever the others did; the worst exit code wins.
plan-all: venv
	@worst=0; failed=""; \
	for file in stacks/Pulumi.*.yaml; do \
		stack=$${file#stacks/Pulumi.}; stack=$${stack%.yaml}; \
		$(BIN)/roadbike plan --stack "$$stack" $(if $(AGAINST),--against "$(AGAINST)"); code=$$?; \
		if [ $$code -ne 0 ]; then failed="$$failed $$stack(exit $$code)"; [ $$code -gt $$worst ] && worst=$$code; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "plan-all: failed:$$failed" >&2; else echo "plan-all: every stack passed"; fi; \
	exit $$worst

# Reference files the tests validate against, fetched from the npm registry (not vendored).
$(SARIF_SCHEMA):
	mkdir -p $(TOOLS)/npm
	cd $(TOOLS)/npm && npm pack --silent $(JEST_SARIF) >/dev/null
	tar -xzf $(TOOLS)/npm/microsoft-jest-sarif-*.tgz -C $(TOOLS)/npm package/lib/schemas/sarif-2.1.0-rtm.5.json
	cp $(TOOLS)/npm/package/lib/schemas/sarif-2.1.0-rtm.5.json $@

# Grafana's own dashboard types (@grafana/schema) and the TypeScript compiler that checks a dashboard
# against them, from the npm registry (not vendored).
$(GRAFANA)/stamp:
	rm -rf $(GRAFANA) && mkdir -p $(GRAFANA)/schema $(GRAFANA)/typescript
	cd $(GRAFANA) && npm pack --silent @grafana/schema@$(GRAFANA_SCHEMA_VERSION) typescript@$(TYPESCRIPT_VERSION) >/dev/null
	tar -xzf $(GRAFANA)/grafana-schema-$(GRAFANA_SCHEMA_VERSION).tgz -C $(GRAFANA)/schema --strip-components=1 package/dist/types/raw/dashboard/x/types.gen.d.ts
	tar -xzf $(GRAFANA)/typescript-$(TYPESCRIPT_VERSION).tgz -C $(GRAFANA)/typescript --strip-components=1
	touch $@

# The declarations (.d.ts) of @pulumi/github and @pulumi/pulumi only, laid out as node_modules so the
# provider's `import ... from "@pulumi/pulumi"` resolves; tsc (from $(GRAFANA)) checks the plan against them.
$(GITHUB_TYPES)/stamp:
	rm -rf $(GITHUB_TYPES) && mkdir -p $(GITHUB_TYPES)/node_modules/@pulumi/github $(GITHUB_TYPES)/node_modules/@pulumi/pulumi
	cd $(GITHUB_TYPES) && npm pack --silent @pulumi/github@$(PULUMI_GITHUB_VERSION) @pulumi/pulumi@$(PULUMI_NODEJS_VERSION) >/dev/null
	tar -xzf $(GITHUB_TYPES)/pulumi-github-$(PULUMI_GITHUB_VERSION).tgz -C $(GITHUB_TYPES)/node_modules/@pulumi/github \
		--strip-components=1 --wildcards 'package/*.d.ts' package/package.json
	tar -xzf $(GITHUB_TYPES)/pulumi-pulumi-$(PULUMI_NODEJS_VERSION).tgz -C $(GITHUB_TYPES)/node_modules/@pulumi/pulumi \
		--strip-components=1 --wildcards 'package/*.d.ts' package/package.json
	touch $@

# The policy pack's own environment, as the engine makes it (policies/requirements.txt only).
$(POLICY_VENV)/bin/python: policies/requirements.txt
	rm -rf $(POLICY_VENV)
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet -r policies/requirements.txt
	touch $@

# Upstream CRDs the tests validate against, from the Go module proxy (tools/crds/go.mod and go.sum pin them).
$(CRDS)/stamp: tools/crds/go.mod tools/crds/go.sum tools/crds/fetch.py | $(BIN)/roadbike
	$(BIN)/python tools/crds/fetch.py $(CRDS)

crds: $(CRDS)/stamp

# Builds only what changed since the last build (each tool's stamp in the cache): under a second when warm.
engine:
	@if [ "$(origin ENGINE_BIN)" = "command line" ]; then echo "engine: using $(ENGINE_BIN)"; \
	else tools/build-go-tools.sh $(ENGINE_TOOLS); fi

# The pipeline's Go tools, and the offline Go vulnerability database govulncheck reads (tools/vulndb pins it).
go-tools:
	tools/build-go-tools.sh $(GO_TOOLS)
	cd tools/vulndb && GOFLAGS=-mod=readonly go mod download golang.org/x/vulndb

# Long cold (see the README): built at most two packages at a time, as the machine is shared.
kube-apiserver:
	GOFLAGS="$(GOFLAGS) -p=2" tools/build-go-tools.sh $(KUBE_TOOLS)

tools: $(SARIF_SCHEMA) $(POLICY_VENV)/bin/python $(GRAFANA)/stamp $(GITHUB_TYPES)/stamp

lint: venv
	$(BIN)/ruff check components policies roadbike tests bench examples/service-team __main__.py
	$(BIN)/ruff format --check components policies roadbike tests bench examples/service-team __main__.py
	$(BIN)/mypy components policies roadbike __main__.py
	$(BIN)/mypy examples/service-team/__main__.py  # a program of its own: its own __main__

format: venv
	$(BIN)/ruff format components policies roadbike tests bench examples/service-team __main__.py
	$(BIN)/ruff check --fix components policies roadbike tests bench examples/service-team __main__.py

test: venv tools crds engine go-tools kube-apiserver lint
	ROADBIKE_SARIF_SCHEMA=$(SARIF_SCHEMA) ROADBIKE_POLICY_PYTHON=$(POLICY_VENV)/bin/python ROADBIKE_CRDS=$(CRDS) \
		ROADBIKE_ENGINE_BIN=$(ENGINE_BIN) ROADBIKE_GRAFANA=$(GRAFANA) \
		ROADBIKE_GITHUB_TYPES=$(GITHUB_TYPES) $(BIN)/pytest

test-fast: venv tools crds engine go-tools kube-apiserver
	ROADBIKE_SARIF_SCHEMA=$(SARIF_SCHEMA) ROADBIKE_POLICY_PYTHON=$(POLICY_VENV)/bin/python ROADBIKE_CRDS=$(CRDS) \
		ROADBIKE_ENGINE_BIN=$(ENGINE_BIN) ROADBIKE_GRAFANA=$(GRAFANA) \
		ROADBIKE_GITHUB_TYPES=$(GITHUB_TYPES) $(BIN)/pytest -m 'not slow'

# The real engine previews fleets too: it needs the engine and the pack's virtualenv (see README: Speed).
bench: venv tools engine
	ROADBIKE_POLICY_PYTHON=$(POLICY_VENV)/bin/python ROADBIKE_ENGINE_BIN=$(ENGINE_BIN) $(BIN)/python bench/plan_bench.py

# 100 Ctrl-C/SIGTERM at random points of a 60-service plan: hangs, orphaned packs, partial out/ (all 0).
bench-interrupts: venv
	$(BIN)/python bench/interrupts.py 100 60

clean:
	rm -rf out $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
