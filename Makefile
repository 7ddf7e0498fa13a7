# Two entry points on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
# Bytecode caches are written, and so reused by every `opsgraph` process a test or a demo starts, even
# where the environment turns them off: without them each CLI start recompiles every module it imports
# (measured on the dev VM: `import opsgraph.cli` 7 s without, 3 s with).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup demo chat test eval lint bench bench-crash down clean

setup:
	@./scripts/install-system-deps.sh
	@uv sync --frozen --quiet

## The main job: local stack up, Redis memory pressure injected, fixed with your approval.
demo: setup
	uv run opsgraph demo redis-memory-pressure

## The operator chat on http://127.0.0.1:8000, with the local stack up (Ctrl-C stops).
chat: setup
	uv run opsgraph chat

## Two workers (the dev VM has two cores), one test file per worker at a time: a file's servers stay in one process.
test: setup
	uv run pytest -n 2 --dist loadfile

## The eval suite: the `eval`-marked tests, then every scenario of evals/scenarios on fresh servers with the
## runbook backend (and the model backend on the recordings in evals/recordings, where there are any), scored;
## the report goes to evals/results/. Fails when a test or a scenario run fails.
EVAL_RECORDINGS := evals/recordings
eval: setup
	@status=0; \
	uv run pytest -m eval || status=1; \
	uv run opsgraph eval --out evals/results --backend runbook \
		$(if $(wildcard $(EVAL_RECORDINGS)/*.json),--backend model --recordings $(EVAL_RECORDINGS)) || status=1; \
	exit $$status

lint: setup
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run lint-imports

bench: setup
	uv run python -m bench.redis_memory_pressure
	uv run python -m bench.model_tokens
	uv run python -m bench.alert_intake

## kill -9 at every dangerous moment of a fix, and concurrent approvals (about 10 minutes)
bench-crash: setup
	uv run pytest -m crash
	uv run python -m bench.kill_matrix --runs 10
	uv run python -m bench.approve_race --pairs 20

## The eval suite with a real (tiny) model, offline: Gemma 3 270M on llama-cpp-python's OpenAI-compatible
## server, reached as openai:gemma-3-270m, beside the runbook; the report in evals/results/local-model/.
## Fails only on an unsafe step (a 270M model fails scenarios: that is its score). Not part of `make test`:
## the first run builds llama-cpp-python from source (~4 min on 2 cores) into ~/.cache/opsgraph/local-model;
## the whole suite takes about half an hour; narrow it with e.g. EVAL_SCENARIOS="-s redis-memory-pressure".
EVAL_SCENARIOS ?=
.PHONY: eval-local-model
eval-local-model: setup
	uv run python -m bench.local_model run -- uv run opsgraph eval --backend runbook --backend model \
		--fail-on unsafe --out evals/results/local-model $(EVAL_SCENARIOS)

down: setup
	uv run opsgraph down

clean: down
	rm -rf .opsgraph
