"""Train RBDN to colorize gray images, in YCbCr or in Lab.

Run:

    KERAS_BACKEND=jax python recipes/train_colorize.py \
        ../shared/data/color/train --space lab --run-dir runs/colorize_lab

Kill it at any time and start the same command again: it continues from the
last epoch's checkpoint. `--distribute` trains on every local device (JAX
and TensorFlow backends), or on several machines (README: "Training on
several machines").

Two formulations of the paper's colorization experiment:

- `--space ycbcr`: the network reads Y (BT.601) and regresses Cb and Cr
  with MSE.
- `--space lab`: the network reads L and predicts a distribution over the
  in-gamut ab bins (grid 10), trained with the class-rebalanced
  cross-entropy of Zhang et al. (2016). The ab prior is computed from the
  training folder (cached in the run folder as `ab_prior.npz`), smoothed
  (sigma 5) and mixed with the uniform distribution (lambda 0.5). Colors
  come back as the annealed mean (T = 0.38) of the predicted distribution.

The last `--validation-images` images of the folder (sorted by name) are
held out for validation (fixed center crops).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `common.py` sits next to this file; found also when the recipe is loaded
# by path (as the tests do).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_rbdn  # noqa: E402


def parse_args(argv=None):
    parser = common.training_parser(
        __doc__.split("\n")[0],
        data_help="folder of color training images",
        run_dir=None,
    )
    parser.add_argument("--space", choices=("ycbcr", "lab"), default="lab")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--validation-images", type=int, default=16)
    parser.add_argument(
        "--prior-pixels",
        type=int,
        default=10000,
        help="pixels per image counted for the ab prior",
    )
    args = parser.parse_args(argv)
    args.task = f"colorize_{args.space}"
    args.run_dir = args.run_dir or os.path.join("runs", args.task)
    return args


# ## Data


def make_datasets(args):
    files = keras_rbdn.data.list_image_files(args.data_dir)
    if len(files) <= args.validation_images:
        raise SystemExit(
            f"{args.data_dir}: {len(files)} images, need more than "
            f"--validation-images={args.validation_images}"
        )
    train_files = files[: len(files) - args.validation_images]
    validation_files = files[len(files) - args.validation_images :]
    train = keras_rbdn.data.image_dataset(
        train_files,
        task=args.task,
        batch_size=args.batch_size,
        crop_size=args.crop,
        repeat=True,
        drop_remainder=True,
        seed=args.seed,
    )
    validation = keras_rbdn.data.image_dataset(
        validation_files,
        task=args.task,
        batch_size=args.batch_size,
        crop_size=args.crop,
        shuffle=False,
        flips="none",
        rerandomize_each_iteration=False,
        seed=args.seed + 1,
    )
    return train_files, train, validation


def make_loss(args, train_files):
    """The task's loss, and for Lab the ab prior it is rebalanced with."""
    if args.space == "ycbcr":
        return keras_rbdn.TASKS[args.task].loss, None
    prior_path = os.path.join(args.run_dir, "ab_prior.npz")
    if os.path.exists(prior_path):
        prior = keras_rbdn.data.load_ab_prior(prior_path)
    else:
        os.makedirs(args.run_dir, exist_ok=True)
        prior = keras_rbdn.data.compute_ab_prior(
            train_files,
            output_path=prior_path,
            max_pixels_per_image=args.prior_pixels,
            seed=args.seed,
        )
    weights = keras_rbdn.losses.class_rebalancing_weights(prior)
    print(
        f"ab prior: {int(np.sum(np.asarray(prior) > 0))} bins used, "
        f"class weights {weights.min():.2f} .. {weights.max():.2f}"
    )
    loss = keras_rbdn.losses.RebalancedCrossEntropy(class_weights=weights)
    return loss, prior


# ## Model


def start_from_gray(network, space, prior=None):
    """Makes the untrained network predict "no color" everywhere.

    `deconv1`'s kernel is set to zero and its bias to the output of a gray
    image: the neutral chroma (Cb = Cr = 128/255) for YCbCr, the log of the
    ab prior for Lab (whose annealed mean is a faint average color). The
    first step then starts from the gray-image baseline instead of random
    colors; the kernel's gradient is not zero, so training proceeds.
    """
    deconv = network.get_layer("deconv1")
    kernel, bias = deconv.get_weights()
    if space == "ycbcr":
        gray = np.full((1, 3), 0.5, dtype="float32")
        bias = np.asarray(
            keras_rbdn.layers.color.rgb_to_ycbcr(gray, xp=np)[0, 1:], "float32"
        )
    else:
        bias = np.log(np.maximum(np.asarray(prior, "float32"), 1e-8))
    deconv.set_weights([np.zeros_like(kernel), bias])


def make_build_model(args, loss, prior=None):
    def build_model():
        model = common.build_network(args, args.task)
        if not args.init_weights:
            start_from_gray(model, args.space, prior)
        return common.compile_model(model, loss, args)

    return build_model


# ## Training


def main(argv=None):
    args = parse_args(argv)
    common.start_distribution(args)
    keras.utils.set_random_seed(args.seed)
    train_files, train, validation = make_datasets(args)
    loss, prior = make_loss(args, train_files)
    return common.train_and_export(
        args, make_build_model(args, loss, prior), train, validation
    )


if __name__ == "__main__":
    main()
