"""One worker of a two-worker training run, for `multi_worker_test.py`.

    python tests/multi_worker_run.py RUN_DIR EPOCHS OUT.npz \
        [--kill-at-epoch N] [--time-limit SECONDS]

The test starts two of these and either `TF_CONFIG` (TensorFlow) or
`KERAS_DISTRIBUTION_*` (JAX) naming the two workers. Each trains a tiny
RBDN with `keras_rbdn.training.fit`, then writes its weights, optimizer
step, trained epochs and the part of the first batch it is fed to
`OUT.npz`. With `--kill-at-epoch`, the chief SIGKILLs itself in the middle
of that epoch (counted from 0), after its checkpoint of the epoch before.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from tiny_trainer import KillAt  # noqa: E402 (a file next to this one)

import keras_rbdn  # noqa: E402
from keras_rbdn import training  # noqa: E402

STEPS = 3
# The global batch: each of the two workers is fed half of it.
BATCH = 4


def build_model():
    model = keras_rbdn.build(
        branches=1, task="denoise", filters=4, kernel_size=3, trunk_depth=1
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def images():
    rng = np.random.default_rng(0)
    return rng.random((BATCH * STEPS, 16, 16, 1), dtype="float32")


def dataset():
    import tensorflow as tf

    x = images()
    return tf.data.Dataset.from_tensor_slices((x, x)).batch(BATCH).repeat()


def first_local_batch(distribution):
    """The part of the first global batch that `fit` feeds this worker."""
    if keras.backend.backend() == "jax":
        return next(iter(distribution.local_data(dataset())))[0].numpy()
    strategy = distribution.strategy
    batches = strategy.experimental_distribute_dataset(dataset())
    return strategy.experimental_local_results(next(iter(batches))[0])[0]


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("epochs", type=int)
    parser.add_argument("out")
    parser.add_argument("--kill-at-epoch", type=int)
    parser.add_argument("--time-limit", type=float)
    args = parser.parse_args(argv)
    # First of all: the workers join before any other computation.
    distribution = training.distribution(True)
    keras.utils.set_random_seed(0)
    callbacks = []
    if args.kill_at_epoch is not None and distribution.is_chief:
        callbacks.append(KillAt(args.kill_at_epoch))
    model, history = training.fit(
        build_model,
        dataset(),
        epochs=args.epochs,
        run_dir=args.run_dir,
        steps_per_epoch=STEPS,
        # NumPy arrays: each worker validates on all of them.
        validation_data=(images()[:BATCH], images()[:BATCH]),
        distribute=distribution,
        callbacks=callbacks,
        verbose=0,
        time_limit=args.time_limit,
    )
    np.savez(
        args.out,
        worker=distribution.worker_index,
        workers=distribution.worker_count,
        iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        epochs=np.array(history.epoch if history else [], dtype="int64"),
        first_batch=np.asarray(first_local_batch(distribution)),
        names=np.array([weight.path for weight in model.weights]),
        **{
            f"weight_{index}": keras.ops.convert_to_numpy(weight)
            for index, weight in enumerate(model.weights)
        },
    )


if __name__ == "__main__":
    main()
