#!/usr/bin/env bash
# The speed benchmarks on a GPU machine with JAX and no TensorFlow, in one
# command. Needs the wheels of benchmarks/gpu_wheels.sh in .whl/ (or in
# the folder $WHEELS) next to a copy of this repository.
# Usage, from the repository root: bash benchmarks/gpu_speed.sh [out]
# Results go to [out] (default: $OUT if set, else benchmarks/results).
# $SPEED_ARGS is added to each speed.py call (a quick try on a CPU:
# SPEED_ARGS="--infer-batch 1 --infer-size 64 --train-batch 2
# --train-size 32 --repeats 1 --warmup 1"), $VARIANTS_ARGS to the
# variants.py call (there: VARIANTS_ARGS="--batch 1 --size 64 --repeats 1")
# $PROFILE_ARGS to the layer_profile.py call (there: PROFILE_ARGS=
# "--batch 1 --size 64 --calls 2") and $FORMS_ARGS to the conv_forms.py call
# (there: FORMS_ARGS="--batch 1 --size 64 --repeats 1") and
# $TORCH_PROFILE_ARGS to the torch_profile.py call (there:
# TORCH_PROFILE_ARGS="--batch 1 --size 64 --repeats 1").
set -euo pipefail
out="${1:-${OUT:-benchmarks/results}}"
mkdir -p "$out"
# shellcheck source=recipes/gpu_env.sh
source recipes/gpu_env.sh
# The configuration in bfloat16 first, then where its time goes
# (layer by layer from XLA's own profile, keeping the raw traces; other
# forms of the one-channel 9x9 layers; variants that each leave a part
# out), then float32, the folded form, the PSNR of both forms of the
# 9x9 layers and training inside `fit`. BM3D is CPU-only.
# shellcheck disable=SC2086
python3 benchmarks/speed.py --precision mixed_bfloat16 --no-bm3d \
    ${SPEED_ARGS:-} --output "$out/speed_jax_mixed_bfloat16_gpu.md"
# The profiles run without CUDA command buffers: inside one, XLA's
# operations are not named in the trace, and a quarter to a half of
# RBDN-3's GPU time is "(not attributed)" (docs/performance.md).
profile_flags="--xla_gpu_enable_command_buffer= ${XLA_FLAGS:-}"
# shellcheck disable=SC2086
XLA_FLAGS="$profile_flags" \
    python3 benchmarks/layer_profile.py --precision mixed_bfloat16 \
    ${PROFILE_ARGS:-} --trace-dir "$out/traces" \
    --output "$out/layer_profile_jax_mixed_bfloat16_gpu.md" ||
    echo "layer_profile.py failed (above); the raw traces are in $out/traces"
# shellcheck disable=SC2086
XLA_FLAGS="$profile_flags" \
    python3 benchmarks/layer_profile.py --training --precision mixed_bfloat16 \
    ${PROFILE_ARGS:-} --trace-dir "$out/traces_training" \
    --output "$out/layer_profile_training_jax_mixed_bfloat16_gpu.md" ||
    echo "layer_profile.py --training failed (above); traces kept"
# shellcheck disable=SC2086
python3 benchmarks/conv_forms.py --precision mixed_bfloat16 ${FORMS_ARGS:-} \
    --output "$out/conv_forms_jax_mixed_bfloat16_gpu.md" ||
    echo "conv_forms.py failed (above); going on"
# DnCNN's first and last layers are 3x3 with one channel on one side: if
# a form is faster for them too, the baseline should get it.
# shellcheck disable=SC2086
python3 benchmarks/conv_forms.py --precision mixed_bfloat16 --kernel-size 3 \
    ${FORMS_ARGS:-} --output "$out/conv_forms_3x3_jax_mixed_bfloat16_gpu.md" ||
    echo "conv_forms.py --kernel-size 3 failed (above); going on"
# shellcheck disable=SC2086
python3 benchmarks/variants.py --precision mixed_bfloat16 ${VARIANTS_ARGS:-} \
    --output "$out/variants_jax_mixed_bfloat16_gpu.md"
# shellcheck disable=SC2086
python3 benchmarks/speed.py --precision float32 --no-bm3d \
    ${SPEED_ARGS:-} --output "$out/speed_jax_float32_gpu.md"
# shellcheck disable=SC2086
python3 benchmarks/speed.py --precision mixed_bfloat16 --no-bm3d \
    --fold-batch-norm --skip training,image ${SPEED_ARGS:-} \
    --output "$out/speed_jax_mixed_bfloat16_folded_gpu.md"
# Whether the blocks form of the 9x9 layers changes a trained model's PSNR
# (the shipped denoiser, float32 and bfloat16, blocks form on and off).
# shellcheck disable=SC2086
python3 benchmarks/mixed_precision.py --shipped --compare-forms \
    --output "$out/mixed_precision_jax_shipped_gpu.md" ||
    echo "mixed_precision.py failed (above); going on"
# Training as a run trains: `fit` keeps the GPU queue full, where
# `train_on_batch` waits for every step.
# shellcheck disable=SC2086
python3 benchmarks/speed.py --precision mixed_bfloat16 --no-bm3d \
    --skip inference,image --fit-steps 200 ${SPEED_ARGS:-} \
    --output "$out/speed_jax_mixed_bfloat16_fit_gpu.md"
# PyTorch runs slower than JAX on the same GPU: its operators by CUDA time
# say where the time goes (docs/performance.md, "Current figures").
# shellcheck disable=SC2086
KERAS_BACKEND=torch python3 benchmarks/torch_profile.py \
    --precision mixed_bfloat16 ${TORCH_PROFILE_ARGS:-} \
    --output "$out/torch_profile_mixed_bfloat16_gpu.md" ||
    echo "torch_profile.py failed (above); going on"
