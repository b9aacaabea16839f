#!/bin/bash
# Run HERE (the development machine, no device time) before the first device call of a session that
# was lent a GPU. The GPU image has torch, h5py, numpy, scipy, matplotlib, tqdm and PyYAML but not
# gymnasium, mujoco or pyrallis: this downloads their Python 3.12 wheels into .whl/ (about 26 MiB),
# and copies CORL's offline algorithms (the speed reference of benchmarks/worker_speed.py) into
# .corl_ref/. Both folders are git-ignored (.gitignore) and travel with `carry`. See docs/gpu.md.
#
#   bash benchmarks/gpu/prepare.sh [CORL_CHECKOUT]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .whl
# versions: requirements.txt's pins (one source of truth); mujoco's two parts share mujoco's version
pin() { grep -E "^$1==" requirements.txt || { echo "error: $1 is not pinned in requirements.txt" >&2; exit 1; }; }
mujoco_version=$(pin mujoco | cut -d= -f3)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    "$(pin gymnasium)" "$(pin pyrallis)" "$(pin mujoco)" "mujoco-core==$mujoco_version" "mujoco-studio==$mujoco_version" \
    farama-notifications websockets glfw pyopengl
if [ $# -ge 1 ]; then
    rm -rf .corl_ref && mkdir -p .corl_ref/algorithms
    cp -r "$1/algorithms/offline" .corl_ref/algorithms/
fi
du -sh .whl .corl_ref 2>/dev/null || true
echo "carry: [\".whl\", \".corl_ref\"] (and \".gpu_runs\" to continue runs on a fresh machine)"
