"""How far tiled inference is from whole-image inference, per tile margin.

Runs each shipped denoiser (batch normalization folded, as the CLI runs
it) on a noisy 1024x1024 mosaic of CBSD68 photos (sigma 25; the bundled
chelsea.png resized when `../shared/data` is not there), once whole and
once in small tiles (a 320-pixel core between the margins, so that many
cuts cross the image) for each margin, and records the largest and mean
absolute difference and the share of 8-bit pixels that change. The
default margin (`inference.default_margin`) is chosen from this table.
Records Markdown under `benchmarks/results/`.

Run from the repository root:

    KERAS_BACKEND=tensorflow python benchmarks/tile_margin.py
"""

import argparse
import datetime
import os

import keras
import numpy as np
import photo_speed
import speed

import keras_rbdn
from keras_rbdn import inference

SIGMA = 25.0
CORE = 320


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--margins", type=int, nargs="+", default=[48, 64, 80, 96, 112]
    )
    parser.add_argument(
        "--models", nargs="+", default=["denoise", "denoise_color"]
    )
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default: benchmarks/results/tile_margin_"
        "<backend>_<machine>.md); '-' writes nothing",
    )
    return parser.parse_args(argv)


def mosaic(data, size):
    """A `size` x `size` RGB mosaic of CBSD68 photos, or chelsea.png
    resized; and where it comes from."""
    folder = os.path.join(data, "color", "cbsd68")
    if not os.path.isdir(folder):
        return photo_speed.clean_photo(size, size), "chelsea.png resized"
    paths = inference.list_images(folder)
    canvas = np.zeros((size, size, 3), "float32")
    top = index = 0
    while top < size:
        left = tallest = 0
        while left < size:
            pixels = inference.read_image(paths[index % len(paths)]).pixels
            index += 1
            rows = min(pixels.shape[0], size - top)
            columns = min(pixels.shape[1], size - left)
            canvas[top : top + rows, left : left + columns] = pixels[
                :rows, :columns, :3
            ]
            left += columns
            tallest = max(tallest, rows)
        top += tallest
    return canvas, "a mosaic of CBSD68 photos"


def differences(model, noisy, margins):
    """Table rows: margin, largest and mean difference, 8-bit changes."""
    whole = np.asarray(model.predict_on_batch(noisy[None]))[0]
    rows = []
    for margin in margins:
        tiled = inference.predict_image(
            model, noisy, tile_size=2 * margin + 31 + CORE, margin=margin
        )
        difference = np.abs(tiled - whole) * 255
        levels = np.round(tiled * 255) != np.round(whole * 255)
        rows.append(
            f"| {margin} | {difference.max():.4f} | {difference.mean():.6f} "
            f"| {levels.mean() * 100:.4f} |"
        )
    return rows


def main(argv=None):
    args = parse_args(argv)
    start = datetime.datetime.now(datetime.timezone.utc)
    clean, source = mosaic(args.data, args.size)
    rng = np.random.default_rng(0)
    noisy_rgb = clean + rng.normal(scale=SIGMA / 255, size=clean.shape)
    backend = keras.backend.backend()
    lines = [
        *speed.report_header(
            "Tiled against whole-image inference per tile margin",
            "tile_margin.py",
            argv,
            start,
        ),
        f"- image: {args.size}x{args.size}, {source}, noise sigma "
        f"{SIGMA:g}; tiles with a {CORE}-pixel core; differences in gray "
        "levels of 255",
    ]
    for name in args.models:
        model = keras_rbdn.fold_batch_norm(keras_rbdn.load(name))
        channels = model.input_shape[-1]
        noisy = inference.to_channels(noisy_rgb.astype("float32"), channels)
        network = inference.find_rbdn(model)
        radius = inference.receptive_radius(network)
        lines += [
            "",
            f"## `{name}`: receptive radius {radius} per RBDN, default "
            f"margin {inference.default_margin(network)}",
            "",
            "| margin | largest difference | mean difference | "
            "8-bit pixels changed, % |",
            "|---|---|---|---|",
            *differences(model, noisy, args.margins),
        ]
        print("\n".join(lines[-3:]), flush=True)
    speed.record(
        "\n".join(lines) + "\n",
        args.output,
        f"tile_margin_{backend}_{photo_speed.machine_name()}.md",
    )


if __name__ == "__main__":
    main()
