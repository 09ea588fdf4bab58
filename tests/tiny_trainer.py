"""A tiny training run, for `training_test.py` and `multi_worker_run.py`.

    python tests/tiny_trainer.py RUN_DIR EPOCHS KILL_AT_EPOCH

trains a tiny RBDN with `keras_rbdn.training.fit` and SIGKILLs itself in
the middle of epoch KILL_AT_EPOCH (counted from 0), after the checkpoint
of the epoch before (`KillAt`), so that a second run can resume it.
"""

import os
import signal
import sys

import keras
import numpy as np

import keras_rbdn
from keras_rbdn import training

STEPS = 3


def build_model():
    model = keras_rbdn.build(branches=1, task="denoise", K=3, c=4, D=1)
    model.compile(optimizer="adam", loss="mse")
    return model


def dataset():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((4 * STEPS, 16, 16, 1), dtype="float32")
    return tf.data.Dataset.from_tensor_slices((x, x)).batch(4).repeat()


class KillAt(keras.callbacks.Callback):
    """SIGKILLs this process in the middle of `epoch` (no clean-up)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.current = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)


def run(run_dir, epochs, kill_at_epoch=None, distribute=False):
    keras.utils.set_random_seed(0)
    callbacks = [] if kill_at_epoch is None else [KillAt(kill_at_epoch)]
    return training.fit(
        build_model,
        dataset(),
        epochs=epochs,
        run_dir=run_dir,
        validation_data=dataset().take(1),
        steps_per_epoch=STEPS,
        distribute=distribute,
        callbacks=callbacks,
        verbose=0,
    )


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), kill_at_epoch=int(sys.argv[3]))
