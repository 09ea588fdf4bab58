"""Batch normalization folded into the convolutions: speed and outputs.

Times the shipped denoiser (RBDN-3, 64 channels) as trained and after
`keras_rbdn.fold_batch_norm`, alternating the two in one process, at a
stated batch and size and on one 481x321 gray image, and compares their
outputs on that image (noisy at sigma 25): largest difference, pixels
that differ by more than half a gray level, and PSNR of each against the
clean image. Records Markdown under `benchmarks/results/`.

Run from the repository root:

    KERAS_BACKEND=tensorflow python benchmarks/folding.py
"""

import argparse
import datetime

import keras
import numpy as np
import speed

import keras_rbdn


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default: benchmarks/results/folding_<backend>_"
        "<date>.md); '-' writes nothing",
    )
    return parser.parse_args(argv)


def psnr(estimate, reference):
    error = np.mean((estimate.astype("float64") - reference) ** 2)
    return 10 * np.log10(1.0 / error)


def timing_rows(models, batch, args):
    seconds = speed.alternate(
        {
            name: (lambda model=model: model.predict_on_batch(batch))
            for name, model in models.items()
        },
        args.warmup,
        args.repeats,
    )
    return speed.speed_up_rows(seconds)


def main(argv=None):
    args = parse_args(argv)
    network = keras_rbdn.load("denoise", network_only=True)
    models = {
        "as trained": network,
        "folded": keras_rbdn.fold_batch_norm(network),
    }
    image, source = speed.gray_test_image()
    rng = np.random.default_rng(0)
    noisy = image + rng.normal(scale=25 / 255, size=image.shape)
    noisy = noisy[None, :, :, None].astype("float32")
    shape = (args.batch, args.size, args.size, 1)
    batch = rng.uniform(size=shape).astype("float32")
    start = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"# Batch normalization folding, {keras.backend.backend()}",
        "",
        *speed.environment_lines(start),
        f"- load average at start: {speed.load_average()}",
        "- model: the shipped `denoise` RBDN-3 (c=64), float32,",
        "  `predict_on_batch`, the two timed alternately; "
        f"{args.warmup} warm-up and {args.repeats} timed calls each",
        "",
        f"## Inference, batch {args.batch} x {args.size}x{args.size} x 1",
        "",
        "| model | seconds per call, median | min |",
        "|---|---|---|",
        *timing_rows(models, batch, args),
        "",
        f"## One 481x321 gray image ({source}), batch 1",
        "",
        "| model | seconds per image, median | min |",
        "|---|---|---|",
        *timing_rows(models, noisy, args),
        "",
    ]
    outputs = {
        name: np.clip(
            np.asarray(model.predict_on_batch(noisy))[0, ..., 0], 0, 1
        )
        for name, model in models.items()
    }
    difference = np.abs(outputs["as trained"] - outputs["folded"])
    lines += [
        "## Outputs on that image, noisy at sigma 25 (clipped to [0, 1])",
        "",
        f"- largest difference: {difference.max():.2e} "
        f"({difference.max() * 255:.2f} gray levels of 255)",
        f"- pixels differing by more than half a gray level: "
        f"{int(np.sum(difference > 0.5 / 255))} of {difference.size}",
        f"- PSNR against the clean image: as trained "
        f"{psnr(outputs['as trained'], image):.4f} dB, folded "
        f"{psnr(outputs['folded'], image):.4f} dB (noisy input "
        f"{psnr(noisy[0, ..., 0], image):.2f} dB)",
        f"- load average at the end: {speed.load_average()}",
        "",
    ]
    speed.record(
        "\n".join(lines),
        args.output,
        f"folding_{keras.backend.backend()}_{start:%Y%m%d}.md",
    )


if __name__ == "__main__":
    main()
