"""Denoise a bundled photograph with the shipped RBDN denoiser.

Run (or `make demo`):

    python recipes/demo.py

Adds white Gaussian noise (sigma 25 on the 0-255 scale, fixed seed) to the
bundled `camera.png`, denoises it with `keras_rbdn.load("denoise")`, prints
the PSNR before and after and writes `outputs/demo.png`: noisy on the left,
denoised on the right. If this installation ships no trained denoiser, it
first fits a small RBDN on the noisy photograph itself for about a minute
(a much weaker, self-supervised stand-in) and says so.
"""

import argparse
import os
import time

# Keras comes in through keras_rbdn, which then imports it without
# TensorFlow's C++ start-up lines on stderr (`keras_rbdn/_quiet_start.py`).
os.environ.setdefault("KERAS_RBDN_QUIET_START", "1")

import numpy as np  # noqa: E402

import keras_rbdn  # noqa: E402

ASSETS = os.path.join(os.path.dirname(keras_rbdn.__file__), "assets")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default=os.path.join(ASSETS, "camera.png"))
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--output", default=os.path.join("outputs", "demo.png"))
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="use only the top-left SIZE x SIZE crop",
    )
    parser.add_argument(
        "--fit-seconds",
        type=float,
        default=60.0,
        help="fallback training time without a shipped model",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def psnr(clean, image):
    import keras  # after keras_rbdn (see the top)

    return float(
        keras.ops.convert_to_numpy(
            keras_rbdn.metrics.psnr(clean[None], np.clip(image, 0, 1)[None])
        )[0]
    )


def fallback_model(noisy, seconds, seed):
    """Fits a small RBDN to map noisy crops to themselves plus more noise.

    Without clean images, the network learns to remove the extra noise it
    is given (a Noisier2Noise-style stand-in, not the paper's training).
    """
    import keras  # after keras_rbdn (see the top)

    network = keras_rbdn.build(
        branches=2, task="denoise", c=16, D=3, global_residual=True
    )
    network.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse")
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + seconds
    height, width = noisy.shape[:2]
    size = min(64, height, width)
    while time.perf_counter() < deadline:
        tops = rng.integers(0, height - size + 1, 16)
        lefts = rng.integers(0, width - size + 1, 16)
        crops = np.stack(
            [
                noisy[t : t + size, s : s + size]
                for t, s in zip(tops, lefts, strict=True)
            ]
        )
        extra = rng.standard_normal(crops.shape).astype("float32") * 0.1
        network.train_on_batch(crops + extra, crops)
    return keras_rbdn.image_model(network, "denoise")


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    clean = keras_rbdn.inference.read_image(args.image).pixels
    clean = keras_rbdn.inference.to_channels(clean, 1)
    if args.size:
        clean = clean[: args.size, : args.size]
    noisy = keras_rbdn.evaluation.noisy_image(clean, args.sigma, args.seed, 0)

    if "denoise" in keras_rbdn.presets.available():
        model = keras_rbdn.load("denoise")
        print("Model: the shipped denoiser, keras_rbdn.load('denoise')")
    else:
        print(
            "No shipped denoiser in this installation: fitting a small RBDN "
            f"on the noisy image for {args.fit_seconds:.0f} s instead."
        )
        model = fallback_model(noisy, args.fit_seconds, args.seed)
    denoised = keras_rbdn.inference.apply_model(model, noisy)

    print(
        f"Image: {args.image} {clean.shape[1]}x{clean.shape[0]}, "
        f"noise sigma {args.sigma:g}"
    )
    print(f"PSNR before (noisy):  {psnr(clean, noisy):6.2f} dB")
    print(f"PSNR after (denoised): {psnr(clean, denoised):6.2f} dB")
    side_by_side = np.concatenate([noisy, np.clip(denoised, 0, 1)], axis=1)
    directory = os.path.dirname(args.output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    keras_rbdn.inference.write_image(args.output, side_by_side, overwrite=True)
    print(
        f"Wrote {args.output} (left: noisy, right: denoised) in "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
