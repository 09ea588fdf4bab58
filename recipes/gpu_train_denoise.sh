#!/usr/bin/env bash
# Trains the shipped denoiser's configuration on a JAX GPU machine without
# TensorFlow, in runs of bounded length that each resume from the last.
#
# Usage, from the repository root (wheels of benchmarks/gpu_wheels.sh in
# .whl/):
#   bash recipes/gpu_train_denoise.sh DATA_DIR RUN_DIR MINUTES [TOTAL_MINUTES]
#
# DATA_DIR: clean gray training images (Train400). RUN_DIR: checkpoints,
# history.csv, schedule.txt and the exported `denoise.weights.h5` (the
# weights after this run, batch norm recalibrated). MINUTES: how long this
# run may train (it stops on a checkpoint; the export follows).
#
# The learning-rate schedule (epochs x steps) is fixed by the first run and
# kept in RUN_DIR/schedule.txt, so later runs continue the same schedule.
# The first run sizes it to TOTAL_MINUTES (default MINUTES) of training at
# the RBDN-3 training rate (crops/s at batch 64 x 128x128) read from the
# speed report $SPEED_REPORT (benchmarks/speed.py), or at $CROPS_PER_SECOND
# (default 2000) without one.
#
# Network and data: RBDN-3, 64 filters, global residual (the `denoise`
# preset), mixed_bfloat16, batch 64 x 128x128 crops with flips, noise sigma
# drawn per crop from U[5, 55] on the 0-255 scale, Adam with cosine decay
# from 1e-3. $TRAIN_ARGS is added to the recipe's flags.
set -euo pipefail
data=$1
run_dir=$2
minutes=$3
total_minutes=${4:-$3}
mkdir -p "$run_dir"
# shellcheck source=recipes/gpu_env.sh
source recipes/gpu_env.sh
schedule="$run_dir/schedule.txt"
if [[ ! -f "$schedule" ]]; then
    python3 - "$total_minutes" "${SPEED_REPORT:-}" \
        "${CROPS_PER_SECOND:-2000}" >"$schedule" <<'PY'
import re
import sys

total_minutes, report, rate = float(sys.argv[1]), sys.argv[2], sys.argv[3]
rate = float(rate)
source = "CROPS_PER_SECOND"
if report:
    try:
        text = open(report).read().split("## Training", 1)[1]
        rate = float(re.search(r"\| RBDN-3 \| ([0-9.]+) \|", text).group(1))
        source = report
    except (OSError, IndexError, AttributeError) as error:
        print(f"no rate in {report} ({error!r}); using {rate}", file=sys.stderr)
# A minute for compilation and validation; 85% of the measured rate, for
# the input pipeline and the epoch ends.
steps = 0.85 * rate / 64 * max(60.0, total_minutes * 60 - 60)
steps_per_epoch = int(min(2000, max(50, rate / 64 * 20)))
epochs = max(1, int(steps // steps_per_epoch))
print(epochs, steps_per_epoch, f"# {rate:.0f} crops/s from {source}")
PY
fi
read -r epochs steps_per_epoch _ <"$schedule"
echo "schedule: $(cat "$schedule")"
# shellcheck disable=SC2086
python3 recipes/train_denoise.py "$data" --run-dir "$run_dir" \
    --pipeline numpy --precision mixed_bfloat16 --global-residual \
    --sigma-min 5 --sigma-max 55 --batch-size 64 --crop 128 \
    --epochs "$epochs" --steps-per-epoch "$steps_per_epoch" \
    --time-limit "$minutes" --recalibrate-batches 20 \
    --export "$run_dir/denoise.weights.h5" --verbose 2 ${TRAIN_ARGS:-}
