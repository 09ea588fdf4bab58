"""PyTorch: RBDN-3 with this package's batch normalization against Keras'.

Builds RBDN-3 twice with the same weights: once as `keras_rbdn.build`
makes it (`keras_rbdn.layers.BatchNormalization`, one PyTorch kernel), once
with `keras.layers.BatchNormalization` (Keras' separate operations), and
times the two alternately in one process: `train_on_batch` at a stated
batch of 128x128 crops, and `predict_on_batch` on one 481x321 gray image.
Also reports how far the two networks' first training losses and image
outputs differ. Records Markdown under `benchmarks/results/`.

Run from the repository root:

    KERAS_BACKEND=torch python benchmarks/torch_batch_norm.py
"""

import argparse
import contextlib
import datetime

import keras
import numpy as np
import speed

import keras_rbdn
from keras_rbdn.models import rbdn


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--image-repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default: benchmarks/results/torch_batch_norm_"
        "<date>.md); '-' writes nothing",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def keras_batch_norm():
    """Within it, `keras_rbdn.build` uses `keras.layers.BatchNormalization`."""
    own = rbdn.BatchNormalization
    rbdn.BatchNormalization = keras.layers.BatchNormalization
    try:
        yield
    finally:
        rbdn.BatchNormalization = own


def build_pair():
    """RBDN-3 with Keras' batch normalization (the baseline, first) and
    with this package's, with the same weights, compiled alike."""
    own = keras_rbdn.build(branches=3, task="denoise")
    with keras_batch_norm():
        baseline = keras_rbdn.build(branches=3, task="denoise")
    baseline.set_weights(own.get_weights())
    models = {"Keras'": baseline, "this package's": own}
    for model in models.values():
        model.compile(optimizer="adam", loss="mse")
    return models


def timing_rows(seconds, unit):
    return [
        f"| batch normalization | {unit}, median | min |",
        "|---|---|---|",
        *speed.speed_up_rows(seconds),
    ]


def main(argv=None):
    args = parse_args(argv)
    speed.require_backend(
        "torch_batch_norm.py", "torch", "compares PyTorch kernels"
    )
    models = build_pair()
    rng = np.random.default_rng(1)
    shape = (args.train_batch, args.train_size, args.train_size, 1)
    clean = rng.uniform(size=shape).astype("float32")
    noisy = clean + rng.normal(scale=25 / 255, size=shape).astype("float32")
    image, source = speed.gray_test_image()
    noisy_image = image + rng.normal(scale=25 / 255, size=image.shape)
    noisy_image = noisy_image[None, :, :, None].astype("float32")
    start = datetime.datetime.now(datetime.timezone.utc)

    # Same weights and batch: the image outputs (moving statistics) and
    # the first training losses (batch statistics) show how far the two
    # computations differ.
    outputs = [
        np.asarray(model.predict_on_batch(noisy_image))
        for model in models.values()
    ]
    first_losses = {
        name: float(model.train_on_batch(noisy, clean))
        for name, model in models.items()
    }
    training = speed.alternate(
        {
            name: (lambda model=model: model.train_on_batch(noisy, clean))
            for name, model in models.items()
        },
        args.warmup,
        args.repeats,
    )
    inference = speed.alternate(
        {
            name: (lambda model=model: model.predict_on_batch(noisy_image))
            for name, model in models.items()
        },
        args.warmup,
        args.image_repeats,
    )
    losses = ", ".join(f"{k} {v:.8f}" for k, v in first_losses.items())
    lines = [
        "# RBDN-3 under PyTorch: this package's batch normalization "
        "against Keras'",
        "",
        *speed.environment_lines(start),
        f"- load average at start: {speed.load_average()}",
        "- model: RBDN-3 (c=64), float32, the same initial weights, the "
        f"two timed alternately; {args.warmup} warm-up call(s) each",
        "",
        f"## Training, `train_on_batch`, {args.train_batch} x "
        f"{args.train_size}x{args.train_size} ({args.repeats} timed calls)",
        "",
        *timing_rows(training, "seconds per step"),
        "",
        f"## One 481x321 gray image ({source}), `predict_on_batch` "
        f"({args.image_repeats} timed calls)",
        "",
        *timing_rows(inference, "seconds per image"),
        "",
        "## Agreement",
        "",
        f"- first training loss from the same weights: {losses}",
        "- largest difference of the image outputs before training: "
        f"{np.abs(outputs[0] - outputs[1]).max():.2e}",
        f"- load average at the end: {speed.load_average()}",
        "",
    ]
    speed.record(
        "\n".join(lines), args.output, f"torch_batch_norm_{start:%Y%m%d}.md"
    )


if __name__ == "__main__":
    main()
