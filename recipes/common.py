"""What the training recipes share: flags, network, optimizer, last step.

Not a recipe: `train_denoise.py`, `train_relight.py` and `train_colorize.py`
import it (each puts this folder on `sys.path` first, so that it is found
whether the recipe runs as a script or is loaded by path, as the tests do).
"""

import argparse

import keras

import keras_rbdn


def training_parser(
    description, data_help, run_dir, steps_per_epoch=200, batch_size=64
):
    """An argument parser with the flags every training recipe takes.

    The recipe adds its own flags (data and model options) to it.

    Args:
        description: str. The parser's description.
        data_help: str. Help of the positional `data_dir` argument.
        run_dir: str or `None`. Default of `--run-dir`.
        steps_per_epoch: int. Default of `--steps-per-epoch`.
        batch_size: int. Default of `--batch-size`.

    Returns:
        An `argparse.ArgumentParser`.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data_dir", help=data_help)
    parser.add_argument("--run-dir", default=run_dir)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--steps-per-epoch", type=int, default=steps_per_epoch)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--branches", type=int, default=3)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--kernel-size", type=int, default=9)
    parser.add_argument("--trunk-depth", type=int, default=9)
    parser.add_argument(
        "--global-residual",
        action="store_true",
        help="the network predicts a correction added to its input (tasks "
        "whose input and output have the same channels; not in the paper)",
    )
    parser.add_argument(
        "--distribute",
        action="store_true",
        help="data-parallel training on every device of this machine, or "
        "of several: TensorFlow reads the workers from TF_CONFIG, JAX from "
        "the three flags below (see the README)",
    )
    parser.add_argument(
        "--coordinator",
        help="JAX, several machines: HOST:PORT of process 0 (default: "
        "KERAS_DISTRIBUTION_JOB_ADDRESSES)",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        help="JAX, several machines: how many processes train (default: "
        "KERAS_DISTRIBUTION_NUM_PROCESSES)",
    )
    parser.add_argument(
        "--process-id",
        type=int,
        help="JAX, several machines: this process's rank, 0 to "
        "--num-processes - 1 (default: KERAS_DISTRIBUTION_PROCESS_ID)",
    )
    parser.add_argument(
        "--precision",
        default="float32",
        choices=keras_rbdn.training.PRECISIONS,
        help="Keras dtype policy of the training model (the weights and "
        "checkpoints stay float32)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="minutes this run may train: it stops after the last epoch "
        "that fits, on a checkpoint; the same command resumes",
    )
    parser.add_argument(
        "--recalibrate-batches",
        type=int,
        default=100,
        help="before --export, re-estimate batch-norm statistics on this "
        "many training batches (0: keep the moving averages)",
    )
    parser.add_argument(
        "--export", help="write the final network weights (no optimizer) here"
    )
    parser.add_argument(
        "--init-weights",
        help="start from these network weights (a `.weights.h5` of the "
        "same architecture, such as a shipped model's) instead of a random "
        "initialization; a checkpoint in --run-dir still takes precedence",
    )
    parser.add_argument(
        "--freeze-batch-norm",
        action="store_true",
        help="keep every batch normalization in inference mode, with its "
        "statistics as they are (fine-tuning from --init-weights); no "
        "recalibration before --export",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", default="auto")
    return parser


def start_distribution(args):
    """Sets `args.distribution` from the flags; call it before anything else.

    TensorFlow's multi-worker strategy and JAX's multi-process start must
    come before any other computation, reading the data included.
    """
    args.distribution = keras_rbdn.training.distribution(
        args.distribute,
        coordinator=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    return args.distribution


def build_network(args, task, **overrides):
    """The RBDN of the flags' architecture (`keras_rbdn.build`).

    Built under the `--precision` dtype policy (which stays the global
    policy), with the `--init-weights` loaded if given.
    """
    keras.config.set_dtype_policy(args.precision)
    network = keras_rbdn.build(
        branches=args.branches,
        task=task,
        filters=args.filters,
        kernel_size=args.kernel_size,
        trunk_depth=args.trunk_depth,
        global_residual=args.global_residual,
        **overrides,
    )
    if args.init_weights:
        keras_rbdn.weights_files.load_weights(network, args.init_weights)
    if args.freeze_batch_norm:
        keras_rbdn.training.freeze_batch_norm(network)
    return network


def compile_model(model, loss, args):
    """Compiles `model` with Adam and the cosine schedule of the flags."""
    return keras_rbdn.training.compile_for_training(
        model,
        loss,
        learning_rate=args.learning_rate,
        total_steps=args.epochs * args.steps_per_epoch,
    )


def train_and_export(args, build_model, train, validation):
    """Trains (resuming from `--run-dir`), then writes `--export` if given.

    Args:
        args: The parsed flags of `training_parser`, after
            `start_distribution`.
        build_model: callable returning the compiled training model.
        train: The repeated training `tf.data.Dataset` of `(x, y)` batches;
            its first `--recalibrate-batches` batches recalibrate batch
            normalization before the export.
        validation: The validation data.

    Returns:
        The trained model (the chief's, from the last checkpoint, when
        several workers trained and `--export` is given).
    """
    model, _ = keras_rbdn.training.fit(
        build_model,
        train,
        epochs=args.epochs,
        run_dir=args.run_dir,
        validation_data=validation,
        steps_per_epoch=args.steps_per_epoch,
        distribute=args.distribution,
        time_limit=None if args.time_limit is None else args.time_limit * 60,
        verbose=args.verbose if args.verbose == "auto" else int(args.verbose),
    )
    distribution = args.distribution
    if args.export and not distribution.is_chief:
        print(f"Worker {distribution.worker_index}: the chief writes --export")
    elif args.export:
        if distribution.worker_count > 1:
            # Recalibrated and exported by the chief alone, on its own
            # devices: a model outside the distribution, from the last
            # checkpoint.
            model = build_model()
            keras_rbdn.training.restore_checkpoint(model, args.run_dir)
        keras_rbdn.training.export_weights(
            model,
            args.export,
            recalibration_data=train,
            recalibrate_batches=args.recalibrate_batches,
        )
        print(f"Wrote {args.export}")
    return model
