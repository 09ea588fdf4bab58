"""Does a trained RBDN-3 keep its PSNR in bfloat16 (and float16)?

Trains RBDN-3 in float32 for a fixed time on random crops of the bundled
`camera.png` (top 384 rows) with Gaussian noise, sigma ~ U[5, 50] / 255,
then denoises the held-out bottom 128 rows (sigma 25, fixed seed) with the
same weights under the float32, mixed_bfloat16 and mixed_float16 policies
and reports each PSNR. The issue's target: bfloat16 within 0.1 dB of
float32. With `--compare-forms`, each policy is run a second time with
`NarrowConv2D`'s blocks form (used under JAX on a GPU) turned off, which
shows whether that form changes the PSNR. Records Markdown under
`benchmarks/results/`.

Run from the repository root:

    KERAS_BACKEND=tensorflow python benchmarks/mixed_precision.py
    KERAS_BACKEND=jax python benchmarks/mixed_precision.py --seconds 120
    KERAS_BACKEND=jax python benchmarks/mixed_precision.py --shipped \\
        --compare-forms
"""

import argparse
import datetime
import os
import sys
import time

import keras
import numpy as np
from PIL import Image

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCHMARKS))

import speed  # noqa: E402

import keras_rbdn  # noqa: E402
from keras_rbdn import backend  # noqa: E402
from keras_rbdn.layers import narrow_conv  # noqa: E402

TEST_SIGMA = 25.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="skip training; test the shipped denoiser "
        "(keras_rbdn.load('denoise'), trained on Train400)",
    )
    parser.add_argument(
        "--compare-forms",
        action="store_true",
        help="also run each policy with NarrowConv2D's blocks form off",
    )
    parser.add_argument("--output", default=None, help="'-' writes nothing")
    return parser.parse_args(argv)


def camera():
    path = os.path.join(
        os.path.dirname(keras_rbdn.__file__), "assets", "camera.png"
    )
    return np.asarray(Image.open(path).convert("L"), "float32") / 255.0


def psnr(clean, estimate):
    error = np.mean((np.clip(estimate, 0.0, 1.0) - clean) ** 2)
    return 10.0 * np.log10(1.0 / error)


def train(image, args, rng):
    keras.mixed_precision.set_global_policy("float32")
    model = keras_rbdn.build(branches=3, task="denoise")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    rows, cols = image.shape
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        tops = rng.integers(0, rows - args.crop, args.batch)
        lefts = rng.integers(0, cols - args.crop, args.batch)
        clean = np.stack(
            [
                image[t : t + args.crop, s : s + args.crop]
                for t, s in zip(tops, lefts, strict=True)
            ]
        )[..., None]
        sigma = rng.uniform(5, 50, (args.batch, 1, 1, 1)) / 255.0
        noisy = clean + sigma * rng.normal(size=clean.shape)
        model.train_on_batch(noisy.astype("float32"), clean)
        steps += 1
    return model, steps, time.perf_counter() - start


def narrow_forms(model):
    """`{layer name: form}` of the model's `NarrowConv2D` layers."""
    return {
        layer.name: layer._form or "plain"
        for layer in model.layers
        if isinstance(layer, narrow_conv.NarrowConv2D)
    }


def evaluate(build, weights, clean, noisy, compare_forms=False):
    """PSNR of the same weights under each policy; `build()` makes the net.

    Returns `{(policy, forms): PSNR}`, `forms` naming the form of each
    `NarrowConv2D`; with `compare_forms`, each policy is run again with the
    blocks form turned off.
    """
    scores = {}
    try:
        for turned_off in [(), ("blocks",)] if compare_forms else [()]:
            with backend.without(*turned_off):
                for policy in speed.PRECISIONS:
                    keras.mixed_precision.set_global_policy(policy)
                    network = build()
                    scores.update(
                        _score(network, weights, clean, noisy, policy)
                    )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return scores


def _score(model, weights, clean, noisy, policy):
    """`{(policy, forms): PSNR}` of `model` given `weights`."""
    model.set_weights(weights)
    output = model.predict_on_batch(noisy[None, :, :, None])[0, :, :, 0]
    forms = ", ".join(
        f"{name} {form}" for name, form in narrow_forms(model).items()
    )
    return {(policy, forms): psnr(clean, output)}


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(0)
    image = camera()
    train_part, test_clean = image[:384], image[384:]
    noise = np.random.default_rng(1).normal(size=test_clean.shape)
    test_noisy = (test_clean + TEST_SIGMA / 255.0 * noise).astype("float32")
    if args.shipped:
        keras.mixed_precision.set_global_policy("float32")
        model = keras_rbdn.load("denoise", network_only=True)
        scores = evaluate(
            lambda: keras_rbdn.presets.build_network("denoise"),
            model.get_weights(),
            test_clean,
            test_noisy,
            args.compare_forms,
        )
        training = (
            "- model: the shipped denoiser (`keras_rbdn.load('denoise')`, "
            "trained on Train400, see docs/results.md; camera.png is "
            "not in it)"
        )
    else:
        model, steps, seconds = train(train_part, args, rng)
        scores = evaluate(
            lambda: keras_rbdn.build(branches=3, task="denoise"),
            model.get_weights(),
            test_clean,
            test_noisy,
            args.compare_forms,
        )
        training = (
            f"- training: float32, Adam 1e-3, {steps} steps of "
            f"{args.batch} x {args.crop}x{args.crop} crops of camera.png "
            f"rows 0-383, sigma ~ U[5, 50], {seconds:.0f} s"
        )
    backend = keras.backend.backend()
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"# Mixed precision: trained RBDN-3, {backend}",
        "",
        f"- date: {now:%Y-%m-%d %H:%M} UTC",
        f"- command: `KERAS_BACKEND={backend} python "
        f"benchmarks/mixed_precision.py {' '.join(sys.argv[1:])}`",
        f"- keras {keras.__version__}, load average at the end "
        + "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        training,
        f"- test: camera.png rows 384-511 (128 x 512), sigma "
        f"{TEST_SIGMA:g}, noisy PSNR {psnr(test_clean, test_noisy):.2f} dB",
        "",
        "| policy (same trained weights) | `NarrowConv2D` forms | PSNR, dB "
        "| minus float32 in the same forms, dB |",
        "|---|---|---|---|",
    ]
    for (policy, forms), score in scores.items():
        lines.append(
            f"| {policy} | {forms} | {score:.3f} "
            f"| {score - scores['float32', forms]:+.3f} |"
        )
    as_chosen = next(forms for _, forms in scores)
    gap = abs(
        scores["mixed_bfloat16", as_chosen] - scores["float32", as_chosen]
    )
    verdict = "met" if gap <= 0.1 else "NOT met"
    lines += ["", f"Target |bfloat16 - float32| <= 0.1 dB: {verdict}."]
    speed.record(
        "\n".join(lines) + "\n",
        args.output,
        f"mixed_precision_{backend}_{'shipped_' if args.shipped else ''}"
        f"{datetime.date.today():%Y%m%d}.md",
    )


if __name__ == "__main__":
    main()
