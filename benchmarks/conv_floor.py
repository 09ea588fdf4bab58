"""RBDN-3's multiply-add floor on one 481x321 image, against BM3D.

Counts RBDN-3's multiply-adds on one 481x321 gray image, each convolution
at its own resolution, and measures this machine's float32 multiply-add
rate on the network's most common convolution (3 x 3, 64 to 64 channels,
with ReLU, at half the image's size, as `conv2_2` to `conv2_9`) and on a
square matrix product. The count divided by the faster rate is the floor:
the time RBDN-3 would take if every convolution ran at that rate and
everything else were free. Then
it times the network (as built, and with batch normalization folded) and
BM3D on the same noisy image, and gives the BM3D / RBDN-3 ratios,
including the best one direct convolutions could reach on this machine.

It shows whether a CPU's convolutions already run at its multiply-add
rate, in which case only fewer multiply-adds make the network faster
(`docs/performance.md`, "The multiply-add floor of one image"). Records
Markdown under `benchmarks/results/`.

Run from the repository root:

    KERAS_BACKEND=tensorflow python benchmarks/conv_floor.py
"""

import argparse
import datetime
import math
import statistics

import dncnn
import keras
import numpy as np
import speed
from keras import ops

import keras_rbdn
from keras_rbdn.layers import Conv2D


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--matrix-size",
        type=int,
        default=2048,
        help="side of the square matrix product that measures the rate",
    )
    speed.add_bm3d_arguments(parser, repeats=5)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default: benchmarks/results/conv_floor_"
        "<backend>_<date>.md); '-' writes nothing",
    )
    return parser.parse_args(argv)


# The convolution rate is timed as the difference between these chains.
SHORT_CHAIN, LONG_CHAIN = 4, 12


def conv_chain(height, width, depth):
    """`depth` 3x3, 64 -> 64 convolutions with ReLU, as `conv2_2` to
    `conv2_9`, in one Keras model."""
    inputs = keras.Input((height, width, 64))
    outputs = inputs
    for _ in range(depth):
        outputs = Conv2D(64, 3, padding="same", activation="relu")(outputs)
    return keras.Model(inputs, outputs)


def rate_rows(shape, args):
    """(label, seconds, multiply-adds) of the two rate measurements.

    The convolutions run as the network's do, in a compiled model called
    with `predict_on_batch`. Their time is the difference between chains
    of `LONG_CHAIN` and `SHORT_CHAIN` layers, so that copying the maps in
    and out and the call itself cancel out. The two chains and the matrix
    product are timed in alternation.
    """
    rng = np.random.default_rng(0)
    height, width = (math.ceil(side / 2) for side in shape)
    maps = rng.uniform(size=(1, height, width, 64)).astype("float32")
    side = args.matrix_size
    matrix = ops.convert_to_tensor(
        rng.uniform(size=(side, side)).astype("float32")
    )
    chains = {
        depth: conv_chain(height, width, depth)
        for depth in (SHORT_CHAIN, LONG_CHAIN)
    }
    functions = {
        depth: (lambda chain=chain: chain.predict_on_batch(maps))
        for depth, chain in chains.items()
    }
    # Copied to NumPy, which waits for the result on every backend.
    functions["matrix"] = lambda: ops.convert_to_numpy(
        ops.matmul(matrix, matrix)
    )
    seconds = {
        name: statistics.median(times)
        for name, times in speed.alternate(
            functions, args.warmup, args.repeats
        ).items()
    }
    layers = LONG_CHAIN - SHORT_CHAIN
    difference = seconds[LONG_CHAIN] - seconds[SHORT_CHAIN]
    if difference <= 0:
        raise SystemExit(
            f"The {LONG_CHAIN}-layer chain took no longer than the "
            f"{SHORT_CHAIN}-layer one: the machine is too busy for this "
            "measurement. Use more --repeats."
        )
    return [
        (
            f"3x3 convolutions, 64 -> 64 channels, ReLU, 1 x {width}x{height}"
            f" (chains of {LONG_CHAIN} and {SHORT_CHAIN} layers: {layers} "
            "layers' difference)",
            difference,
            layers * height * width * 9 * 64 * 64,
        ),
        (
            f"matrix product, {side} x {side} by {side} x {side}",
            seconds["matrix"],
            side**3,
        ),
    ]


def network_seconds(noisy, args):
    """Median seconds per image of RBDN-3 as built and folded, timed in
    alternation."""
    network = keras_rbdn.build(branches=3, task="denoise")
    models = {
        "RBDN-3 as built": network,
        "RBDN-3, batch normalization folded": keras_rbdn.fold_batch_norm(
            network
        ),
    }
    batch = noisy[None, :, :, None]
    seconds = speed.alternate(
        {
            name: (lambda model=model: model.predict_on_batch(batch))
            for name, model in models.items()
        },
        args.warmup,
        args.repeats,
    )
    return {name: statistics.median(times) for name, times in seconds.items()}


def report(start, source, shape, counts, rates, networks, bm3d):
    rows, columns = shape
    pixels = rows * columns
    total = sum(counts.values()) * pixels
    best = max(multiply_adds / seconds for _, seconds, multiply_adds in rates)
    floor = total / best
    lines = [
        f"# RBDN-3's multiply-add floor on one {columns}x{rows} image, "
        f"{keras.backend.backend()}, float32",
        "",
        *speed.environment_lines(start),
        f"- image: {source}, noisy at sigma {speed.BM3D_SIGMA:g}",
        "",
        "## Multiply-adds, each convolution at its resolution",
        "",
        "| layer | GMAC |",
        "|---|---|",
        *(
            f"| {name} | {count * pixels / 1e9:.3f} |"
            for name, count in counts.items()
        ),
        f"| **total** | **{total / 1e9:.2f}** |",
        "",
        "## This machine's float32 multiply-add rate (median)",
        "",
        "| work | ms | GMAC/s |",
        "|---|---|---|",
        *(
            f"| {label} | {seconds * 1e3:.2f} | "
            f"{multiply_adds / seconds / 1e9:.1f} |"
            for label, seconds, multiply_adds in rates
        ),
        "",
        "## One image: the floor and the measured times (median)",
        "",
        "| | seconds | network GMAC / time, GMAC/s | floor / time |",
        "|---|---|---|---|",
        f"| floor at {best / 1e9:.1f} GMAC/s | {floor:.4f} | "
        f"{best / 1e9:.1f} | 1 |",
        *(
            f"| {name} (`predict_on_batch`) | {seconds:.4f} | "
            f"{total / seconds / 1e9:.1f} | {floor / seconds:.2f} |"
            for name, seconds in networks.items()
        ),
    ]
    if isinstance(bm3d, str):
        return "\n".join([*lines, f"| BM3D | {bm3d} | | |", ""])
    runs = ", ".join(f"{seconds:.2f}" for seconds in bm3d)
    median = statistics.median(bm3d)
    return "\n".join(
        [
            *lines,
            f"| BM3D (`bm3d.bm3d`; runs: {runs}) | {median:.2f} | | |",
            "",
            "## BM3D / RBDN-3",
            "",
            "| | ratio |",
            "|---|---|",
            f"| at the floor (the best direct convolutions could reach) | "
            f"{median / floor:.1f}x |",
            *(
                f"| {name} | {median / seconds:.1f}x |"
                for name, seconds in networks.items()
            ),
            "",
        ]
    )


def main(argv=None):
    args = parse_args(argv)
    start = datetime.datetime.now(datetime.timezone.utc)
    noisy, source = speed.noisy_test_image()
    counts = dncnn.multiply_adds_per_layer(
        keras_rbdn.build(branches=3, task="denoise"), size=noisy.shape
    )
    text = report(
        start,
        source,
        noisy.shape,
        counts,
        rate_rows(noisy.shape, args),
        network_seconds(noisy, args),
        speed.bm3d_seconds(noisy, args),
    )
    speed.record(
        text,
        args.output,
        f"conv_floor_{keras.backend.backend()}_{start:%Y%m%d}.md",
    )


if __name__ == "__main__":
    main()
