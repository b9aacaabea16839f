# Two commands work on a fresh machine (both create .venv and install on first use):
#   make demo   the main job on the built-in default (maze2d-umaze-v1, generated data)
#   make test   the test suite
# PYTHON=/path/to/python runs everything with that interpreter instead of .venv (no install).

ENV ?= maze2d-umaze-v1
SEED ?= 0
EPISODES ?= 100
PROFILE ?= auto
DEVICE ?= auto
MODE ?= iql_td_mpc
ALGO ?= bc
INTENT ?= none
MANAGER ?=
MANAGER_ARG := $(if $(MANAGER),--manager $(MANAGER),)
STEPS ?=
STEPS_ARG := $(if $(STEPS),--steps $(STEPS),)
SNAPSHOT_EVERY ?=
SNAPSHOT_ARG := $(if $(SNAPSHOT_EVERY),--snapshot-every $(SNAPSHOT_EVERY),)
COMPILE ?=
COMPILE_MODE ?=
FLAGS ?=
COMPILE_ARG := $(if $(COMPILE),--compile $(if $(COMPILE_MODE),--compile-mode $(COMPILE_MODE),),)
# the workers' spelling (pyrallis): --compile true [--compile_mode MODE]
WORKER_COMPILE_ARG := $(if $(COMPILE),--compile true $(if $(COMPILE_MODE),--compile_mode $(COMPILE_MODE),),)
# make manager|flat SEEDS=0,1,2: those seeds in one process, stacked (python -m manager train --seeds)
SEED_ARG = $(if $(filter command line environment,$(origin SEEDS)),--seeds $(SEEDS),--seed $(SEED))
BOOTSTRAP_PYTHON ?= $(shell command -v python3.11 || command -v python3)

ifeq ($(origin PYTHON), undefined)
PY := .venv/bin/python
DEPS := .venv/.installed
DEV_DEPS := .venv/.installed-dev
else
PY := $(PYTHON)
DEPS :=
DEV_DEPS :=
endif

.PHONY: setup demo demo-reference test test-all tasks-reference manager flat worker clean-venv help

help:
	@echo "make demo                  the whole hierarchy on ENV: dataset -> Manager -> BC none/random/Manager intents -> table"
	@echo "make demo-reference        score D4RL's waypoint controller and the random policy on ENV"
	@echo "make test                  run the test suite (slow end-to-end checks: make test-all)"
	@echo "make tasks-reference       the docs/tasks.md measurements (reference scores, dataset stats)"
	@echo "make manager               train the IQL-TD-MPC Manager: runs/ENV/manager/seedK/manager.pt"
	@echo "make flat MODE=iql_td_mpc  train and MPC-evaluate a flat agent (MODE=iql_td_mpc|td_mpc)"
	@echo "make worker ALGO=bc|bc_10|awac|iql|td3_bc|cql|dt|idql INTENT=none|manager|random  train a worker (runs/ENV/ALGO/INTENT/seedK)"
	@echo "score a trained run again:  python -m corl evaluate RUN_DIR... --episodes N (workers), python -m manager evaluate RUN_DIR... (flat agents)"
	@echo "learning curves:            python -m runs curves RUN_DIR... --out curves.png (mean +- std over seeds, from metrics.csv)"
	@echo "final scores over seeds:    python -m runs summary RUN_DIR... (mean +- std, Welch's test against the first arm)"
	@echo "variables: ENV=$(ENV) SEED=$(SEED) EPISODES=$(EPISODES) PROFILE=$(PROFILE) (paper|quick|smoke|auto)"
	@echo "           DEVICE=$(DEVICE) (auto|cpu|cuda|cuda:N|mps) STEPS=<override> COMPILE=1 (manager/flat/worker: torch.compile the update)"
	@echo "           COMPILE_MODE=reduce-overhead (with COMPILE=1: CUDA graphs, 3.8x eager on an H200)"
	@echo "           SEEDS=0,1,2 (manager/flat: train these seeds in one process, parameters stacked)"
	@echo "           SNAPSHOT_EVERY=N (manager: also export snapshots/manager_step<N>.pt every N steps)"
	@echo "           WANDB=1 (manager/flat/worker: also log to Weights & Biases, offline unless WANDB_MODE says otherwise)"
	@echo "           FLAGS='<other flags of that command, e.g. --set horizon=3 (manager/flat), --normalize false (worker)>'"
	@echo "           PYTHON=<interpreter, skips .venv>"
	@echo "make table1|table2|table3  the paper's grids, resumable: runs/tableN.md/.csv/.png (docs/tables.md)"
	@echo "           ENVS=<datasets or domain> ALGOS=<workers> SEEDS=$(SEEDS) JOBS=$(JOBS) ENGINE=$(ENGINE) (local|submitit)"
	@echo "           STACK_SEEDS=1 (an env's Managers / flat agents of all seeds in one process, stacked)"
	@echo "           COMPILE=1 (the grid's Managers, flat agents and workers torch.compile their update)"
	@echo "           WANDB=1 (every training cell also logs to Weights & Biases, offline unless WANDB_MODE says otherwise)"
	@echo "           TABLE_FLAGS='<other python -m runs flags, e.g. --aggregate-only --dry-run --gpus 0,1>'"

# The paper's grids (python -m runs --help, docs/tables.md): each cell is a make manager/flat/worker command.
ENVS ?=
ALGOS ?=
SEEDS ?= 0,1,2,3,4
JOBS ?= 1
ENGINE ?= local
STACK_SEEDS ?=
TABLE_FLAGS ?=
TABLE_ARGS = $(if $(ENVS),--envs $(ENVS),) $(if $(ALGOS),--algos $(ALGOS),) --seeds $(SEEDS) \
	--profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS) --engine $(ENGINE) \
	$(if $(filter 1 true yes,$(STACK_SEEDS)),--stack-seeds,) $(COMPILE_ARG) $(if $(WANDB),--wandb,) $(TABLE_FLAGS)
.PHONY: table1 table2 table3

table1 table2 table3: $(if $(filter submitit,$(ENGINE)),$(DEV_DEPS),$(DEPS))
	$(PY) -m runs $@ $(TABLE_ARGS)

.venv/.installed: requirements.txt
	$(BOOTSTRAP_PYTHON) -m venv .venv
	.venv/bin/python -m pip install --upgrade pip
	.venv/bin/python -m pip install -r requirements.txt
	touch $@

.venv/.installed-dev: .venv/.installed requirements-dev.txt
	.venv/bin/python -m pip install -r requirements-dev.txt
	touch $@

setup: $(DEV_DEPS)

demo: $(DEPS)
	$(PY) -m runs.demo --env $(ENV) --seed $(SEED) --profile $(PROFILE) --device $(DEVICE)

demo-reference: $(DEPS)
	$(PY) -m tasks generate $(ENV) --seed $(SEED) --skip-existing
	$(PY) -m tasks evaluate $(ENV) --policy controller --episodes $(EPISODES) --seed $(SEED)
	$(PY) -m tasks evaluate $(ENV) --policy random --episodes $(EPISODES) --seed $(SEED)

test: $(DEV_DEPS)
	$(PY) -m pytest -q -n 2 --timeout 900 tests

test-all: $(DEV_DEPS)
	$(PY) -m pytest -q -n 2 --timeout 1800 -m "slow or not slow" tests

tasks-reference: $(DEPS)
	$(PY) benchmarks/maze2d_reference.py --out docs/results/maze2d_reference.json

manager: $(DEPS)
	$(PY) -m manager train --mode manager --env $(ENV) $(SEED_ARG) --profile $(PROFILE) --device $(DEVICE) $(COMPILE_ARG) $(STEPS_ARG) $(SNAPSHOT_ARG) \
		$(if $(WANDB),--wandb,) $(FLAGS)

flat: $(DEPS)
	$(PY) -m manager train --mode $(MODE) --env $(ENV) $(SEED_ARG) --profile $(PROFILE) --device $(DEVICE) $(COMPILE_ARG) $(STEPS_ARG) \
		$(if $(WANDB),--wandb,) $(FLAGS)

worker: $(DEPS)
	$(PY) -m corl $(ALGO) --env $(ENV) --seed $(SEED) --intent $(INTENT) --profile $(PROFILE) --device $(DEVICE) \
		$(WORKER_COMPILE_ARG) $(MANAGER_ARG) $(if $(STEPS),--steps $(STEPS),) $(if $(WANDB),--wandb true,) $(FLAGS)

clean-venv:
	rm -rf .venv
