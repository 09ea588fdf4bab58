#!/usr/bin/env bash
# Downloads what a JAX-only GPU machine lacks to run the benchmarks: Keras
# and the two packages it needs that such images do not carry (namex,
# optree). The GPU machines have Python 3.12, JAX with CUDA, NumPy, SciPy,
# h5py, rich, absl-py, ml-dtypes and Pillow, and no TensorFlow.
# Usage, from the repository root on a machine with pip access:
#   bash benchmarks/gpu_wheels.sh [folder]     (default: .whl, git-ignored)
set -euo pipefail
folder="${1:-.whl}"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$folder" keras==3.15.1 namex optree
ls -1 "$folder"
