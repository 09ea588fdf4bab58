import json
import os
import socket
import subprocess
import sys
import time

import keras
import keras_tuner
import numpy as np
import pytest

import keras_rbdn
from keras_rbdn.tuning import RBDNHyperModel
from keras_rbdn.tuning import architecture_arguments
from keras_rbdn.tuning import build_best_model
from tests.data.relight_test import write_fake_yale

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(REPOSITORY, "recipes", "tune_architecture.py")
TINY_SPACE = dict(
    K=(3, 5),
    c=(2, 4),
    T=3,
    D=(1, 2),
    branches=(0, 1, 2),
    learning_rate=(1e-3, 1e-2),
    image_size=(16, 16),
)
# The searches compile one model per trial: keep those models minimal.
SEARCH_SPACE = dict(
    K=3,
    c=(2, 4),
    T=3,
    D=1,
    branches=(0, 1),
    upsampling="bilinear",
    learning_rate=(1e-3, 1e-2),
    image_size=(16, 16),
)


def tiny_data(count=8):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(count, 16, 16, 1)).astype("float32")
    return x, np.clip(x * 0.5 + 0.25, 0, 1)


# The search space and what reaches a model's config: no backend in
# the checked values.
@pytest.mark.backend_independent
class RBDNHyperModelTest:
    def test_declares_every_hyperparameter(self):
        hp = keras_tuner.HyperParameters()
        model = RBDNHyperModel(**TINY_SPACE).build(hp)
        names = {p.name for p in hp.space}
        assert names == {
            "branches",
            "kernel_size",
            "filters",
            "trunk_kernel_size",
            "trunk_depth",
            "upsampling",
            "merge",
            "learning_rate",
        }
        assert hp.get("trunk_kernel_size") == 3  # fixed, still recorded
        config = model.get_config()
        for name in (
            "branches",
            "kernel_size",
            "filters",
            "trunk_depth",
            "upsampling",
        ):
            assert config[name] == hp.get(name)
        learning_rate = keras.ops.convert_to_numpy(
            model.optimizer.learning_rate
        )
        assert learning_rate == pytest.approx(hp.get("learning_rate"))

    def test_drawn_values_reach_the_model(self):
        hypermodel = RBDNHyperModel(**TINY_SPACE)
        hp = keras_tuner.HyperParameters()
        hypermodel.declare(hp)
        values = {
            "branches": 2,
            "kernel_size": 5,
            "filters": 4,
            "trunk_depth": 2,
            "upsampling": "bilinear",
            "merge": "none",
        }
        for name, value in values.items():
            hp.values[name] = value
        config = hypermodel.build(hp).get_config()
        for name, value in values.items():
            assert config[name] == value

    def test_paper_aliases_and_readable_names(self):
        by_alias = RBDNHyperModel(K=(3, 5), c=8, T=(3,), D=range(1, 4))
        by_name = RBDNHyperModel(
            kernel_size=(3, 5),
            filters=8,
            trunk_kernel_size=(3,),
            trunk_depth=range(1, 4),
        )
        assert by_alias.search_space == by_name.search_space
        assert by_alias.search_space["trunk_depth"] == (1, 2, 3)

    @pytest.mark.parametrize(
        "arguments, message",
        [
            (dict(K=(4, 9)), r"`kernel_size` \(K\) must be odd integers"),
            (dict(T=2), r"`trunk_kernel_size` \(T\) must be odd"),
            (dict(c=(0, 8)), r"`filters` \(c\) must be integers >= 1"),
            (dict(D=()), "at least one choice"),
            (dict(D=(3, 3)), "must be distinct"),
            (dict(branches=(-1, 2)), "`branches` must be integers >= 0"),
            (dict(branches=2.0), "`branches` must be integers"),
            (dict(upsampling="nearest"), "`upsampling` must be among"),
            (dict(merge=("concat", "sum")), "`merge` must be among"),
            (dict(branches=0, merge="none"), "needs at least one branch"),
            (
                dict(branches=(0, 4), image_size=(64, 24)),
                r"at least 32 x 32 pixels.*image_size=\(64, 24\)",
            ),
            (dict(learning_rate=(1e-2, 1e-4)), "0 < low < high"),
            (dict(learning_rate=0.0), "must be positive"),
            (dict(K=5, kernel_size=7), "name the same hyperparameter"),
            (dict(depth=5), "Unknown search-space argument"),
            (dict(task="segment"), "Unknown task"),
        ],
    )
    def test_rejects_invalid_spaces(self, arguments, message):
        with pytest.raises(ValueError, match=message):
            RBDNHyperModel(**arguments)

    def test_rejects_invalid_drawn_combination(self):
        # A space built elsewhere can still hand build() an invalid draw.
        hypermodel = RBDNHyperModel(branches=(0, 1), image_size=(8, 8))
        hp = keras_tuner.HyperParameters()
        hp.Fixed("branches", 3)
        with pytest.raises(ValueError, match="branches=3"):
            hypermodel.build(hp)

    def test_architecture_arguments_rebuild_through_build(self):
        values = {
            "branches": 2,
            "K": 5,
            "c": 4,
            "T": 3,
            "D": 2,
            "upsampling": "learnable",
            "merge": "none",
            "learning_rate": 0.01,
        }
        arguments = architecture_arguments(values)
        assert arguments == {
            "task": "relight",
            "channels": None,
            "branches": 2,
            "kernel_size": 5,
            "filters": 4,
            "trunk_kernel_size": 3,
            "trunk_depth": 2,
            "upsampling": "learnable",
            "merge": "none",
        }
        model = keras_rbdn.build(**arguments)
        assert model.get_config()["merge"] == "none"
        # Without branches the merge mode is meaningless and is dropped.
        base = architecture_arguments(dict(values, branches=0))
        assert "merge" not in base
        keras_rbdn.build(**base)


@pytest.mark.slow
class TinySearchTest:
    @pytest.mark.parametrize("tuner_class", ["random", "bayesian", "hyperband"])
    def test_tiny_search_and_rebuild(self, tuner_class, tmp_path):
        x, y = tiny_data()
        hypermodel = RBDNHyperModel(**SEARCH_SPACE)
        common = dict(
            objective="val_loss",
            directory=str(tmp_path),
            project_name="tiny",
            seed=1,
        )
        if tuner_class == "random":
            tuner = keras_tuner.RandomSearch(hypermodel, max_trials=2, **common)
        elif tuner_class == "bayesian":
            tuner = keras_tuner.BayesianOptimization(
                hypermodel, max_trials=2, num_initial_points=1, **common
            )
        else:
            tuner = keras_tuner.Hyperband(
                hypermodel,
                max_epochs=1,
                factor=2,
                hyperband_iterations=1,
                **common,
            )
        tuner.search(
            x,
            y,
            validation_data=(x[:4], y[:4]),
            epochs=1,
            batch_size=4,
            verbose=0,
        )
        trials = tuner.oracle.trials.values()
        assert 1 <= len(trials) <= 3
        assert all(t.status == "COMPLETED" for t in trials)
        model, values = build_best_model(tuner, compile=False)
        rebuilt = keras_rbdn.build(**architecture_arguments(values))
        assert model.count_params() == rebuilt.count_params()
        assert rebuilt.get_config()["filters"] == values["filters"]
        assert model(x[:1]).shape == (1, 16, 16, 1)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The tuner's chief and workers wiring, once; the models it builds and
# trains are tested on every backend elsewhere.
@pytest.mark.slow
@pytest.mark.backend_independent
class DistributedSearchTest:
    def test_chief_and_two_workers(self, tmp_path):
        data = tmp_path / "relight"
        subjects = [f"yaleB0{i}" for i in range(1, 5)]
        write_fake_yale(str(data), subjects=subjects, size=(16, 16))
        summary = tmp_path / "best.json"
        command = [
            sys.executable,
            RECIPE,
            "search",
            "--tuner",
            "random",
            "--max-trials",
            "3",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--data-dir",
            str(data),
            "--image-size",
            "16",
            "16",
            "--validation-subjects",
            "1",
            "--lightings-per-subject",
            "2",
            "--kernel-sizes",
            "3,5",
            "--filter-choices",
            "2,4",
            "--trunk-kernel-sizes",
            "3",
            "--trunk-depths",
            "1,2",
            "--branch-choices",
            "0,1",
            "--directory",
            str(tmp_path / "tune"),
            "--summary",
            str(summary),
            "--verbose",
            "0",
        ]
        environment = dict(
            os.environ,
            KERAS_BACKEND=keras.backend.backend(),
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(free_port()),
        )
        processes = {}
        for tuner_id in ("chief", "tuner0", "tuner1"):
            log = open(tmp_path / f"{tuner_id}.log", "w")
            processes[tuner_id] = subprocess.Popen(
                command,
                env=dict(environment, KERASTUNER_TUNER_ID=tuner_id),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPOSITORY,
            )
            if tuner_id == "chief":
                time.sleep(2)  # let the oracle server come up first
        deadline = time.time() + 240
        try:
            for process in processes.values():
                process.wait(timeout=max(1, deadline - time.time()))
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
        logs = {
            tuner_id: (tmp_path / f"{tuner_id}.log").read_text()
            for tuner_id in processes
        }
        for tuner_id, process in processes.items():
            assert process.returncode == 0, logs[tuner_id][-3000:]
        for worker in ("tuner0", "tuner1"):
            assert f"worker {worker}: done" in logs[worker]
        best = json.loads(summary.read_text())
        assert best["trials"] == 3
        assert best["best_hyperparameters"]["filters"] in (2, 4)
        assert best["backend"] == keras.backend.backend()
