"""Train RBDN for blind gray-image denoising.

Run (the paper's crop 128 and batch 64; see `docs/training.md`):

    KERAS_BACKEND=jax python recipes/train_denoise.py \
        ../shared/data/denoise/train400 --run-dir runs/denoise

Kill it at any time and start the same command again: it continues from the
last epoch's checkpoint; `--time-limit MINUTES` ends a run cleanly on a
checkpoint, so a long schedule can be trained in bounded runs.
`--distribute` trains on every local device (JAX and TensorFlow backends),
or on several machines (README: "Training on several machines").
On a machine without TensorFlow (a JAX GPU box), `--pipeline numpy` (the
default there) feeds the crops from NumPy (`keras_rbdn.data.ImagePairLoader`).

What it does: random crops (with flips and 90-degree rotations) of the gray
training images (with `--color`, RGB: see below), additive white Gaussian
noise with a standard deviation drawn per image from U[sigma_min,
sigma_max] (on the 0-255 scale; the paper's blind range [8, 50] by
default), left as it is or clipped and rounded to 8 bits as in a user's
photo (`--noise-protocol float|uint8|mixed`), MSE between the network's
output and the clean crop, Adam. The last images of the folder (in sorted order)
are held out for validation with fixed noise draws at sigma 25 (under the
same protocol).

`--color` trains `keras_rbdn.models.OpponentDenoiser`, an RGB denoiser
made of two RBDNs (on the opponent luminance, and on each chroma plane
guided by the cleaned luminance), on a folder of color photos. It starts
from a gray denoiser (`--init-weights`, by default the shipped `denoise`),
where it computes the gray model plane by plane in the opponent space, and
fine-tunes the chroma RBDN's convolutions; the luminance RBDN (with
`--train-luma`, it too) and every batch normalization stay as they are,
so the fine-tuning starts from the gray model's exact function.
`--init-chroma` starts the chroma RBDN from another RGB denoiser's
instead (such as the shipped `denoise_color`'s), with the luminance
RBDN of `--init-weights`:

    KERAS_BACKEND=tensorflow python recipes/train_denoise.py \
        ../shared/data/color/train --color --run-dir runs/denoise_color \
        --sigma-min 5 --sigma-max 55 --crop 96 --batch-size 16 \
        --steps-per-epoch 200 --epochs 46 --learning-rate 2e-4 \
        --recalibrate-batches 0 --precision mixed_bfloat16
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `common.py` sits next to this file; found also when the recipe is loaded
# by path (as the tests do).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import importlib.util  # noqa: E402

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_rbdn  # noqa: E402


def parse_args(argv=None):
    parser = common.training_parser(
        __doc__.split("\n")[0],
        data_help="folder of clean training images",
        run_dir="runs/denoise",
    )
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma-min", type=float, default=8.0)
    parser.add_argument("--sigma-max", type=float, default=50.0)
    parser.add_argument(
        "--noise-protocol",
        choices=tuple(keras_rbdn.layers.noise.QUANTIZED_FRACTIONS),
        default="float",
        help="float: noise not clipped (the papers'); uint8: the noisy "
        "crops clipped to [0, 1] and rounded to 8 bits, as in a user's "
        "photo; mixed: each crop either way with probability 1/2",
    )
    parser.add_argument("--validation-images", type=int, default=16)
    parser.add_argument(
        "--color",
        action="store_true",
        help="train the RGB `OpponentDenoiser` from a gray denoiser "
        "(--init-weights, default: the shipped `denoise`)",
    )
    parser.add_argument(
        "--init-chroma",
        help="with --color, start the chroma RBDN from this RGB "
        "denoiser's (a `.weights.h5` of an `OpponentDenoiser`, such as "
        "keras_rbdn/weights/denoise_color.weights.h5) instead of from "
        "the gray --init-weights",
    )
    parser.add_argument(
        "--train-luma",
        action="store_true",
        help="with --color, fine-tune the luminance RBDN too",
    )
    parser.add_argument(
        "--pipeline",
        choices=("tf.data", "numpy"),
        default=(
            "tf.data" if importlib.util.find_spec("tensorflow") else "numpy"
        ),
        help="input pipeline: tf.data (crops, flips and 90-degree "
        "rotations) or NumPy (crops and flips; no TensorFlow needed). "
        "Default: tf.data where TensorFlow is installed",
    )
    args = parser.parse_args(argv)
    if args.init_chroma is not None and not args.color:
        parser.error("--init-chroma needs --color")
    if args.color and args.pipeline == "numpy":
        parser.error("--color needs --pipeline tf.data")
    if args.color and args.init_weights is None:
        args.init_weights = keras_rbdn.presets.weights_path("denoise")
    # The gray denoiser an `OpponentDenoiser` starts from has one.
    args.global_residual = args.global_residual or args.color
    args.channels = 3 if args.color else 1
    return args


# ## Data


def augment(image, crop):
    """Random crop, horizontal flip and 90-degree rotation."""
    import tensorflow as tf

    image = tf.image.random_crop(image, [crop, crop, image.shape[-1]])
    image = tf.image.random_flip_left_right(image)
    return tf.image.rot90(image, tf.random.uniform([], 0, 4, tf.int32))


def make_datasets(args):
    files = keras_rbdn.inference.list_images(args.data_dir)
    images = keras_rbdn.inference.read_folder(
        args.data_dir, mode="rgb" if args.color else "gray"
    )
    if len(images) <= args.validation_images:
        raise SystemExit(
            f"{args.data_dir}: {len(images)} images, need more than "
            f"--validation-images={args.validation_images}"
        )
    train_count = len(images) - args.validation_images
    train_images = images[:train_count]
    validation_images = images[train_count:]
    smallest = min(min(image.shape[:2]) for image in train_images)
    crop = min(args.crop, smallest)

    # The clean crops are the inputs and the targets: the noise is added
    # by the model's first layer, on the accelerator, at training time only.
    if args.pipeline == "numpy":
        train = numpy_training_batches(files[:train_count], crop, args)
        # An epoch is one pass over the loader, a few batches longer than
        # asked (whole crops per image). Keras would carry a longer
        # `PyDataset` over into the next epoch and run it dry there.
        args.steps_per_epoch = len(train)
    else:
        train = tf_data_training_batches(train_images, crop, args)

    # Validation: fixed centre crops and fixed noise at sigma 25.
    rng = np.random.default_rng(1234)
    clean = np.stack(
        [center_crop(image, crop) for image in validation_images]
    ).astype("float32")
    noisy = clean + rng.standard_normal(clean.shape).astype("float32") * (
        25.0 / 255.0
    )
    # As in training: with `uint8` every crop, with `mixed` every other
    # one, clipped and rounded to 8 bits.
    fraction = keras_rbdn.layers.noise.QUANTIZED_FRACTIONS[args.noise_protocol]
    if fraction:
        step = round(1 / fraction)
        noisy[::step] = keras_rbdn.layers.noise.quantize_8bit(noisy[::step])
    return train, (noisy, clean)


def numpy_training_batches(files, crop, args):
    """Clean (input, target) crop batches from NumPy, one epoch's worth.

    With several JAX processes, each one loads its own share of every
    batch (`--batch-size` is the global batch): crops drawn with its own
    seed. (TensorFlow shards a loader itself, as it does tf.data.)
    """
    batch_size, seed = args.batch_size, args.seed
    distribution = args.distribution
    if keras.backend.backend() == "jax" and distribution.worker_count > 1:
        if batch_size % distribution.worker_count:
            raise SystemExit(
                f"--batch-size={batch_size} must be a multiple of the "
                f"{distribution.worker_count} processes"
            )
        batch_size //= distribution.worker_count
        seed += distribution.worker_index
    crops = args.steps_per_epoch * batch_size
    return keras_rbdn.data.ImagePairLoader(
        files,
        task="denoise",
        batch_size=batch_size,
        crop_size=crop,
        flips="both",
        crops_per_image=-(-crops // len(files)),
        add_noise=False,
        seed=seed,
        drop_remainder=True,
        workers=4,
    )


def tf_data_training_batches(train_images, crop, args):
    """Clean (input, target) crop batches from tf.data, repeated."""
    import tensorflow as tf

    return (
        tf.data.Dataset.from_generator(
            lambda: iter(train_images),
            output_signature=tf.TensorSpec(
                (None, None, args.channels), tf.float32
            ),
        )
        .cache()
        .repeat()
        .shuffle(len(train_images), seed=args.seed)
        .map(lambda image: augment(image, crop), tf.data.AUTOTUNE)
        .map(lambda image: (image, image))
        .batch(args.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def center_crop(image, size):
    top = (image.shape[0] - size) // 2
    left = (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size]


# ## Model


def build_color_network(args):
    """The `OpponentDenoiser` from the gray `--init-weights` (and the
    chroma RBDN of `--init-chroma`), to fine-tune."""
    gray = common.build_network(args, "denoise")
    network = keras_rbdn.models.OpponentDenoiser(
        branches=args.branches,
        filters=args.filters,
        kernel_size=args.kernel_size,
        trunk_depth=args.trunk_depth,
    )
    network.load_gray(gray)
    if args.init_chroma is not None:
        start = network.__class__.from_config(network.get_config())
        keras_rbdn.weights_files.load_weights(start, args.init_chroma)
        network.chroma.set_weights(start.chroma.get_weights())
    network.luma.trainable = args.train_luma
    keras_rbdn.training.freeze_batch_norm(network)
    return network


def make_build_model(args):
    def build_model():
        if args.color:
            network = build_color_network(args)
        else:
            network = common.build_network(args, "denoise")
        # Training model: clean image -> noisy image (random level per
        # image, identity outside training) -> network.
        clean = keras.Input((None, None, args.channels), name="clean")
        noisy = keras_rbdn.layers.RandomGaussianNoise(
            sigma_range=(args.sigma_min, args.sigma_max),
            protocol=args.noise_protocol,
            seed=args.seed,
        )(clean)
        model = keras.Model(clean, network(noisy), name="denoise_trainer")
        return common.compile_model(
            model, keras_rbdn.TASKS["denoise"].loss, args
        )

    return build_model


# ## Training


def main(argv=None):
    args = parse_args(argv)
    common.start_distribution(args)
    keras.utils.set_random_seed(args.seed)
    train, validation = make_datasets(args)
    # `--export` writes the RBDN inside the training model, without the
    # noise layer.
    return common.train_and_export(
        args, make_build_model(args), train, validation
    )


if __name__ == "__main__":
    main()
