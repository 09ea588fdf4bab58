import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_rbdn
from keras_rbdn import training
from tests import tiny_trainer

TRAINER = os.path.join(os.path.dirname(__file__), "tiny_trainer.py")


def load_trainer():
    """The path and module of `tiny_trainer.py`."""
    return TRAINER, tiny_trainer


def environment(**extra):
    return dict(
        os.environ,
        KERAS_BACKEND=keras.backend.backend(),
        TF_CPP_MIN_LOG_LEVEL="2",
        **extra,
    )


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """A tiny run trained for 2 epochs, shared by the tests that read it."""
    tmp_path = tmp_path_factory.mktemp("two_epochs")
    _, trainer = load_trainer()
    run_dir = str(tmp_path / "run")
    model, history = trainer.run(run_dir, epochs=2)
    return trainer, run_dir, model, history


class CheckpointTest:
    def test_checkpoints_every_epoch(self, two_epoch_run):
        _, run_dir, _, history = two_epoch_run
        assert history.epoch == [0, 1]
        assert sorted(os.listdir(run_dir)) == [
            "epoch-0001.weights.h5",
            "epoch-0002.weights.h5",
            "history.csv",
            "logs",
        ]
        lines = open(os.path.join(run_dir, "history.csv")).read().split()
        assert lines[0].split(",")[:2] == ["epoch", "epoch_seconds"]
        assert [line.split(",")[0] for line in lines[1:]] == ["0", "1"]

    def test_resumes_and_keeps_the_newest_two(self, two_epoch_run, tmp_path):
        trainer, run_dir, _, _ = two_epoch_run
        copy = str(tmp_path / "run")
        shutil.copytree(run_dir, copy)
        model, history = trainer.run(copy, epochs=3)
        assert history.epoch == [2]
        assert int(model.optimizer.iterations) == 3 * trainer.STEPS
        assert training.latest_checkpoint(copy)[1] == 3
        assert not os.path.exists(training.checkpoint_path(copy, 1))
        lines = open(os.path.join(copy, "history.csv")).read().split()
        assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]

    def test_finished_run_is_not_trained_again(self, two_epoch_run):
        trainer, run_dir, _, _ = two_epoch_run
        _, history = trainer.run(run_dir, epochs=2)
        assert history is None

    def test_restored_weights_equal_saved_ones(self, two_epoch_run):
        trainer, run_dir, model, _ = two_epoch_run
        fresh = trainer.build_model()
        assert training.restore_checkpoint(fresh, run_dir) == 2
        for saved, restored in zip(model.weights, fresh.weights, strict=True):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(saved),
                keras.ops.convert_to_numpy(restored),
            )
        for saved, restored in zip(
            model.optimizer.variables,
            fresh.optimizer.variables,
            strict=True,
        ):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(saved),
                keras.ops.convert_to_numpy(restored),
            )

    # File names only.
    @pytest.mark.backend_independent
    def test_latest_checkpoint_ignores_partial_files(self, tmp_path):
        (tmp_path / ".partial-12.weights.h5").write_bytes(b"")
        (tmp_path / "epoch-0007.weights.h5").write_bytes(b"")
        (tmp_path / "epoch-0011.weights.h5").write_bytes(b"")
        path, epoch = training.latest_checkpoint(str(tmp_path))
        assert epoch == 11 and path.endswith("epoch-0011.weights.h5")
        assert training.latest_checkpoint(str(tmp_path / "none")) == (None, 0)

    @pytest.mark.slow
    def test_killed_run_resumes_from_last_checkpoint(self, tmp_path):
        path, trainer = load_trainer()
        run_dir = str(tmp_path / "run")
        # Killed with SIGKILL in the middle of the third epoch.
        result = subprocess.run(
            [sys.executable, str(path), run_dir, "4", "2"],
            capture_output=True,
            text=True,
            env=environment(),
            timeout=300,
        )
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        assert training.latest_checkpoint(run_dir)[1] == 2
        assert not [name for name in os.listdir(run_dir) if "partial" in name]
        # The same command again continues at the third epoch.
        model, history = trainer.run(run_dir, epochs=4)
        assert history.epoch == [2, 3]
        assert int(model.optimizer.iterations) == 4 * trainer.STEPS
        assert training.latest_checkpoint(run_dir)[1] == 4


DISTRIBUTED_RUN = """
import os
import sys

sys.path.insert(0, {directory!r})
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
import keras

import tiny_trainer
import keras_rbdn
from keras_rbdn import training

print("devices", len(training.local_devices()))
model, history = tiny_trainer.run({run_dir!r}, epochs=2, distribute=True)
print("epochs", len(history.epoch))
variable = model.weights[0].value
if keras.backend.backend() == "jax":
    print("replicas", len(variable.sharding.device_set))
else:
    print("replicas", len(variable.values))
print("loss", history.history["loss"][-1])
"""


class TimeLimitTest:
    def run(self, trainer, run_dir, time_limit, epochs=3):
        keras.utils.set_random_seed(0)
        return training.fit(
            trainer.build_model,
            trainer.dataset(),
            epochs=epochs,
            run_dir=run_dir,
            steps_per_epoch=trainer.STEPS,
            verbose=0,
            time_limit=time_limit,
        )

    def test_stops_on_a_checkpoint_and_the_next_run_continues(self, tmp_path):
        _, trainer = load_trainer()
        run_dir = str(tmp_path / "run")
        # Spent as soon as the first epoch ends: one epoch per run.
        _, history = self.run(trainer, run_dir, time_limit=1e-6)
        assert len(history.history["loss"]) == 1
        assert training.latest_checkpoint(run_dir)[1] == 1
        _, history = self.run(trainer, run_dir, time_limit=1e-6)
        assert len(history.history["loss"]) == 1
        assert training.latest_checkpoint(run_dir)[1] == 2

    def test_enough_time_trains_every_epoch(self, tmp_path):
        _, trainer = load_trainer()
        run_dir = str(tmp_path / "run")
        _, history = self.run(trainer, run_dir, time_limit=3600)
        assert len(history.history["loss"]) == 3
        assert training.latest_checkpoint(run_dir)[1] == 3

    @pytest.mark.backend_independent
    @pytest.mark.parametrize("seconds", [0, -1, "60", True, None])
    def test_rejects_bad_limits(self, seconds):
        with pytest.raises(ValueError, match="seconds"):
            training.TimeLimit(seconds)


class DistributeTest:
    @pytest.mark.slow
    @pytest.mark.skipif(
        keras.backend.backend() not in ("jax", "tensorflow"),
        reason="data parallelism is for the JAX and TensorFlow backends",
    )
    def test_two_virtual_cpu_devices(self, tmp_path):
        code = DISTRIBUTED_RUN.format(
            directory=os.path.dirname(TRAINER), run_dir=str(tmp_path / "run")
        )
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            env=environment(
                XLA_FLAGS="--xla_force_host_platform_device_count=2"
            ),
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        lines = dict(
            line.split(" ", 1) for line in result.stdout.strip().splitlines()
        )
        assert lines["devices"] == "2"
        assert lines["epochs"] == "2"
        assert lines["replicas"] == "2"
        assert np.isfinite(float(lines["loss"]))
        assert training.latest_checkpoint(str(tmp_path / "run"))[1] == 2

    @pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch only")
    def test_torch_refuses_clearly(self):
        with pytest.raises(ValueError, match="JAX and TensorFlow"):
            training.distribution_scope(True)

    @pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch only")
    def test_torch_refuses_several_machines(self, monkeypatch):
        monkeypatch.setenv("TF_CONFIG", tf_config(["a:1", "b:2"], 0))
        with pytest.raises(ValueError, match="KERAS_BACKEND='torch'"):
            training.distribution(
                True, coordinator="a:1", num_processes=2, process_id=0
            )


def tf_config(workers, index, task_type="worker", chief=()):
    cluster = {"worker": list(workers)}
    if chief:
        cluster["chief"] = list(chief)
    return json.dumps(
        {"cluster": cluster, "task": {"type": task_type, "index": index}}
    )


class SeveralMachinesSettingsTest:
    """The checks of the multi-machine settings, before anything starts.

    The two-worker runs themselves are in `multi_worker_test.py`.
    """

    @pytest.fixture(autouse=True)
    def clean_environment(self, monkeypatch):
        for name in (
            "TF_CONFIG",
            "KERAS_DISTRIBUTION_JOB_ADDRESSES",
            "KERAS_DISTRIBUTION_NUM_PROCESSES",
            "KERAS_DISTRIBUTION_PROCESS_ID",
        ):
            monkeypatch.delenv(name, raising=False)

    def test_tf_config_workers(self, monkeypatch):
        monkeypatch.setenv("TF_CONFIG", tf_config(["a:1", "b:2", "c:3"], 2))
        assert training.tf_config_worker() == (2, 3)
        # A chief task comes first.
        monkeypatch.setenv("TF_CONFIG", tf_config(["b:2"], 0, chief=["a:1"]))
        assert training.tf_config_worker() == (1, 2)
        monkeypatch.setenv(
            "TF_CONFIG", tf_config(["b:2"], 0, "chief", chief=["a:1"])
        )
        assert training.tf_config_worker() == (0, 2)

    @pytest.mark.parametrize(
        "config, message",
        [
            (tf_config(["a:1", "b:2"], 2), "task index 2 is out of range"),
            (tf_config(["a:1", "b:2"], -1), "task index -1 is out of range"),
            (tf_config(["a:1"], "0"), "index must be an integer.*'0'"),
            (tf_config(["a:1"], 0, "chief"), "task type 'chief'"),
            ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG must be JSON"),
            ("worker 0", "TF_CONFIG='worker 0'"),
            (
                json.dumps(
                    {
                        "cluster": {"worker": ["a:1"], "ps": ["b:2"]},
                        "task": {"type": "worker", "index": 0},
                    }
                ),
                r"\['ps'\]",
            ),
        ],
    )
    def test_bad_tf_config_is_named(self, monkeypatch, config, message):
        monkeypatch.setenv("TF_CONFIG", config)
        with pytest.raises(ValueError, match=message):
            training.tf_config_worker()

    def test_jax_processes_from_arguments_or_environment(self, monkeypatch):
        assert training.jax_processes() is None
        assert training.jax_processes("a:1", 2, 1) == ("a:1", 2, 1)
        monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "a:1,b:2")
        monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
        monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
        assert training.jax_processes() == ("a:1,b:2", 2, 1)
        # Arguments take precedence.
        assert training.jax_processes(process_id=0) == ("a:1,b:2", 2, 0)

    @pytest.mark.parametrize(
        "arguments, message",
        [
            (("a:1", 2, 2), r"`process_id` must be in \[0, 1\].*process_id=2"),
            (("a:1", 2, -1), r"process_id=-1"),
            (("a:1", 0, 0), "at least 1.*num_processes=0"),
            (("a:1", "two", 0), "integer.*num_processes='two'"),
            (("a:1", 2, 0.5), "integer.*process_id=0.5"),
            (("a:1", 2, True), "integer.*process_id=True"),
            (("a:1", 2, None), "process_id=None"),
            ((None, 2, 0), "coordinator's `host:port`.*coordinator=None"),
            (("a:1,b:2,c:3", 2, 0), "3 job addresses for num_processes=2"),
            (("a:1", None, 0), "number of processes.*process_id=0"),
        ],
    )
    def test_bad_jax_processes_are_named(self, arguments, message):
        with pytest.raises(ValueError, match=message):
            training.jax_processes(*arguments)

    def test_bad_environment_is_named(self, monkeypatch):
        monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "a:1")
        monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
        monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "3")
        with pytest.raises(ValueError, match="process_id=3"):
            training.jax_processes()

    def test_several_machines_need_distribute(self):
        with pytest.raises(ValueError, match="distribute=False"):
            training.distribution(False, num_processes=2, process_id=0)
        distribution = training.distribution(False)
        assert distribution.strategy is None and distribution.is_chief
        assert distribution.worker_count == 1

    def fit_as_second_worker(self, tmp_path, monkeypatch, peer, **options):
        """`fit` as worker 1 of 2; the chief reports `peer(value)`."""
        _, trainer = load_trainer()
        monkeypatch.setattr(
            training,
            "_every_worker",
            lambda distribution, value: [peer(value), value],
        )
        run_dir = tmp_path / "run"
        model, history = training.fit(
            trainer.build_model,
            trainer.dataset(),
            epochs=3,
            run_dir=str(run_dir),
            steps_per_epoch=trainer.STEPS,
            distribute=training.Distribution(None, 1, 2),
            verbose=0,
            **options,
        )
        return run_dir, history

    def test_only_the_chief_writes(self, tmp_path, monkeypatch):
        run_dir, history = self.fit_as_second_worker(
            tmp_path, monkeypatch, lambda value: value
        )
        assert history.epoch == [0, 1, 2]
        assert os.listdir(run_dir) == []

    def test_workers_stop_together(self, tmp_path, monkeypatch):
        # The chief resumes from epoch 0 too, then its time is up after
        # the first epoch.
        chief = iter([0, 1])
        _, history = self.fit_as_second_worker(
            tmp_path, monkeypatch, lambda value: next(chief), time_limit=3600
        )
        assert history.epoch == [0]

    def test_workers_resume_from_the_same_epoch(self, tmp_path, monkeypatch):
        # The chief found a checkpoint of epoch 2, this worker none.
        with pytest.raises(ValueError, match=r"epochs \[2, 0\].*shared"):
            self.fit_as_second_worker(tmp_path, monkeypatch, lambda value: 2)

    @pytest.mark.skipif(
        keras.backend.backend() != "jax", reason="JAX's process checks"
    )
    def test_jax_checks_before_joining(self):
        # Nothing listens at the coordinator: joining it would hang.
        with pytest.raises(ValueError, match="process_id=2"):
            training.distribution(
                True, coordinator="127.0.0.1:1", num_processes=2, process_id=2
            )

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="TensorFlow's checks"
    )
    def test_tensorflow_takes_tf_config(self, monkeypatch):
        with pytest.raises(ValueError, match="TF_CONFIG.*num_processes"):
            training.distribution(True, num_processes=2, process_id=0)
        monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1"], 1))
        with pytest.raises(ValueError, match="task index 1 is out of range"):
            training.distribution(True)


class RecalibrateBatchNormTest:
    def test_moving_statistics_become_batch_averages(self):
        inputs = keras.Input((3,))
        normalization = keras.layers.BatchNormalization(momentum=0.99)
        model = keras.Model(inputs, normalization(inputs))
        rng = np.random.default_rng(0)
        batches = [
            (rng.standard_normal((8, 3)) * scale + shift).astype("float32")
            for scale, shift in ((1.0, 0.0), (2.0, 1.0), (0.5, -3.0))
        ]
        assert training.recalibrate_batch_norm(model, batches) == 3
        mean = keras.ops.convert_to_numpy(normalization.moving_mean)
        variance = keras.ops.convert_to_numpy(normalization.moving_variance)
        np.testing.assert_allclose(
            mean, np.mean([b.mean(0) for b in batches], 0), atol=1e-5
        )
        np.testing.assert_allclose(
            variance, np.mean([b.var(0) for b in batches], 0), atol=1e-4
        )
        assert normalization.momentum == 0.99

    def test_frozen_layers_keep_their_statistics(self):
        network = tiny_network()
        training.freeze_batch_norm(network)
        statistics = batch_norm_statistics(network)
        batches = [np.random.default_rng(1).random((2, 16, 16, 1))] * 3
        assert training.recalibrate_batch_norm(network, iter(batches)) == 0
        for before, after in zip(
            statistics, batch_norm_statistics(network), strict=True
        ):
            np.testing.assert_array_equal(before, after)


class FreezeBatchNormTest:
    def test_training_normalizes_with_the_moving_statistics(self):
        network = tiny_network()
        layers = training.batch_norm_layers(network)
        # A gamma, beta, and moving statistics far from a batch's own.
        rng = np.random.default_rng(0)
        for layer in layers:
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.uniform(-1, 1, size))
            layer.moving_variance.assign(rng.uniform(0.5, 2, size))
        assert training.freeze_batch_norm(network) == len(layers) > 0
        statistics = batch_norm_statistics(network)
        trainable = len(network.trainable_weights)

        x = rng.uniform(size=(2, 16, 16, 1)).astype("float32")
        network.compile(keras.optimizers.SGD(0.0), "mse")
        inference = keras.ops.convert_to_numpy(network(x, training=False))
        training_mode = keras.ops.convert_to_numpy(network(x, training=True))
        np.testing.assert_allclose(training_mode, inference, atol=1e-6)
        network.fit(x, x, epochs=1, verbose=0)
        for before, after in zip(
            statistics, batch_norm_statistics(network), strict=True
        ):
            np.testing.assert_array_equal(before, after)
        # Only gamma and beta of each layer stopped being trained.
        unfrozen = tiny_network()
        assert trainable == len(unfrozen.trainable_weights) - 2 * len(layers)


def tiny_network(name="rbdn"):
    return keras_rbdn.build(
        branches=1, task="denoise", K=3, c=4, D=1, name=name
    )


def batch_norm_statistics(model):
    return [
        keras.ops.convert_to_numpy(variable)
        for layer in training.batch_norm_layers(model)
        for variable in (layer.moving_mean, layer.moving_variance)
    ]


def assert_weights_equal(expected, actual):
    for left, right in zip(expected.weights, actual.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(left), keras.ops.convert_to_numpy(right)
        )


class CompileForTrainingTest:
    def test_adam_with_cosine_decay(self):
        model = tiny_network()
        compiled = training.compile_for_training(
            model, "mean_squared_error", learning_rate=2e-3, total_steps=30
        )
        assert compiled is model
        assert isinstance(model.optimizer, keras.optimizers.Adam)
        schedule = model.optimizer._learning_rate
        assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
        assert schedule.initial_learning_rate == pytest.approx(2e-3)
        assert schedule.decay_steps == 30
        assert schedule.alpha == pytest.approx(0.05)
        # From the initial rate at step 0 down to alpha times it at the end.
        rates = [float(schedule(step)) for step in (0, 15, 30, 60)]
        np.testing.assert_allclose(
            rates, [2e-3, 2e-3 * 0.525, 1e-4, 1e-4], rtol=1e-5
        )
        assert model.loss == "mean_squared_error"

    def test_trains_and_follows_the_schedule(self):
        model = training.compile_for_training(
            tiny_network(), "mse", learning_rate=1e-3, total_steps=4, alpha=0.5
        )
        x = np.random.default_rng(0).random((4, 16, 16, 1), dtype="float32")
        history = model.fit(x, x, batch_size=2, epochs=2, verbose=0)
        assert int(model.optimizer.iterations) == 4
        assert np.all(np.isfinite(history.history["loss"]))
        np.testing.assert_allclose(
            float(model.optimizer.learning_rate), 5e-4, rtol=1e-5
        )

    @pytest.mark.parametrize(
        "name, value",
        [
            ("learning_rate", 0.0),
            ("learning_rate", -1e-3),
            ("learning_rate", float("nan")),
            ("learning_rate", True),
            ("learning_rate", "1e-3"),
            ("total_steps", 0),
            ("total_steps", 2.5),
            ("total_steps", True),
            ("alpha", -0.1),
            ("alpha", 1.5),
            ("alpha", None),
        ],
    )
    def test_rejects_bad_arguments(self, name, value):
        arguments = dict(learning_rate=1e-3, total_steps=10, alpha=0.05)
        arguments[name] = value
        model = tiny_network()
        with pytest.raises(ValueError, match=f"`{name}`.*{name}="):
            training.compile_for_training(model, "mse", **arguments)
        assert not model.compiled


class ExportWeightsTest:
    def training_model(self):
        """An RBDN wrapped into a training model, as the denoise recipe."""
        network = tiny_network()
        inputs = keras.Input((None, None, 1))
        noisy = keras.layers.GaussianNoise(0.1)(inputs)
        model = keras.Model(inputs, network(noisy), name="trainer")
        return network, model

    def counted_batches(self, consumed):
        """Endless `(x, y)` batches; `consumed[0]` counts those taken."""
        rng = np.random.default_rng(0)
        while True:
            consumed[0] += 1
            x = rng.random((2, 16, 16, 1), dtype="float32") * 3.0 + 1.0
            yield x, x

    def test_recalibrates_and_writes_the_inner_network(self, tmp_path):
        network, model = self.training_model()
        before = batch_norm_statistics(network)
        consumed = [0]
        path = str(tmp_path / "network.weights.h5")
        count = training.export_weights(
            model,
            path,
            recalibration_data=self.counted_batches(consumed),
            recalibrate_batches=2,
        )
        assert count == 2 and consumed[0] == 2
        after = batch_norm_statistics(network)
        assert any(
            not np.allclose(old, new)
            for old, new in zip(before, after, strict=True)
        )
        # The file holds the RBDN alone (no noise layer, no optimizer) and
        # loads back into a fresh one, recalibrated statistics included.
        fresh = tiny_network()
        fresh.load_weights(path)
        assert_weights_equal(network, fresh)
        assert not [name for name in os.listdir(tmp_path) if "partial" in name]

    def test_without_recalibration_keeps_statistics(self, tmp_path):
        network = tiny_network()
        before = batch_norm_statistics(network)
        path = tmp_path / "plain.weights.h5"
        assert training.export_weights(network, path) == 0
        for old, new in zip(
            before, batch_norm_statistics(network), strict=True
        ):
            np.testing.assert_array_equal(old, new)
        fresh = tiny_network()
        fresh.load_weights(str(path))
        assert_weights_equal(network, fresh)

    def test_explicit_network_and_bare_input_batches(self, tmp_path):
        first, second = tiny_network("first"), tiny_network("second")
        inputs = keras.Input((None, None, 1))
        model = keras.Model(inputs, [first(inputs), second(inputs)])
        path = str(tmp_path / "second.weights.h5")
        with pytest.raises(ValueError, match="2 RBDNs"):
            training.export_weights(model, path)
        batches = [np.ones((2, 16, 16, 1), "float32")] * 3
        count = training.export_weights(
            model,
            path,
            recalibration_data=batches,
            recalibrate_batches=5,
            network=second,
        )
        assert count == 3
        fresh = tiny_network()
        fresh.load_weights(path)
        assert_weights_equal(second, fresh)

    @pytest.mark.parametrize(
        "arguments, message",
        [
            (dict(path="weights.h5"), "`path`.*path='weights.h5'"),
            (dict(path=None), "`path`.*path=None"),
            (
                dict(recalibrate_batches=-1, recalibration_data=[]),
                "`recalibrate_batches`.*recalibrate_batches=-1",
            ),
            (
                dict(recalibrate_batches=1.5, recalibration_data=[]),
                "`recalibrate_batches`.*recalibrate_batches=1.5",
            ),
            (
                dict(recalibrate_batches=4),
                "`recalibration_data`.*recalibration_data=None",
            ),
        ],
    )
    def test_rejects_bad_arguments(self, tmp_path, arguments, message):
        arguments = {"path": str(tmp_path / "x.weights.h5"), **arguments}
        with pytest.raises(ValueError, match=message):
            training.export_weights(tiny_network(), **arguments)
        assert not os.listdir(tmp_path)
