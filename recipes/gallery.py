"""Render the gallery: what the shipped models do, input | output | target.

Run:

    python recipes/gallery.py

Writes one PNG per task under `docs/gallery/`, each a column of rows, each
row input | output | target, with the PSNR against the target under the
input and the output:

- `denoise.png`: crops of the bundled `camera.png` (gray) and
  `chelsea.png` (color) with white Gaussian noise of sigma 25, rounded to
  8 bits like a real file, denoised as the command line does: by the gray
  `denoise_8bit` and the RGB `denoise_color_8bit` (the denoisers for
  8-bit files) with a 4-fold self-ensemble.
- `colorize_ycbcr.png`, `colorize_lab.png`: the luminance of `chelsea.png`
  colorized by the two shipped colorizers, averaged with the mirror.

Each task runs with the command line's default self-ensemble.

Relighting is not rendered by default: Extended Yale B holds photographs of
real people, for non-commercial research, and the package bundles no
faces. `--relight-data ../shared/data/relight --relight-output PATH`
renders it from a local copy into PATH, which is not meant to be committed;
its targets are the canonical images aligned onto the inputs
(`keras_rbdn.data.canonical_offset`).

Regenerate the gallery whenever the shipped weights change.
"""

import argparse
import glob
import os
import time

# Keras comes in through keras_rbdn, which then imports it without
# TensorFlow's C++ start-up lines on stderr (`keras_rbdn/_quiet_start.py`).
os.environ.setdefault("KERAS_RBDN_QUIET_START", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from PIL import ImageDraw  # noqa: E402
from PIL import ImageFont  # noqa: E402

import keras_rbdn  # noqa: E402
from keras_rbdn import evaluation  # noqa: E402
from keras_rbdn import inference  # noqa: E402
from keras_rbdn.cli import ENSEMBLES  # noqa: E402
from keras_rbdn.data import relight  # noqa: E402

ASSETS = os.path.join(os.path.dirname(keras_rbdn.__file__), "assets")
GAP = 4  # white pixels between panels and between rows
CAPTION = 14  # height of the caption strip under each row
SIGMA = 25.0
FRONTAL = "_P00A+000E+00"  # Yale B: the target lighting


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default=os.path.join("docs", "gallery"))
    parser.add_argument(
        "--size", type=int, default=256, help="side of the square crops"
    )
    parser.add_argument(
        "--relight-data",
        default=None,
        help="Extended Yale B folder (yaleBxx/yaleBxx_P...png); off by default",
    )
    parser.add_argument(
        "--relight-output",
        default=None,
        help="where to write the relighting PNG (required with --relight-data)",
    )
    args = parser.parse_args(argv)
    if args.relight_data and not args.relight_output:
        parser.error("--relight-data needs --relight-output")
    return args


# 1. Images: square crops of the bundled photographs.


def crop(pixels, size, top, left):
    """The `size` x `size` crop at fractional position (top, left) in [0, 1]."""
    height, width = pixels.shape[:2]
    size = min(size, height, width)
    row = int(round(top * (height - size)))
    column = int(round(left * (width - size)))
    return pixels[row : row + size, column : column + size]


def asset(name, channels):
    pixels = inference.read_image(os.path.join(ASSETS, name)).pixels
    return inference.to_channels(pixels, channels)


def psnr(target, image):
    """PSNR in dB of `image` against `target`, both in [0, 1]."""
    error = np.mean((np.clip(image, 0, 1) - target) ** 2, dtype="float64")
    return float(10 * np.log10(1.0 / error))


# 2. Tasks: each returns rows of (input, output, target).


def default_ensemble(command):
    """The self-ensemble `keras-rbdn COMMAND` runs by default."""
    return ENSEMBLES[command][1]


def denoise_rows(size):
    cleans = [
        ("denoise", crop(asset("camera.png", 1), size, 0.25, 0.5)),
        ("denoise_color", crop(asset("chelsea.png", 3), size, 0.5, 0.5)),
    ]
    rows = []
    for index, (name, clean) in enumerate(cleans):
        # On an 8-bit file the command line runs the 8-bit variant.
        model = keras_rbdn.load(keras_rbdn.presets.for_bit_depth(name, 8))
        noisy = evaluation.noisy_image(clean, SIGMA, 0, index, protocol="uint8")
        output = inference.apply_model(
            model, noisy, ensemble=default_ensemble("denoise")
        )
        rows.append((noisy, output, clean))
    return rows


def colorize_rows(name, size):
    model = keras_rbdn.load(name)
    rows = []
    for left in (0.0, 1.0):
        color = crop(asset("chelsea.png", 3), size, 0.5, left)
        gray = inference.to_channels(color, 1)
        output = inference.apply_model(
            model, gray, ensemble=default_ensemble("colorize")
        )
        rows.append((gray, output, color))
    return rows


def relight_rows(folder, subjects=3):
    """Rows for the first `subjects` subjects: one non-frontal lighting each."""
    model = keras_rbdn.load("relight")
    rows = []
    targets = sorted(glob.glob(os.path.join(folder, "*", f"*{FRONTAL}.png")))
    for index, target_path in enumerate(targets[:subjects]):
        subject = os.path.basename(target_path)[: -len(FRONTAL + ".png")]
        pattern = os.path.join(folder, "*", f"{subject}_P*.png")
        inputs = sorted(set(glob.glob(pattern)) - {target_path})
        # A different lighting for each subject, the same on every run.
        source = inputs[(7 * index + 11) % len(inputs)]
        lit, target = (
            inference.to_channels(inference.read_image(path).pixels, 1)
            for path in (source, target_path)
        )
        offset = relight.canonical_offset(folder, subject)
        output = inference.apply_model(
            model, lit, ensemble=default_ensemble("relight")
        )
        rows.append((lit, output, relight.shift_image(target, offset)))
    return rows


# 3. Layout: rows of input | output | target, captions under each row.


def render(rows):
    """One RGB image: rows of three panels, a caption strip under each."""
    rows = [[inference.to_channels(p, 3) for p in row] for row in rows]
    height = max(panel.shape[0] for row in rows for panel in row)
    width = max(panel.shape[1] for row in rows for panel in row)
    row_height = height + CAPTION
    canvas_height = len(rows) * row_height + (len(rows) - 1) * GAP
    canvas = np.ones((canvas_height, 3 * width + 2 * GAP, 3), "float32")
    for index, row in enumerate(rows):
        top = index * (row_height + GAP)
        for column, panel in enumerate(row):
            left = column * (width + GAP)
            canvas[top : top + panel.shape[0], left : left + panel.shape[1]] = (
                np.clip(panel, 0, 1)
            )
    image = Image.fromarray(np.round(canvas * 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for index, row in enumerate(rows):
        target = row[2]
        captions = [
            f"input {psnr(target, row[0]):.2f} dB",
            f"output {psnr(target, row[1]):.2f} dB",
            "target",
        ]
        top = index * (row_height + GAP) + height + 1
        for column, caption in enumerate(captions):
            left = column * (width + GAP) + 2
            draw.text((left, top), caption, (0, 0, 0), font)
    return np.asarray(image, "float32") / 255


def write(path, rows, name):
    for index, (given, output, target) in enumerate(rows):
        print(
            f"{name} row {index}: input {psnr(target, given):.2f} dB, "
            f"output {psnr(target, output):.2f} dB"
        )
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    inference.write_image(path, render(rows), overwrite=True)
    print(f"Wrote {path}")


# 4. Main: the bundled-image tasks, then relighting only when asked.


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    out = args.output_dir
    write(os.path.join(out, "denoise.png"), denoise_rows(args.size), "denoise")
    for name in ("colorize_ycbcr", "colorize_lab"):
        rows = colorize_rows(name, args.size)
        write(os.path.join(out, f"{name}.png"), rows, name)
    if args.relight_data:
        write(args.relight_output, relight_rows(args.relight_data), "relight")
    print(f"Done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
