"""Training runs that survive being killed, on one device or several.

`fit` wraps `keras.Model.fit` with what every recipe needs:

- a checkpoint at the end of every epoch (weights and optimizer state),
  written to a temporary file and renamed into place, so that a run killed
  at any moment leaves either the previous or the new checkpoint, never a
  partial one;
- resume: calling `fit` again with the same `run_dir` restores the last
  checkpoint and continues from the epoch after it;
- TensorBoard logs and a CSV log (with the seconds each epoch took) in
  `run_dir`;
- `time_limit`: stop after the last epoch that fits in a time budget, so
  that a long schedule can be trained in runs of bounded length, each
  resuming from the previous one's checkpoint;
- `distribute=True`: data-parallel training on every local device, with
  `keras.distribution.DataParallel` on JAX and
  `tf.distribute.MirroredStrategy` on TensorFlow; `distribution` also
  spans several machines (`TF_CONFIG` and
  `tf.distribute.MultiWorkerMirroredStrategy` on TensorFlow,
  `keras.distribution.initialize` on JAX), the chief alone writing
  checkpoints and logs.

Around it, the recipes' first and last steps: `compile_for_training`
(Adam with a cosine-decayed learning rate) and `export_weights`
(batch-normalization recalibration, then the network's weights alone).
"""

import contextlib
import itertools
import json
import numbers
import os
import re
import sys
import tempfile
import time
import warnings

import keras
import numpy as np

from keras_rbdn import presets
from keras_rbdn import weights_files
from keras_rbdn.inference import find_network
from keras_rbdn.inference import rbdns_in

CHECKPOINT_SUFFIX = ".weights.h5"
# The Keras dtype policies the recipes train in and the benchmarks time.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
_CHECKPOINT_PATTERN = re.compile(r"^epoch-(\d{4,})\.weights\.h5$")


def checkpoint_path(run_dir, epoch):
    """Path of the checkpoint written after `epoch` (counted from 1)."""
    return os.path.join(run_dir, f"epoch-{epoch:04d}{CHECKPOINT_SUFFIX}")


def latest_checkpoint(run_dir):
    """Returns `(path, epoch)` of the newest checkpoint, or `(None, 0)`.

    Only complete checkpoints are considered: partial ones carry a
    temporary name until they are renamed into place.
    """
    if not os.path.isdir(run_dir):
        return None, 0
    epochs = [
        int(match.group(1))
        for match in map(_CHECKPOINT_PATTERN.match, os.listdir(run_dir))
        if match
    ]
    if not epochs:
        return None, 0
    epoch = max(epochs)
    return checkpoint_path(run_dir, epoch), epoch


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights and optimizer state atomically after every epoch.

    Args:
        run_dir: str. Folder of the checkpoints, `epoch-NNNN.weights.h5`.
        keep: int. How many of the newest checkpoints to keep. Defaults to
            `2`.
        chief: bool. Whether this process writes `run_dir`; other workers
            of a multi-worker run save to a temporary folder that is
            deleted. Defaults to `True`.
    """

    def __init__(self, run_dir, keep=2, chief=True):
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(
                f"`keep` must be a positive integer. Received: keep={keep!r}"
            )
        self.run_dir = run_dir
        self.keep = keep
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        if not self.chief:
            # Every worker saves, as TensorFlow's multi-worker guide asks
            # (reading variables may take part in collectives), but only
            # the chief's file is kept.
            with tempfile.TemporaryDirectory() as folder:
                self.model.save_weights(
                    os.path.join(folder, f"discarded{CHECKPOINT_SUFFIX}")
                )
            return
        os.makedirs(self.run_dir, exist_ok=True)
        path = checkpoint_path(self.run_dir, epoch + 1)
        # Keras wants the `.weights.h5` ending, so the temporary name keeps
        # it; it does not match the checkpoint pattern.
        partial = os.path.join(
            self.run_dir, f".partial-{os.getpid()}{CHECKPOINT_SUFFIX}"
        )
        self.model.save_weights(partial)
        os.replace(partial, path)
        for old_epoch in range(1, epoch + 2 - self.keep):
            old_path = checkpoint_path(self.run_dir, old_epoch)
            if os.path.exists(old_path):
                os.remove(old_path)


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds`, the wall-clock time of each epoch, to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class TimeLimit(keras.callbacks.Callback):
    """Stops training after the last epoch that ends within `seconds`.

    At the end of each epoch, training stops if another epoch as long as
    the last one would end after `seconds` (counted from the start of
    training). The epoch in progress is always finished, so the run ends
    on a checkpoint. With several workers, all stop when one would.

    Args:
        seconds: float. The time budget of the run, > 0.
        distribution: `Distribution` or `None`. The workers that must stop
            together. Defaults to `None` (this process alone).
    """

    def __init__(self, seconds, distribution=None):
        super().__init__()
        if not (_is_number(seconds) and seconds > 0):
            raise ValueError(
                "`seconds` must be a positive number. "
                f"Received: seconds={seconds!r}"
            )
        self.seconds = float(seconds)
        self.distribution = distribution

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        last_epoch = now - self._epoch_start
        stop = now - self._start + last_epoch > self.seconds
        if self.distribution is not None and self.distribution.worker_count > 1:
            # A worker that stopped alone would leave the others waiting.
            stop = any(_every_worker(self.distribution, int(stop)))
        if stop:
            self.model.stop_training = True
            print(
                f"Time limit: stopping after epoch {epoch + 1} "
                f"({now - self._start:.0f} s of {self.seconds:.0f} s used; "
                "the same command resumes from its checkpoint)"
            )


def restore_checkpoint(model, run_dir):
    """Loads the newest checkpoint of `run_dir` into a compiled `model`.

    Args:
        model: A compiled `keras.Model`, built with the same configuration
            as the one that wrote the checkpoint.
        run_dir: str. Folder of the checkpoints.

    Returns:
        The number of epochs already trained (0 when there is no
        checkpoint).
    """
    path, epoch = latest_checkpoint(run_dir)
    if path is None:
        return 0
    if getattr(model, "optimizer", None) is not None:
        # The optimizer's variables must exist to receive their state.
        model.optimizer.build(model.trainable_variables)
    weights_files.load_weights(model, path)
    return epoch


def local_devices():
    """Names of the devices `distribute=True` trains on, for this backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        return keras.distribution.list_devices()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU")
        devices = devices or tf.config.list_logical_devices("CPU")
        return [device.name for device in devices]
    return [keras.backend.backend()]


class Distribution:
    """Where `fit` trains, and whether this process writes the run folder.

    Made by `distribution`; pass it to `fit` as `distribute`.

    Args:
        strategy: `None` (one device), a `keras.distribution.Distribution`
            (JAX) or a `tf.distribute.Strategy` (TensorFlow).
        worker_index: int. This process's rank among the workers; the
            chief, which writes checkpoints and logs, is `0`.
        worker_count: int. Number of worker processes (machines).
    """

    def __init__(self, strategy=None, worker_index=0, worker_count=1):
        self.strategy = strategy
        self.worker_index = worker_index
        self.worker_count = worker_count

    @property
    def is_chief(self):
        """Whether this process writes checkpoints and logs."""
        return self.worker_index == 0

    def scope(self):
        """Context in which to build, compile and fit the model."""
        if self.strategy is None:
            return contextlib.nullcontext()
        return self.strategy.scope()

    def local_data(self, data):
        """The part of `data` this process feeds to `keras.Model.fit`.

        Between JAX processes, a `tf.data.Dataset` of global batches is
        split by Keras (`DataParallel.distribute_dataset`: each process
        gets its share of every batch); any other data (NumPy arrays, a
        `keras.utils.PyDataset`) is this process's own already. Elsewhere,
        `data` itself (TensorFlow's strategies split the batches inside
        `fit`).
        """
        strategy = self.strategy
        if self.worker_count == 1 or not isinstance(
            strategy, keras.distribution.DataParallel
        ):
            return data
        tf = sys.modules.get("tensorflow")
        if tf is not None and isinstance(data, tf.data.Dataset):
            # Sharded here, then never again by Keras: it would refuse
            # the other kinds of data.
            strategy.auto_shard_dataset = True
            try:
                data = strategy.distribute_dataset(data)
            finally:
                strategy.auto_shard_dataset = False
        return data

    def __repr__(self):
        return (
            f"Distribution({type(self.strategy).__name__}, worker "
            f"{self.worker_index} of {self.worker_count})"
        )


def _integer(value, name):
    """`value` as an int; strings of digits too (from the environment)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if _is_number(value, numbers.Integral):
        return int(value)
    raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")


def tf_config_worker():
    """`(index, count)` of this worker in the `TF_CONFIG` cluster.

    The chief (a `"chief"` task if the cluster has one, else worker 0) is
    index 0. Raises `ValueError`, naming the value, when `TF_CONFIG` is not
    a cluster of chief and worker tasks that includes this task.
    """
    text = os.environ.get("TF_CONFIG", "")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], task["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            "TF_CONFIG must be JSON with `cluster` and `task` (`type`, "
            f"`index`) ({error}). Received: TF_CONFIG={text!r}"
        ) from None
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise ValueError(
            "Multi-worker training takes `chief` and `worker` tasks only. "
            f"Received: TF_CONFIG cluster with {unknown}"
        )
    tasks = cluster.get(task_type)
    if task_type not in ("chief", "worker") or not tasks:
        raise ValueError(
            f"TF_CONFIG task type {task_type!r} has no addresses in its "
            f"cluster {sorted(cluster)}. Received: TF_CONFIG={text!r}"
        )
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(
            f"TF_CONFIG task index must be an integer. Received: {index!r}"
        )
    if not 0 <= index < len(tasks):
        raise ValueError(
            f"TF_CONFIG task index {index} is out of range for the "
            f"{len(tasks)} {task_type!r} address(es) of its cluster. "
            f"Received: TF_CONFIG={text!r}"
        )
    chiefs = len(cluster.get("chief", []))
    offset = chiefs if task_type == "worker" else 0
    return offset + index, chiefs + len(cluster.get("worker", []))


def jax_processes(coordinator=None, num_processes=None, process_id=None):
    """Checks the JAX multi-process settings; returns them as given or read.

    Each of the three falls back on Keras's environment variable:
    `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's `host:port`, or
    every process's, comma-separated, coordinator first),
    `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`.

    Returns:
        `(coordinator, num_processes, process_id)`, or `None` when no
        process count is set (training on this machine's devices only).
    """
    environ = os.environ
    if coordinator is None:
        coordinator = environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    if num_processes is None:
        num_processes = environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    if process_id is None:
        process_id = environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    if num_processes is None:
        if coordinator is not None or process_id is not None:
            raise ValueError(
                "Multi-process training needs the number of processes "
                "(`num_processes` or KERAS_DISTRIBUTION_NUM_PROCESSES). "
                f"Received: coordinator={coordinator!r}, "
                f"process_id={process_id!r}"
            )
        return None
    num_processes = _integer(num_processes, "num_processes")
    if num_processes < 1:
        raise ValueError(
            "`num_processes` must be at least 1. "
            f"Received: num_processes={num_processes}"
        )
    if process_id is None:
        raise ValueError(
            "Multi-process training needs this process's id (`process_id` "
            "or KERAS_DISTRIBUTION_PROCESS_ID). Received: process_id=None"
        )
    process_id = _integer(process_id, "process_id")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"`process_id` must be in [0, {num_processes - 1}] for "
            f"num_processes={num_processes}. Received: process_id={process_id}"
        )
    addresses = [] if not coordinator else coordinator.split(",")
    if not addresses or not all(addresses):
        raise ValueError(
            "Multi-process training needs the coordinator's `host:port` "
            "(`coordinator` or KERAS_DISTRIBUTION_JOB_ADDRESSES). "
            f"Received: coordinator={coordinator!r}"
        )
    if len(addresses) > 1 and len(addresses) != num_processes:
        raise ValueError(
            f"{len(addresses)} job addresses for num_processes="
            f"{num_processes}; give the coordinator alone or one address "
            f"per process. Received: coordinator={coordinator!r}"
        )
    return coordinator, num_processes, process_id


def distribution(
    distribute=False, coordinator=None, num_processes=None, process_id=None
):
    """Picks how `fit` trains, from the arguments and the environment.

    - `distribute=False`: one device (the multi-process arguments must not
      be given).
    - TensorFlow: `tf.distribute.MultiWorkerMirroredStrategy` over the
      cluster of `TF_CONFIG` when it is set, otherwise
      `tf.distribute.MirroredStrategy` over this machine's GPUs (or its
      logical CPUs).
    - JAX: when a process count is given (see `jax_processes`),
      `keras.distribution.initialize` joins the processes, then
      `keras.distribution.DataParallel` spans every process's devices;
      otherwise `DataParallel` over this machine's devices.
    - PyTorch: refused.

    Call it once per process, at the start of the program: TensorFlow's
    multi-worker strategy and JAX's `initialize` must come before any
    other computation (reading the data included).

    Args:
        distribute: bool. Data-parallel training. Defaults to `False`.
        coordinator: str or `None`. JAX only: the `host:port` of process 0.
        num_processes: int or `None`. JAX only: how many processes train.
        process_id: int or `None`. JAX only: this process's rank, in
            `[0, num_processes)`.

    Returns:
        A `Distribution`.
    """
    arguments = dict(
        coordinator=coordinator,
        num_processes=num_processes,
        process_id=process_id,
    )
    given = {
        name: value for name, value in arguments.items() if value is not None
    }
    if not distribute:
        if given:
            raise ValueError(
                "Multi-process arguments need `distribute=True`. "
                f"Received: distribute={distribute!r} with {given}"
            )
        return Distribution()
    backend = keras.backend.backend()
    if backend == "jax":
        processes = jax_processes(**arguments)
        worker_index, worker_count = 0, 1
        if processes is not None:
            coordinator, num_processes, process_id = processes
            keras.distribution.initialize(
                coordinator, num_processes, process_id
            )
            worker_index, worker_count = process_id, num_processes
        devices = keras.distribution.list_devices()
        result = Distribution(
            keras.distribution.DataParallel(
                devices=devices, auto_shard_dataset=False
            ),
            worker_index,
            worker_count,
        )
        if processes is not None:
            # JAX takes the coordinator's count: check that every process
            # was given the same one.
            counts = _every_worker(result, num_processes)
            if set(counts) != {num_processes}:
                raise ValueError(
                    f"The {len(counts)} processes that joined the coordinator "
                    f"{coordinator!r} were given different numbers of "
                    f"processes: {counts} (process 0 first). Received: "
                    f"num_processes={num_processes} on process {process_id}"
                )
        return result
    if backend == "tensorflow":
        if given:
            raise ValueError(
                "On TensorFlow the workers come from TF_CONFIG, not from "
                f"arguments. Received: {given}"
            )
        import tensorflow as tf

        if os.environ.get("TF_CONFIG"):
            worker_index, worker_count = tf_config_worker()
            try:
                strategy = _multi_worker_mirrored_strategy()
            except RuntimeError as error:
                raise RuntimeError(
                    f"{error}: with TF_CONFIG, call "
                    "`keras_rbdn.training.distribution` before TensorFlow "
                    "computes anything or lists its devices."
                ) from error
            return Distribution(strategy, worker_index, worker_count)
        return Distribution(tf.distribute.MirroredStrategy(local_devices()))
    raise ValueError(
        "`distribute=True` is supported on the JAX and TensorFlow backends. "
        f"Received: distribute=True with KERAS_BACKEND={backend!r}"
    )


def _multi_worker_mirrored_strategy():
    """`tf.distribute.MultiWorkerMirroredStrategy`, as Keras's trainer needs.

    With more than one worker, Keras 3's TensorFlow trainer calls
    `strategy.reduce` with the `(x, y)` batch (to build the model) and
    with scalar losses along `axis=0`, neither of which this strategy
    takes (https://github.com/keras-team/keras/issues/20585): this
    reduces each value of a structure in turn, scalars across replicas.
    """
    import tensorflow as tf

    base = tf.distribute.MultiWorkerMirroredStrategy

    class MultiWorkerMirroredStrategy(base):
        def reduce(self, reduce_op, value, axis):
            parent = super()

            def reduce_one(item):
                local = self.experimental_local_results(item)[0]
                scalar = local.shape.rank == 0
                return parent.reduce(reduce_op, item, None if scalar else axis)

            return tf.nest.map_structure(reduce_one, value)

    return MultiWorkerMirroredStrategy()


def distribution_scope(distribute):
    """Context in which to build, compile and fit a data-parallel model.

    Args:
        distribute: bool or `Distribution`. See `distribution`.

    Returns:
        A context manager.
    """
    if not isinstance(distribute, Distribution):
        distribute = distribution(distribute)
    return distribute.scope()


def _every_worker(distribute, value):
    """The integer `value` of every worker (on TensorFlow, every replica)."""
    if keras.backend.backend() == "jax":
        from jax.experimental import multihost_utils

        values = multihost_utils.process_allgather(np.array([value]))
    else:
        import tensorflow as tf

        strategy = distribute.strategy

        @tf.function  # Eagerly, the strategy warns of its overhead.
        def gather():
            return strategy.gather(
                strategy.run(lambda: tf.constant([value])), axis=0
            )

        values = gather()
    return np.asarray(values).ravel().tolist()


def _check_workers_agree(distribute, epoch, run_dir):
    """Raises `ValueError` unless every worker resumes from `epoch`."""
    if distribute.worker_count == 1:
        return
    epochs = _every_worker(distribute, epoch)
    if set(epochs) != {epoch}:
        raise ValueError(
            f"The workers found different checkpoints in run_dir={run_dir!r}"
            f" (epochs {epochs}): it must be one folder that every worker "
            "reads, such as a shared file system."
        )


def _tensorboard(log_dir):
    """A TensorBoard callback, or none (with a warning) without tensorboard.

    Keras writes the logs with TensorFlow's summary ops, so both packages
    are needed (a JAX-only GPU machine may have `tensorboard` alone).
    """
    try:
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        warnings.warn(
            "TensorBoard logs are off: install `tensorboard` and "
            "`tensorflow` (the `train` extra) to get them.",
            stacklevel=3,
        )
        return []
    return [keras.callbacks.TensorBoard(log_dir)]


def _is_number(value, kind=numbers.Real):
    """Whether `value` is a number of `kind` (booleans are not)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def compile_for_training(model, loss, learning_rate, total_steps, alpha=0.05):
    """Compiles `model` with Adam and a cosine-decayed learning rate.

    The learning rate follows `keras.optimizers.schedules.CosineDecay`
    from `learning_rate` down to `alpha * learning_rate` over
    `total_steps` optimizer steps, the schedule every recipe trains with.

    Example:

    ```python
    model = keras_rbdn.build(branches=1, task="denoise")
    keras_rbdn.training.compile_for_training(
        model, "mean_squared_error", learning_rate=1e-3, total_steps=10_000
    )
    ```

    Args:
        model: The `keras.Model` to compile.
        loss: str or `keras.losses.Loss`. Passed to `keras.Model.compile`.
        learning_rate: float. The initial learning rate, > 0.
        total_steps: int. Optimizer steps over which the learning rate
            decays (epochs times steps per epoch), >= 1.
        alpha: float. The final learning rate as a fraction of
            `learning_rate`, in [0, 1]. Defaults to `0.05`.

    Returns:
        `model`, compiled.
    """
    if not (_is_number(learning_rate) and learning_rate > 0):
        raise ValueError(
            "`learning_rate` must be a positive number. "
            f"Received: learning_rate={learning_rate!r}"
        )
    if not (_is_number(total_steps, numbers.Integral) and total_steps >= 1):
        raise ValueError(
            "`total_steps` must be a positive integer. "
            f"Received: total_steps={total_steps!r}"
        )
    if not (_is_number(alpha) and 0 <= alpha <= 1):
        raise ValueError(
            f"`alpha` must be a number in [0, 1]. Received: alpha={alpha!r}"
        )
    schedule = keras.optimizers.schedules.CosineDecay(
        float(learning_rate), decay_steps=int(total_steps), alpha=float(alpha)
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    return model


def fit(
    build_model,
    train_data,
    epochs,
    run_dir,
    validation_data=None,
    steps_per_epoch=None,
    validation_steps=None,
    distribute=False,
    callbacks=None,
    verbose="auto",
    keep_checkpoints=2,
    time_limit=None,
):
    """Trains a model with per-epoch checkpoints, resuming a killed run.

    Args:
        build_model: callable. Returns a compiled `keras.Model`. Called
            inside the distribution scope, so that variables are placed on
            every device.
        train_data: Training data accepted by `keras.Model.fit` (a
            `tf.data.Dataset` or a `keras.utils.PyDataset`). A
            `tf.data.Dataset` holds global batches, which the workers
            split between them; between JAX processes, other data is each
            process's own share (see `Distribution.local_data`).
        epochs: int. Total number of epochs, counting those already done by
            an earlier run in `run_dir`.
        run_dir: str. Folder for checkpoints (`epoch-NNNN.weights.h5`),
            TensorBoard logs (`logs/`) and `history.csv`.
        validation_data: Validation data, evaluated after every epoch.
            Defaults to `None`.
        steps_per_epoch: int or `None`. Training batches per epoch.
            Defaults to `None` (one pass over `train_data`).
        validation_steps: int or `None`. Validation batches. Defaults to
            `None`.
        distribute: bool or `Distribution`. `True` trains data-parallel
            on every local device, a `Distribution` from `distribution`
            also across machines (only its chief writes checkpoints and
            logs; every worker resumes from `run_dir`, which they must
            share). Defaults to `False`.
        callbacks: list of `keras.callbacks.Callback` or `None`. Extra
            callbacks. Defaults to `None`.
        verbose: Passed to `keras.Model.fit` (`"auto"` shows progress
            bars). Defaults to `"auto"`.
        keep_checkpoints: int. Newest checkpoints to keep. Defaults to `2`.
        time_limit: float or `None`. Seconds this call may train: it stops
            after the last epoch that ends within them (see `TimeLimit`);
            calling `fit` again continues. `None` trains to `epochs`.
            Defaults to `None`.

    Returns:
        A tuple `(model, history)`; `history` is `None` when the run had
        already reached `epochs`.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(
            f"`epochs` must be a positive integer. Received: epochs={epochs!r}"
        )
    if not isinstance(distribute, Distribution):
        distribute = distribution(distribute)
    time_limit_callbacks = []
    if time_limit is not None:
        time_limit_callbacks = [TimeLimit(time_limit, distribute)]
    log_callbacks = []
    if distribute.is_chief:
        log_callbacks = [
            keras.callbacks.CSVLogger(
                os.path.join(run_dir, "history.csv"), append=True
            ),
            *_tensorboard(os.path.join(run_dir, "logs")),
        ]
    os.makedirs(run_dir, exist_ok=True)
    with distribute.scope():
        model = build_model()
        initial_epoch = restore_checkpoint(model, run_dir)
        _check_workers_agree(distribute, initial_epoch, run_dir)
        if initial_epoch:
            print(f"Resuming from epoch {initial_epoch} of {run_dir}")
        if initial_epoch >= epochs:
            return model, None
        if validation_data is not None:
            validation_data = distribute.local_data(validation_data)
        history = model.fit(
            distribute.local_data(train_data),
            validation_data=validation_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            verbose=verbose,
            callbacks=[
                EpochTimer(),
                *log_callbacks,
                *(callbacks or []),
                *time_limit_callbacks,
                # Last, so that a checkpoint is only written once the
                # other callbacks have seen the epoch.
                EpochCheckpoint(
                    run_dir, keep=keep_checkpoints, chief=distribute.is_chief
                ),
            ],
        )
    return model, history


def batch_norm_layers(model):
    """Every `BatchNormalization` layer inside `model`, nested ones too."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def freeze_batch_norm(model):
    """Makes every batch normalization in `model` non-trainable.

    A non-trainable `BatchNormalization` runs in inference mode, in
    training too: it normalizes with its moving statistics and leaves
    them as they are. Fine-tuning a trained network this way starts from
    its exact function, whatever the batch and crop size (the batch
    statistics of small batches differ from the moving ones).

    Returns:
        The number of layers frozen.
    """
    layers = batch_norm_layers(model)
    for layer in layers:
        layer.trainable = False
    return len(layers)


def recalibrate_batch_norm(model, batches):
    """Re-estimates every batch normalization's statistics ("precise BN").

    During training the moving mean and variance trail the weights (an
    exponential average with momentum 0.99 over batches computed with
    older weights), which makes inference-mode outputs noisier than the
    weights deserve, more so with small batches. This replaces them by the
    plain average of the batch statistics over `batches`, computed with the
    final weights. Only the moving statistics change. A frozen batch
    normalization (`freeze_batch_norm`) keeps its statistics: it never
    updates them, so with no other one no batch is run.

    Args:
        model: A Keras model holding `BatchNormalization` layers.
        batches: iterable of input batches, as the model takes them (for a
            training model that adds noise, clean batches: the noise layer
            runs too).

    Returns:
        The number of batches used.
    """
    layers = [layer for layer in batch_norm_layers(model) if layer.trainable]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for batch in batches:
            count += 1
            for layer in layers:
                # moving = momentum * moving + (1 - momentum) * batch: with
                # momentum 1 - 1/count this is the running average.
                layer.momentum = 1.0 - 1.0 / count
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return count


def _network_to_export(model):
    """`model` if it is an RBDN, else the one RBDN (or `OpponentDenoiser`)
    inside it, else `model`."""
    from keras_rbdn.models.opponent_denoiser import OpponentDenoiser

    network = find_network(model)
    if isinstance(network, OpponentDenoiser):
        return network
    networks = list(rbdns_in(model))
    if len(networks) > 1:
        raise ValueError(
            f"`model` holds {len(networks)} RBDNs; pass the one to export "
            f"as `network`. Received: model={model.name!r}"
        )
    return networks[0] if networks else model


def export_weights(
    model,
    path,
    recalibration_data=None,
    recalibrate_batches=0,
    network=None,
):
    """Writes a trained network's weights, after recalibrating batch norm.

    The last step of a training run: optionally re-estimates the batch
    normalization statistics of `model` on its first `recalibrate_batches`
    training batches (see `recalibrate_batch_norm`), then writes the
    network's weights, without optimizer state, atomically (see
    `keras_rbdn.presets.save_weights`), ready for `load_weights` on a model
    built with the same configuration.

    Args:
        model: The trained `keras.Model`: the RBDN itself, or the training
            model around it (for example one that adds noise first).
        path: str. Destination, ending in `.weights.h5`.
        recalibration_data: Training data as `keras.Model.fit` takes it
            (a `tf.data.Dataset` or any iterable of batches, each an
            `(inputs, targets)` tuple or bare inputs); only the inputs are
            used, run through `model`. Required when `recalibrate_batches`
            is positive. Defaults to `None`.
        recalibrate_batches: int. How many batches of `recalibration_data`
            to recalibrate on; `0` keeps the moving averages. Defaults to
            `0`.
        network: The layer whose weights are written. Defaults to `None`:
            `model` when it is an RBDN, otherwise the one RBDN inside
            `model`, otherwise `model`.

    Returns:
        The number of batches batch normalization was recalibrated on (`0`
        when it was not).
    """
    if not (
        isinstance(path, (str, os.PathLike))
        and os.fspath(path).endswith(CHECKPOINT_SUFFIX)
    ):
        raise ValueError(
            f"`path` must end in `{CHECKPOINT_SUFFIX}`. Received: path={path!r}"
        )
    if not (
        _is_number(recalibrate_batches, numbers.Integral)
        and recalibrate_batches >= 0
    ):
        raise ValueError(
            "`recalibrate_batches` must be a non-negative integer. "
            f"Received: recalibrate_batches={recalibrate_batches!r}"
        )
    if recalibrate_batches and recalibration_data is None:
        raise ValueError(
            "`recalibration_data` is required to recalibrate on "
            f"recalibrate_batches={recalibrate_batches} batches. Received: "
            "recalibration_data=None"
        )
    if network is None:
        network = _network_to_export(model)
    count = 0
    if recalibrate_batches:
        batches = itertools.islice(
            iter(recalibration_data), int(recalibrate_batches)
        )
        count = recalibrate_batch_norm(
            model,
            (
                keras.utils.unpack_x_y_sample_weight(batch)[0]
                for batch in batches
            ),
        )
    presets.save_weights(network, os.fspath(path))
    return count
