#!/bin/bash
# Run THERE (the lent GPU machine, through the device tool's `run`), from the repo root; each stage
# fits one 10-minute call. docs/gpu.md has the plan and how results come back.
#
#   bash benchmarks/gpu/stage.sh speed           # manager + worker updates/s and planning ms (~5 min)
#   bash benchmarks/gpu/stage.sh compile         # manager updates/s eager vs torch.compile, paper sizes
#   bash benchmarks/gpu/stage.sh stacked [ARGS]  # 5 seeds as one StackedAgents vs one after the other, paper
#                                                # sizes (ARGS go to manager_speed.py, e.g. --compile --modes manager)
#   bash benchmarks/gpu/stage.sh train CMD...    # one resumable chunk of a training command, e.g.
#        bash benchmarks/gpu/stage.sh train python3 -m manager train --mode manager \
#             --env maze2d-medium-v1 --profile paper --time-limit-s 480
#        bash benchmarks/gpu/stage.sh train python3 -m corl bc --env maze2d-medium-v1 --intent none \
#             --profile paper --chunk_steps 100000
#        bash benchmarks/gpu/stage.sh train python3 -m runs table2 --envs maze2d-umaze-v1 --seeds 0,1,2 \
#             --profile paper --stack-seeds          # a grid, stopped after $GRID_TIME_LIMIT_S (480 s)
#
# `train` adds --device cuda and the run folder .gpu_runs/; datasets live in $D4RL_DATASET_DIR (default
# /tmp/d4rl), regenerated when the machine is fresh (maze2d: about a minute). It returns .gpu_runs/ as
# 15 MiB parts in $OUT (cat gpu_runs.tar.part* | tar x) so a fresh machine can resume from them.
set -euo pipefail
: "${OUT:?run me through the device tool (it sets OUT)}"
export PYTHONUNBUFFERED=1 D4RL_DATASET_DIR=${D4RL_DATASET_DIR:-/tmp/d4rl}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu tries a stage here without a GPU
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"; fi
python3 -c "import torch, gymnasium, mujoco, h5py, pyrallis; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
stage=${1:?stage: speed | compile | stacked [ARGS] | train CMD...}; shift
case "$stage" in
speed)
    python3 benchmarks/manager_speed.py --device "$DEVICE" --out "$OUT/manager_speed_gpu.json" 2>&1 | tee "$OUT/manager_speed.log"
    corl=(); [ -d .corl_ref ] && corl=(--corl .corl_ref)
    python3 benchmarks/worker_speed.py "${corl[@]}" --device "$DEVICE" --out "$OUT/worker_speed_gpu.json" 2>&1 | tee "$OUT/worker_speed.log"
    ;;
compile)
    python3 benchmarks/manager_speed.py --device "$DEVICE" --profiles paper --compile --no-plan \
        --out "$OUT/manager_compile_gpu.json" 2>&1 | tee "$OUT/manager_compile.log"
    ;;
stacked)
    python3 benchmarks/manager_speed.py --device "$DEVICE" --profiles paper --stacked-seeds 5 --no-plan "$@" \
        --out "$OUT/manager_stacked_gpu.json" 2>&1 | tee "$OUT/manager_stacked.log"
    ;;
train)
    mkdir -p .gpu_runs "$D4RL_DATASET_DIR"
    # datasets: found in and regenerated into $D4RL_DATASET_DIR by the task layer; only the run folder and
    # the progress flag are spelled differently by the workers' pyrallis CLI and the Manager's argparse one
    # a grid (python3 -m runs ...) gets Ctrl-C after $GRID_TIME_LIMIT_S (default 480): it stops its cells
    # cleanly and the next call's same command resumes them from their checkpoints (--foreground: the
    # signal goes to the grid alone, once, not to its whole process group)
    limit=()
    case " $* " in
        *" -m corl "*) extra=(--runs_dir .gpu_runs --progress false) ;;
        *" -m runs "*) extra=(--runs-dir .gpu_runs); limit=(timeout --foreground -s INT "${GRID_TIME_LIMIT_S:-480}") ;;
        *) extra=(--runs-dir .gpu_runs --no-progress) ;;
    esac
    status=0
    "${limit[@]}" "$@" --device "$DEVICE" "${extra[@]}" 2>&1 | tee "$OUT/train.log" || status=$?
    tar cf - .gpu_runs | split -b 15M - "$OUT/gpu_runs.tar.part"
    exit $status
    ;;
*)
    echo "unknown stage '$stage': use speed, compile, stacked or train" >&2; exit 2 ;;
esac
