"""Train RBDN to relight faces to frontal lighting (Extended Yale B).

Run:

    KERAS_BACKEND=jax python recipes/train_relight.py \
        ../shared/data/relight --run-dir runs/relight

Kill it at any time and start the same command again: it continues from the
last epoch's checkpoint. `--distribute` trains on every local device (JAX
and TensorFlow backends), or on several machines (README: "Training on
several machines").

A pair maps a face under any of the database's point-light directions to
the same face lit along the camera axis (`yaleBxx_P00A+000E+00.png`). The
split is by subject: the validation subjects (a seeded 20% by default,
written to `split.txt` in the run folder) are never seen in training, so
the validation PSNR measures generalization to new faces. MSE loss, Adam,
whole images (192 x 168, or `--image-size` to downscale).

For faces beyond the training subjects: `--augment` flips, shifts and
scales each pair (input and target alike), `--augment-gain` varies the
input's brightness; `--include-canonical` adds each subject's identity
pair and `--frontal-repeats` repeats the pairs lit within 15 degrees of
frontal, so that the network learns to leave a well-lit face alone.
`--align-targets` moves each subject's canonical image onto its inputs
(the database crops it a few pixels apart; `keras_rbdn.data.relight`),
for training and validation.
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
        data_help="Yale B root, one folder a subject",
        run_dir="runs/relight",
        steps_per_epoch=100,
        batch_size=16,
    )
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("HEIGHT", "WIDTH"),
    )
    parser.add_argument("--validation-subjects", type=float, default=0.2)
    parser.add_argument("--lightings-per-subject", type=int, default=None)
    parser.add_argument(
        "--validation-pairs",
        type=int,
        default=None,
        help="validate on an evenly spaced subset this big",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="random horizontal flips, shifts (up to 3%%) and scales (up to "
        "5%%) of each training pair, the same for input and target",
    )
    parser.add_argument(
        "--augment-gain",
        type=float,
        default=0.0,
        help="multiply each training input's brightness by a random gain "
        "in [1 - G, 1 + G] (the target is left as it is)",
    )
    parser.add_argument(
        "--include-canonical",
        action="store_true",
        help="also train on each subject's identity pair (the canonically "
        "lit face to itself)",
    )
    parser.add_argument(
        "--frontal-repeats",
        type=int,
        default=1,
        help="the training pairs lit within 15 degrees of frontal (and the "
        "identity pairs of --include-canonical) appear this many times",
    )
    parser.add_argument(
        "--align-targets",
        action="store_true",
        help="move each subject's canonical image onto its inputs (the "
        "database crops it up to 10 pixels apart), in training and "
        "validation",
    )
    args = parser.parse_args(argv)
    if args.frontal_repeats < 1:
        parser.error("--frontal-repeats must be at least 1")
    if args.validation_subjects >= 1:
        args.validation_subjects = int(args.validation_subjects)
    return args


# ## Data


def make_datasets(args):
    subjects = keras_rbdn.data.list_relight_subjects(args.data_dir)
    train_subjects, validation_subjects = (
        keras_rbdn.data.split_relight_subjects(
            subjects, args.validation_subjects, seed=args.seed
        )
    )
    os.makedirs(args.run_dir, exist_ok=True)
    with open(os.path.join(args.run_dir, "split.txt"), "w") as file:
        file.write("train: " + " ".join(train_subjects) + "\n")
        file.write("validation: " + " ".join(validation_subjects) + "\n")
    load = dict(
        image_size=args.image_size,
        lightings_per_subject=args.lightings_per_subject,
        seed=args.seed,
        align_targets=args.align_targets,
    )
    train_x, train_y = keras_rbdn.data.load_relight_arrays(
        args.data_dir,
        train_subjects,
        include_canonical=args.include_canonical,
        **load,
    )
    if args.frontal_repeats > 1:
        frontal_x, frontal_y = keras_rbdn.data.load_relight_arrays(
            args.data_dir,
            train_subjects,
            include_canonical=args.include_canonical,
            within_degrees=keras_rbdn.data.NEAR_FRONTAL_DEGREES,
            **load,
        )
        repeats = args.frontal_repeats - 1
        train_x = np.concatenate([train_x, *[frontal_x] * repeats])
        train_y = np.concatenate([train_y, *[frontal_y] * repeats])
    validation_x, validation_y = keras_rbdn.data.load_relight_arrays(
        args.data_dir, validation_subjects, **load
    )
    if args.validation_pairs and len(validation_x) > args.validation_pairs:
        stride = -(-len(validation_x) // args.validation_pairs)
        validation_x = validation_x[::stride]
        validation_y = validation_y[::stride]
    print(
        f"{len(train_x)} training pairs ({len(train_subjects)} subjects), "
        f"{len(validation_x)} validation pairs ({validation_subjects})"
    )
    augment = None
    if args.augment or args.augment_gain:
        augment = keras_rbdn.data.relight_augmentation(
            flip=args.augment,
            shift=0.03 if args.augment else 0.0,
            scale=0.05 if args.augment else 0.0,
            gain=args.augment_gain,
            seed=args.seed,
        )
    train = keras_rbdn.data.relight_dataset(
        train_x,
        train_y,
        args.batch_size,
        shuffle=True,
        seed=args.seed,
        augment=augment,
    ).repeat()
    validation = keras_rbdn.data.relight_dataset(
        validation_x, validation_y, args.batch_size
    )
    return train, validation


# ## Model


def make_build_model(args):
    def build_model():
        model = common.build_network(args, "relight")
        return common.compile_model(
            model, keras_rbdn.TASKS["relight"].loss, args
        )

    return build_model


# ## Training


def main(argv=None):
    args = parse_args(argv)
    common.start_distribution(args)
    keras.utils.set_random_seed(args.seed)
    train, validation = make_datasets(args)
    return common.train_and_export(
        args, make_build_model(args), train, validation
    )


if __name__ == "__main__":
    main()
