"""JAX's forms: the narrow convolution in blocks or rows, on GPUs.

On a GPU the narrow convolutions (`conv_forms`) run faster between pixel
blocks, or as rows for kernels too small for blocks (DnCNN's 3 x 3 output
layer); on a CPU the plain convolution is as fast (`docs/performance.md`,
"NarrowConv2D").
"""

import jax

from keras_rbdn.backend.conv_forms import BLOCKS
from keras_rbdn.backend.conv_forms import ROWS


def on_gpu():
    """Whether JAX computes on a GPU."""
    return jax.default_backend() == "gpu"


def _on_gpu(form):
    return form._replace(applies=lambda *args: on_gpu() and form.applies(*args))


FORMS = {"narrow_conv2d": (_on_gpu(BLOCKS), _on_gpu(ROWS))}
