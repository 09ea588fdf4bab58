"""Where RBDN-3's inference time goes: variants that each leave a part out.

A profile without a profiler. The script times RBDN-3 as built, then
variants built with `keras_rbdn.build` overrides that each remove one
kind of work:
- batch normalization (`batch_norm=False`, the folded inference form);
- the branch merges (`merge="none"`: no concatenations, and fewer
  multiply-adds in the convolutions after them);
- the pooling switches and unpooling (`upsampling="bilinear"`);
- the branches altogether (`branches=0`).

It also times DnCNN-17 for scale. The models are timed alternately in one
process (`predict_on_batch`, after warm-up; medians), with the
multiply-adds per pixel of each. Where removing a part saves more time
than its multiply-adds explain, that part costs memory passes, not
arithmetic. Records Markdown under `benchmarks/results/`.

Run from the repository root, for example on a JAX GPU machine
(`benchmarks/gpu_speed.sh` runs it there):

    KERAS_BACKEND=jax python benchmarks/variants.py --precision mixed_bfloat16
"""

import argparse
import datetime
import statistics

import dncnn
import keras
import numpy as np
import speed

import keras_rbdn

VARIANTS = {
    "RBDN-3 as built": {},
    "no batch norm": {"batch_norm": False},
    "no branch merges (merge='none')": {"merge": "none"},
    "bilinear upsampling (no switches)": {"upsampling": "bilinear"},
    "no branches (B_0)": {"branches": 0},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    speed.add_timing_arguments(parser, "variants")
    return parser.parse_args(argv)


def build_models():
    models = {
        name: keras_rbdn.build(task="denoise", **{"branches": 3, **overrides})
        for name, overrides in VARIANTS.items()
    }
    models["DnCNN-17 (for scale)"] = dncnn.dncnn(depth=17)
    for model in models.values():
        model.compile(loss="mse")
    return models


def main(argv=None):
    args = parse_args(argv)
    keras.mixed_precision.set_global_policy(args.precision)
    models = build_models()
    shape = (args.batch, args.size, args.size, 1)
    batch = np.random.default_rng(0).uniform(size=shape).astype("float32")
    start = datetime.datetime.now(datetime.timezone.utc)
    load_at_start = speed.load_average()
    seconds = speed.alternate(
        {
            name: (lambda model=model: model.predict_on_batch(batch))
            for name, model in models.items()
        },
        args.warmup,
        args.repeats,
    )
    megapixels = np.prod(shape[:3]) / 1e6
    full = statistics.median(seconds["RBDN-3 as built"])
    rows = []
    for name, model in models.items():
        median = statistics.median(seconds[name])
        rows.append(
            f"| {name} | {round(dncnn.multiply_adds_per_pixel(model)):,} | "
            f"{median * 1e3:.2f} | {min(seconds[name]) * 1e3:.2f} | "
            f"{megapixels / median:.2f} | {(median - full) * 1e3:+.2f} |"
        )
    backend = keras.backend.backend()
    lines = [
        f"# RBDN-3 variants, inference, {backend}, {args.precision}",
        "",
        *speed.environment_lines(start),
        f"- load average at start: {load_at_start}; at the end: "
        f"{speed.load_average()}",
        f"- batch {args.batch} x {args.size}x{args.size} x 1, "
        "`predict_on_batch`, models timed alternately; "
        f"{args.warmup} warm-up and {args.repeats} timed calls each",
        "",
        "| model | multiply-adds per pixel | ms per call, median | min | "
        "MP/s | minus RBDN-3, ms |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    speed.record(
        "\n".join(lines),
        args.output,
        f"variants_{backend}_{args.precision}_{start:%Y%m%d}.md",
    )


if __name__ == "__main__":
    main()
