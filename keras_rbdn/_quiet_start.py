"""Silences TensorFlow's C++ start-up lines for the `keras-rbdn` command.

TensorFlow 2.21 writes several lines to stderr when it is imported (oneDNN,
CUDA drivers, CPU features) and one more when it first looks for devices
(`cuInit` on a machine with CUDA libraries but no GPU). `TF_CPP_MIN_LOG_LEVEL`
does not hide the first ones: they are logged before absl's logging is set
up. The command line is imported through this package, so the only place to
hide them is here, before `keras` is first imported.

Importing this module does it (`keras_rbdn/__init__.py` imports it
first), but only for the `keras-rbdn` console script, `python -m
keras_rbdn.cli`, or with `KERAS_RBDN_QUIET_START=1` (the demo recipe sets
it); `KERAS_RBDN_QUIET_START=0` turns it off, to see those lines. Library
users get TensorFlow's output unchanged. Only the standard library is used.
"""

import contextlib
import os
import sys

ENVIRONMENT_VARIABLE = "KERAS_RBDN_QUIET_START"
COMMAND = "keras-rbdn"
MODULE = "keras_rbdn.cli"


def started_as_command(argv=None, orig_argv=None):
    """Whether this process runs the `keras-rbdn` command line."""
    argv = sys.argv if argv is None else argv
    orig_argv = (
        getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    )
    if argv and os.path.splitext(os.path.basename(argv[0]))[0] == COMMAND:
        return True
    return any(
        flag == "-m" and module == MODULE
        for flag, module in zip(orig_argv[:-1], orig_argv[1:], strict=True)
    )


def wanted(environ=None, argv=None, orig_argv=None):
    """`KERAS_RBDN_QUIET_START` if set to 0 or 1, else whether this is the
    command line."""
    setting = (os.environ if environ is None else environ).get(
        ENVIRONMENT_VARIABLE, ""
    )
    if setting in ("0", "1"):
        return setting == "1"
    return started_as_command(argv, orig_argv)


@contextlib.contextmanager
def silenced_stderr():
    """Points file descriptor 2 at /dev/null, C++ writes included."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_keras_quietly():
    """Imports Keras (and TensorFlow, with its devices found) silently.

    A Python error still propagates, and is reported once stderr is back.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with silenced_stderr():
        import keras

        # With TF_CONFIG, TensorFlow must not start yet: its multi-worker
        # strategy configures it first (`keras_rbdn.training.distribution`).
        if keras.backend.backend() == "tensorflow" and not os.environ.get(
            "TF_CONFIG"
        ):
            import tensorflow as tf

            tf.config.list_logical_devices()  # `cuInit` happens here


if wanted():
    import_keras_quietly()
