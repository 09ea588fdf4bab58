"""When importing keras_rbdn silences TensorFlow's start-up lines."""

import pytest

from keras_rbdn import _quiet_start

# Start-up logic and file descriptors: no Keras backend involved.
pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize(
    "argv, orig_argv, expected",
    [
        (["/venv/bin/keras-rbdn", "denoise"], [], True),
        (["keras-rbdn"], [], True),
        (["-m"], ["python", "-m", "keras_rbdn.cli", "denoise"], True),
        (["-m"], ["python", "-m", "pytest"], False),
        (["recipes/demo.py"], ["python", "recipes/demo.py"], False),
        (["keras-rbdn-train"], [], False),
        ([], [], False),
    ],
)
def test_started_as_command(argv, orig_argv, expected):
    assert _quiet_start.started_as_command(argv, orig_argv) is expected


@pytest.mark.parametrize(
    "setting, argv, expected",
    [
        (None, ["pytest"], False),
        (None, ["/bin/keras-rbdn"], True),
        ("1", ["pytest"], True),
        ("0", ["/bin/keras-rbdn"], False),
        ("yes", ["pytest"], False),  # only 0 and 1 override
    ],
)
def test_wanted_follows_the_variable_then_the_command(setting, argv, expected):
    environ = {} if setting is None else {"KERAS_RBDN_QUIET_START": setting}
    assert _quiet_start.wanted(environ, argv, []) is expected


def test_silenced_stderr_restores_the_descriptor(capfd):
    import os

    with _quiet_start.silenced_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"
