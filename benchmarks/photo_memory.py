"""Peak memory of `keras-rbdn denoise` on one large photo, in minutes.

Runs the command line (`keras_rbdn.cli.main`, its defaults: the shipped
model folded, ensemble 4, tiles sized by `keras_rbdn.tiling`) on a
synthetic 4:3 RGB photo of `--megapixels` (`photo_speed.photo`, written
as a PNG), with the network run for real on the first tile of each shape
of each network and that output reused for the other tiles of the shape:
every array and every tile's activations are allocated as in a real run,
so the peak resident memory is the real one, while the run takes minutes
instead of a quarter of an hour. Prints the peak; the output image is
not a denoised photo.

Run from the repository root:

    KERAS_BACKEND=tensorflow python benchmarks/photo_memory.py --megapixels 24
"""

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time

import keras
import numpy as np
import photo_speed
from PIL import Image

from keras_rbdn import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=24)
    parser.add_argument(
        "--kind", choices=tuple(photo_speed.KINDS), default="rgb"
    )
    parser.add_argument(
        "--ensemble", type=int, default=cli.ENSEMBLES["denoise"][1]
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def reuse_tile_outputs():
    """Within it, `predict_on_batch` computes once per model and shape."""
    predict = keras.Model.predict_on_batch
    outputs = {}

    def once(model, x):
        key = (id(model), x.shape)
        if key not in outputs:
            outputs[key] = np.asarray(predict(model, x))
        return outputs[key]

    keras.Model.predict_on_batch = once
    try:
        yield
    finally:
        keras.Model.predict_on_batch = predict


def main(argv=None):
    args = parse_args(argv)
    pixels = photo_speed.photo(args.megapixels, photo_speed.KINDS[args.kind])
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "photo.png")
        quantized = np.round(np.clip(pixels, 0, 1) * 255).astype("uint8")
        Image.fromarray(
            quantized.squeeze(-1) if quantized.shape[-1] == 1 else quantized
        ).save(source)
        del pixels, quantized
        start = time.perf_counter()
        command = ["denoise", source, "--ensemble", str(args.ensemble)]
        with reuse_tile_outputs():
            status = cli.main(command + ["-o", os.path.join(folder, "out.png")])
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"{args.kind} {args.megapixels:g} MP, ensemble {args.ensemble}: "
        f"peak resident memory {peak:.2f} GB (exit status {status}, "
        f"{seconds:.0f} s with tile outputs reused)"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
