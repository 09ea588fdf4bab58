"""Seconds per image of each denoising option, next to BM3D and CBM3D.

Times `inference.apply_model` with the shipped `denoise` model on one
481x321 photo (the first landscape CBSD68 image when `../shared/data` is
there, else the bundled chelsea.png cropped) with noise of sigma 25, for
gray input at ensemble 1 and 8 and for RGB input per channel and in the
opponent color space at ensemble 1, 2, 4 and 8, and with the shipped RGB
model `denoise_color` (where it is shipped) at ensemble 1, 4 and 8, timed
in alternation in one process; then BM3D (`bm3d.bm3d`, gray) and CBM3D
(`bm3d.bm3d_rgb`) on the same image, when the `bm3d` package is installed.
Records Markdown under `benchmarks/results/`.

Run from the repository root:

    KERAS_BACKEND=tensorflow python benchmarks/denoise_options.py
"""

import argparse
import datetime
import os
import statistics
import sys
import time

import keras
import numpy as np
import speed

import keras_rbdn
from keras_rbdn import inference

SIGMA = 25.0
ROWS, COLUMNS = speed.BM3D_SHAPE
OPTIONS = {
    # label: (shipped model, image channels, color space, ensemble)
    "gray, ensemble 1": ("denoise", 1, "opponent", 1),
    "gray, ensemble 8": ("denoise", 1, "opponent", 8),
    "RGB per channel, ensemble 1": ("denoise", 3, "per_channel", 1),
    "RGB opponent, ensemble 1": ("denoise", 3, "opponent", 1),
    "RGB opponent, ensemble 2": ("denoise", 3, "opponent", 2),
    "RGB opponent, ensemble 4": ("denoise", 3, "opponent", 4),
    "RGB opponent, ensemble 8": ("denoise", 3, "opponent", 8),
    "RGB `denoise_color`, ensemble 1": ("denoise_color", 3, None, 1),
    "RGB `denoise_color`, ensemble 4": ("denoise_color", 3, None, 4),
    "RGB `denoise_color`, ensemble 8": ("denoise_color", 3, None, 8),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    speed.add_bm3d_arguments(parser, repeats=2)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default: benchmarks/results/denoise_options_"
        "<backend>.md); '-' writes nothing",
    )
    return parser.parse_args(argv)


def test_photo(data):
    """A 321x481 RGB photo in [0, 1] and where it comes from."""
    folder = os.path.join(data, "color", "cbsd68")
    if os.path.isdir(folder):
        for path in inference.list_images(folder):
            pixels = inference.read_image(path).pixels
            if pixels.shape[:2] == (ROWS, COLUMNS):
                return pixels, f"CBSD68 {os.path.basename(path)}"
    chelsea = os.path.join(
        os.path.dirname(keras_rbdn.__file__), "assets", "chelsea.png"
    )
    pixels = inference.read_image(chelsea).pixels
    rows, columns = min(ROWS, pixels.shape[0]), min(COLUMNS, pixels.shape[1])
    return pixels[:rows, :columns], "chelsea.png cropped"


def bm3d_seconds(noisy, args):
    """Median seconds of BM3D (gray) or CBM3D (RGB) on `noisy`, or why
    it was not run."""
    if args.no_bm3d:
        return "skipped (--no-bm3d)"
    denoise = keras_rbdn.evaluation.bm3d_denoiser()
    if denoise is None:
        return "not installed (pip install bm3d)"
    seconds = []
    for _ in range(args.bm3d_repeats):
        start = time.perf_counter()
        denoise(noisy, SIGMA)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main(argv=None):
    args = parse_args(argv)
    start = datetime.datetime.now(datetime.timezone.utc)
    load_before = speed.load_average()
    photo, source = test_photo(args.data)
    rng = np.random.default_rng(0)
    noisy_rgb = photo + rng.normal(scale=SIGMA / 255, size=photo.shape)
    noisy_rgb = noisy_rgb.astype("float32")
    noisy = {3: noisy_rgb, 1: inference.to_channels(noisy_rgb, 1)}
    options = {
        label: option
        for label, option in OPTIONS.items()
        if option[0] in keras_rbdn.presets.available()
    }
    models = {name: keras_rbdn.load(name) for name, *_ in options.values()}

    def run(name, channels, color_space, ensemble):
        return inference.apply_model(
            models[name],
            noisy[channels],
            color_space=color_space or "opponent",
            ensemble=ensemble,
        )

    functions = {
        label: (lambda option=option: run(*option))
        for label, option in options.items()
    }
    seconds = speed.alternate(functions, args.warmup, args.repeats)
    medians = {
        label: statistics.median(times) for label, times in seconds.items()
    }
    references = {1: bm3d_seconds(noisy[1], args)}
    references[3] = bm3d_seconds(noisy[3], args)
    names = {1: "BM3D", 3: "CBM3D"}

    lines = [
        f"# Denoising options: seconds per {COLUMNS}x{ROWS} image, "
        f"{keras.backend.backend()}",
        "",
        "- command: `KERAS_BACKEND="
        f"{keras.backend.backend()} python benchmarks/denoise_options.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
        + "`",
        *speed.environment_lines(start),
        f"- image: {source}, noise sigma {SIGMA:g}; models: shipped "
        f"{', '.join(f'`{name}`' for name in models)} through "
        "`inference.apply_model`",
        f"- median of {args.repeats} calls each, options timed in "
        f"alternation; BM3D/CBM3D median of {args.bm3d_repeats}",
        f"- load average before: {load_before}; after: {speed.load_average()}",
        "",
        "| option | seconds | BM3D (gray) or CBM3D (RGB) seconds | "
        "times faster than it |",
        "|---|---|---|---|",
    ]
    for label, (_, channels, _, _) in options.items():
        reference = references[channels]
        if isinstance(reference, str):
            cells = f"{names[channels]}: {reference} | -"
        else:
            cells = f"{reference:.2f} | {reference / medians[label]:.1f}x"
        lines.append(f"| {label} | {medians[label]:.3f} | {cells} |")
    speed.record(
        "\n".join(lines) + "\n",
        args.output,
        f"denoise_options_{keras.backend.backend()}.md",
    )


if __name__ == "__main__":
    main()
