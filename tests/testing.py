"""Helpers shared by the tests: gradients and fresh-process runs."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np


def gradient(function, x):
    """d sum(function(x)) / dx as NumPy, on the active Keras backend."""
    backend = keras.backend.backend()
    x = np.asarray(x, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            total = tf.reduce_sum(function(variable))
        return tape.gradient(total, variable).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: function(v).sum())(x))
    if backend == "torch":
        import torch

        variable = torch.tensor(x, requires_grad=True)
        function(variable).sum().backward()
        return variable.grad.numpy()
    raise NotImplementedError(backend)


def run_in_fresh_process(code, timeout=300):
    """Runs Python `code` in a new interpreter with this backend; stdout."""
    environment = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"Fresh process failed ({result.returncode}):\n{result.stderr}"
        )
    return result.stdout


def uint8_noise_reference(clean, sigma, samples=200_000, seed=0):
    """Mean and std of the 8-bit noise protocol on a constant pixel, in NumPy.

    `clean` (in [0, 1]) plus Gaussian noise of `sigma` (0-255 scale),
    clipped to [0, 255] and rounded to an integer level, as an 8-bit image
    file holds it; returned on the [0, 1] scale.
    """
    rng = np.random.default_rng(seed)
    levels = clean * 255.0 + sigma * rng.standard_normal(samples)
    noisy = np.rint(np.minimum(np.maximum(levels, 0.0), 255.0)) / 255.0
    return noisy.mean(), noisy.std()
