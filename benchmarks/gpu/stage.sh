#!/bin/bash
# Run THERE (the lent GPU machine, through the device tool's `run`), from the repo root; each stage
# fits one 10-minute call. docs/gpu.md has the plan and how results come back.
#
#   bash benchmarks/gpu/stage.sh session CMD...  # a whole lent session in one call: speed, then CMD (a Manager,
#                                                # flat-agent or grid command) for what is left of
#                                                # $SESSION_BUDGET_S (540 s), returned like `train`
#   bash benchmarks/gpu/stage.sh score CMD...    # a whole lent session that ends with a score: speed (the
#                                                # datasets generated beside it), then the flat agent CMD
#                                                # for the steps that fit what is left, and its evaluation
#   bash benchmarks/gpu/stage.sh speed           # manager + worker updates/s and planning ms (~5 min)
#   bash benchmarks/gpu/stage.sh compile [ARGS]  # manager updates/s eager vs torch.compile, paper sizes (ARGS go
#                                                # to manager_speed.py, e.g. --compile-mode reduce-overhead)
#   bash benchmarks/gpu/stage.sh stacked [ARGS]  # 5 seeds as one StackedAgents vs one after the other, paper
#                                                # sizes (ARGS go to manager_speed.py, e.g. --compile --modes manager)
#   bash benchmarks/gpu/stage.sh workers [ARGS]  # the workers' updates/s eager vs --compile side by side, and the
#                                                # weight gap (ARGS go to worker_speed.py, e.g. --algos bc,td3_bc
#                                                # --compile-mode reduce-overhead)
#   bash benchmarks/gpu/stage.sh train CMD...    # one resumable chunk of a training command, e.g.
#        bash benchmarks/gpu/stage.sh train python3 -m manager train --mode manager \
#             --env maze2d-medium-v1 --profile paper    # stopped after $CHUNK_TIME_LIMIT_S (480 s)
#        bash benchmarks/gpu/stage.sh train python3 -m corl bc --env maze2d-medium-v1 --intent none \
#             --profile paper --chunk_steps 100000
#        bash benchmarks/gpu/stage.sh train python3 -m runs table2 --envs maze2d-umaze-v1 --seeds 0,1,2 \
#             --profile paper --stack-seeds          # a grid, likewise
#
# `train` adds --device cuda and the run folder .gpu_runs/; datasets live in $D4RL_DATASET_DIR (default
# /tmp/d4rl), regenerated when the machine is fresh (maze2d: about a minute). It returns .gpu_runs/ as
# 15 MiB parts in $OUT (cat gpu_runs.tar.part* | tar x) so a fresh machine can resume from them.
set -euo pipefail
: "${OUT:?run me through the device tool (it sets OUT)}"
export PYTHONUNBUFFERED=1 D4RL_DATASET_DIR=${D4RL_DATASET_DIR:-/tmp/d4rl}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu tries a stage here without a GPU
# a call returns at most 8 files from $OUT: past that, the logs and notes (*.log, *.txt) go into one
# logs.tgz on the way out, whatever the exit
pack_out() {
    local logs
    [ "$(find "$OUT" -maxdepth 1 -type f | wc -l)" -gt 8 ] || return 0
    logs=$(cd "$OUT" && find . -maxdepth 1 -type f \( -name '*.log' -o -name '*.txt' \) -printf '%f\n')
    [ -n "$logs" ] && (cd "$OUT" && tar czf logs.tgz --remove-files $logs)
    return 0
}
trap pack_out EXIT
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"; fi
python3 -c "import torch, gymnasium, mujoco, h5py, pyrallis; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
stage=${1:?stage: session CMD... | score CMD... | speed | compile | stacked | workers [ARGS] | train CMD...}; shift

speed() {
    python3 benchmarks/manager_speed.py --device "$DEVICE" --out "$OUT/manager_speed_gpu.json" 2>&1 | tee "$OUT/manager_speed.log"
    local corl=(); [ -d .corl_ref ] && corl=(--corl .corl_ref)
    python3 benchmarks/worker_speed.py "${corl[@]}" --device "$DEVICE" --out "$OUT/worker_speed_gpu.json" 2>&1 | tee "$OUT/worker_speed.log"
}

# prepare_datasets CMD...: generate the datasets of CMD's --env / --envs (maze2d-medium: about a minute
# on a fresh machine) before `session` sizes its training chunk, so the chunk's limit is what is left
prepare_datasets() {
    local arg prev="" envs="" env
    for arg in "$@"; do
        case "$prev" in --env|--envs) envs="$envs,$arg" ;; esac
        prev=$arg
    done
    for env in ${envs//,/ }; do
        python3 -m tasks generate "$env" --data-dir "$D4RL_DATASET_DIR" --skip-existing --no-progress
    done
}

# measure_and_prepare CMD...: the speed stage (unless SESSION_SPEED=0), CMD's datasets generated beside
# it on a CPU core (datasets.log); a failed measurement is reported and the call goes on
measure_and_prepare() {
    mkdir -p "$D4RL_DATASET_DIR"
    prepare_datasets "$@" > "$OUT/datasets.log" 2>&1 &
    local datasets=$!
    if [ "${SESSION_SPEED:-1}" = 1 ]; then speed || echo "a speed measurement failed (see its log)"; fi
    wait "$datasets" || { cat "$OUT/datasets.log"; exit 1; }
}

# train_chunk SECONDS CMD...: one resumable chunk of CMD stopped after about SECONDS of training, then
# .gpu_runs/ as 15 MiB parts in $OUT. Datasets: found in and generated into $D4RL_DATASET_DIR by the
# task layer (within a grid's limit; before a Manager's or flat agent's, which counts training).
# Only the run folder and the progress flag are spelled differently by the workers' pyrallis CLI and
# the Manager's argparse one. The Manager and the flat agents stop at their first checkpoint
# after --time-limit-s (given here unless CMD has one); a grid (python3 -m runs ...) gets Ctrl-C after
# SECONDS: it stops its cells cleanly and the next call's same command resumes them from their
# checkpoints (--foreground: the signal goes to the grid alone, once, not to its whole process group);
# a worker stops after its own --chunk_steps.
train_chunk() {
    local seconds=$1; shift
    mkdir -p .gpu_runs "$D4RL_DATASET_DIR"
    local extra limit=()
    case " $* " in
        *" -m corl "*) extra=(--runs_dir .gpu_runs --progress false) ;;
        *" -m runs "*) extra=(--runs-dir .gpu_runs); limit=(timeout --foreground -s INT "$seconds") ;;
        *" --time-limit-s "*) extra=(--runs-dir .gpu_runs --no-progress) ;;
        *) extra=(--runs-dir .gpu_runs --no-progress --time-limit-s "$seconds") ;;
    esac
    local status=0
    "${limit[@]}" "$@" --device "$DEVICE" "${extra[@]}" 2>&1 | tee "$OUT/train.log" || status=$?
    return_runs
    return $status
}

# return_runs: .gpu_runs/ back in two forms. First the results alone (tables, manifests, metrics, logs;
# no weights) in gpu_results.tgz, small, so they come back whatever else a call's 64 MiB leaves out;
# then the resume state as 15 MiB parts: every run folder less the checkpoint.pt of finished runs
# (final.json is their result; a Manager's export manager.pt stays, its workers read it). A grid
# row's finished checkpoints came to more than the limit in the second lent session.
return_runs() {
    local finished
    finished=$(mktemp)
    tar czf "$OUT/gpu_results.tgz" --exclude='*.pt' .gpu_runs
    find .gpu_runs -name checkpoint.pt -execdir test -e final.json \; -print > "$finished"
    tar cf - -X "$finished" .gpu_runs | split -b 15M - "$OUT/gpu_runs.tar.part"
    rm -f "$finished"
}

case "$stage" in
score)
    # a session that ends with a normalised score: the flat agent CMD (python3 -m manager train --mode
    # iql_td_mpc|td_mpc ..., no --steps) trains for the whole checkpoints that leave time for its MPC
    # evaluation (benchmarks/gpu/fit_steps.py, from this call's own speed figures, or $SPEED_JSON's);
    # its --time-limit-s is the guard: a slower run stops at a checkpoint, resumable, unscored.
    [ $# -ge 1 ] || { echo "score needs a flat agent's command: python3 -m manager train --mode iql_td_mpc ..." >&2; exit 2; }
    case " $* " in *" -m manager train "*) ;; *) echo "score: CMD must be a flat agent's python3 -m manager train" >&2; exit 2 ;; esac
    case " $* " in *" --steps "*) echo "score: CMD must not give --steps (the stage fits them)" >&2; exit 2 ;; esac
    budget=${SESSION_BUDGET_S:-540}
    measure_and_prepare "$@"
    speed_json=${SPEED_JSON:-$OUT/manager_speed_gpu.json}
    [ -f "$speed_json" ] || { echo "score: no speed figures at $speed_json (the speed stage failed?)" >&2; exit 1; }
    left=$(( budget - SECONDS - 15 ))
    fit=$(python3 "$(dirname "$0")/fit_steps.py" --speed "$speed_json" --seconds "$left" -- "$@" 2> "$OUT/fit.json") \
        || { cat "$OUT/fit.json"; exit 1; }
    read -r steps limit <<< "$fit"
    echo "score: ${SECONDS} s spent measuring, ${left} s left: ${steps} steps then the evaluation; $(cat "$OUT/fit.json")" \
        | tee "$OUT/session.txt"
    if [ "$steps" -lt 1 ]; then echo "score: not one checkpoint fits, no training this call" | tee -a "$OUT/session.txt"; exit 0; fi
    train_chunk "$limit" "$@" --steps "$steps"
    ;;
session)
    # the device time of a lent session (15 min, the machine's start included) fits one full call:
    # measure first (it decides the rest), then train for what is left of the budget, keeping 60 s for
    # the last checkpoint and the parts
    [ $# -ge 1 ] || { echo "session needs a training command, e.g. python3 -m manager train --mode manager ..." >&2; exit 2; }
    case " $* " in *" -m corl "*) echo "session: a worker stops by --chunk_steps, not by time; use the train stage" >&2; exit 2 ;; esac
    budget=${SESSION_BUDGET_S:-540}
    measure_and_prepare "$@"
    left=$(( budget - SECONDS - 60 ))
    echo "session: ${SECONDS} s spent measuring and generating data, ${left} s left for: $*" | tee "$OUT/session.txt"
    if [ "$left" -lt 60 ]; then echo "session: under a minute left, no training this call" | tee -a "$OUT/session.txt"; exit 0; fi
    train_chunk "$left" "$@"
    ;;
speed)
    speed
    ;;
compile)
    python3 benchmarks/manager_speed.py --device "$DEVICE" --profiles paper --compile --no-plan "$@" \
        --out "$OUT/manager_compile_gpu.json" 2>&1 | tee "$OUT/manager_compile.log"
    ;;
stacked)
    python3 benchmarks/manager_speed.py --device "$DEVICE" --profiles paper --stacked-seeds 5 --no-plan "$@" \
        --out "$OUT/manager_stacked_gpu.json" 2>&1 | tee "$OUT/manager_stacked.log"
    ;;
workers)
    python3 benchmarks/worker_speed.py --device "$DEVICE" --compile "$@" \
        --out "$OUT/worker_compile_gpu.json" 2>&1 | tee "$OUT/worker_compile.log"
    ;;
train)
    train_chunk "${CHUNK_TIME_LIMIT_S:-480}" "$@"
    ;;
*)
    echo "unknown stage '$stage': use session, score, speed, compile, stacked, workers or train" >&2; exit 2 ;;
esac
