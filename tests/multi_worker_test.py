"""Training on two worker processes on 127.0.0.1 (CPU only).

Backend-independent: each test starts its own worker processes with a fixed
KERAS_BACKEND (TensorFlow's MultiWorkerMirroredStrategy, JAX's
multi-process DataParallel), whatever backend the suite runs under. The
argument checks of `keras_rbdn.training.distribution` are in
`training_test.py`.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_rbdn import training

# Each test starts its workers with a fixed backend (see the docstring).
pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]

WORKER = os.path.join(os.path.dirname(__file__), "multi_worker_run.py")
STEPS = 3  # multi_worker_run.STEPS
BATCH = 4  # multi_worker_run.BATCH
# Seconds a phase of a test may take before its workers are killed.
TIMEOUT = 180


def free_ports(count):
    """`count` TCP ports of 127.0.0.1 that are free now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def worker_environments(backend, num_processes=(2, 2)):
    """The environment of each of two workers on 127.0.0.1.

    `num_processes` is the count each JAX process is told.
    """
    base = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KERAS_DISTRIBUTION_", "TF_CONFIG"))
        and name != "XLA_FLAGS"
    }
    base.update(
        KERAS_BACKEND=backend,
        # Set by the demo recipe when the suite runs it.
        KERAS_RBDN_QUIET_START="0",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
    )
    if backend == "tensorflow":
        addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
        return [
            dict(
                base,
                TF_CONFIG=json.dumps(
                    {
                        "cluster": {"worker": addresses},
                        "task": {"type": "worker", "index": index},
                    }
                ),
            )
            for index in range(2)
        ]
    (port,) = free_ports(1)
    return [
        dict(
            base,
            KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
            KERAS_DISTRIBUTION_NUM_PROCESSES=str(num_processes[index]),
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
        )
        for index in range(2)
    ]


@contextlib.contextmanager
def started_workers(tmp_path, name, environments, arguments):
    """Starts one worker per environment; kills those still running at exit.

    Yields `(processes, logs)`; each worker's output goes to a log file.
    """
    processes, logs = [], []
    try:
        for index, environment in enumerate(environments):
            log = tmp_path / f"{name}-{index}.log"
            logs.append(log)
            with open(log, "w") as output:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, WORKER, *map(str, arguments(index))],
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        env=environment,
                    )
                )
        yield processes, logs
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def tail(logs):
    return "\n".join(
        f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs
    )


def wait_for(processes, logs, name):
    """Waits for every worker; fails the test if one hangs."""
    for process in processes:
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name}: a worker hung\n{tail(logs)}")


def run_workers(tmp_path, name, environments, arguments):
    """Runs the workers to the end; returns their outputs (`.npz`)."""
    with started_workers(tmp_path, name, environments, arguments) as (
        processes,
        logs,
    ):
        wait_for(processes, logs, name)
        codes = [process.returncode for process in processes]
        assert codes == [0, 0], tail(logs)
    return [np.load(arguments(index)[2]) for index in range(2)]


def weights(output):
    names = sorted(
        (name for name in output.files if name.startswith("weight_")),
        key=lambda name: int(name.split("_")[1]),
    )
    return [output[name] for name in names]


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_workers_train_alike_and_resume_after_a_kill(backend, tmp_path):
    environments = worker_environments(backend)
    run_dir = tmp_path / "run"

    def arguments(epochs, *options):
        def worker_arguments(index):
            out = tmp_path / f"worker-{index}.npz"
            return [run_dir, epochs, out, *options[index]]

        return worker_arguments

    # The chief is SIGKILLed in the middle of the third epoch; the other
    # worker, waiting on it, is killed then.
    killed = arguments(3, ["--kill-at-epoch", 2], [])
    with started_workers(tmp_path, "killed", environments, killed) as (
        processes,
        logs,
    ):
        try:
            processes[0].wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the chief did not reach its kill\n{tail(logs)}")
        assert processes[0].returncode == -signal.SIGKILL, tail(logs)
    assert training.latest_checkpoint(str(run_dir))[1] == 2, tail(logs)
    assert not [name for name in os.listdir(run_dir) if "partial" in name]

    # Both started again: they continue with the third epoch, from the
    # chief's checkpoint of the second (optimizer step included). Only the
    # second worker's time is up after it, and both stop there (the chief
    # going on alone would wait forever on the other in the fourth).
    resumed = arguments(4, ["--time-limit", 3600], ["--time-limit", 1e-6])
    outputs = run_workers(
        tmp_path, "resumed", worker_environments(backend), resumed
    )
    for index, output in enumerate(outputs):
        assert int(output["worker"]) == index
        assert int(output["workers"]) == 2
        assert output["epochs"].tolist() == [2]
        assert int(output["iterations"]) == 3 * STEPS
    assert training.latest_checkpoint(str(run_dir))[1] == 3
    # One line per epoch: only the chief writes the log.
    lines = (run_dir / "history.csv").read_text().split()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]
    assert lines[0].split(",")[-1] == "val_loss"

    # Each worker is fed its own half of every global batch.
    first, second = (output["first_batch"] for output in outputs)
    assert first.shape == second.shape == (BATCH // 2, 16, 16, 1)
    rng = np.random.default_rng(0)  # multi_worker_run.images()
    x = rng.random((BATCH * STEPS, 16, 16, 1), dtype="float32")
    np.testing.assert_array_equal(np.concatenate([first, second]), x[:BATCH])

    # The same weights on both workers, the batch-normalization moving
    # statistics aside on TensorFlow: each worker averages those over its
    # own half batches (JAX computes batch statistics over the global
    # batch), and the chief's are the ones checkpointed.
    moving = ["moving" in name for name in outputs[0]["names"].tolist()]
    for is_moving, left, right in zip(
        moving, weights(outputs[0]), weights(outputs[1]), strict=True
    ):
        if backend == "tensorflow" and is_moving:
            continue
        np.testing.assert_array_equal(left, right)


def test_jax_processes_given_different_counts_stop(tmp_path):
    environments = worker_environments("jax", num_processes=(2, 3))

    def arguments(index):
        return [tmp_path / "run", 1, tmp_path / f"worker-{index}.npz"]

    with started_workers(tmp_path, "counts", environments, arguments) as (
        processes,
        logs,
    ):
        wait_for(processes, logs, "counts")
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 1, tail(logs)
        assert "different numbers of processes: [2, 3]" in log.read_text()
    assert not (tmp_path / "run").exists()
