"""TensorFlow's forms: pooling on a window view or on the CPU's max-pool
kernels, and the narrow convolution as rows (`docs/performance.md`).

Without XLA, TensorFlow runs every op as a kernel of its own. The pooling
forms therefore use the native max pool, a switch mask from a few ops on
a free `(b, h, 2, w, 2, c)` reshape, a broadcast select for unpooling, and
explicit gradients; on a CPU, the max-pool gradient kernel `MaxPoolGrad`
is the unpooling itself.
"""

import functools
import math
import os

import tensorflow as tf
from keras import ops

# A private API: TensorFlow offers no public way to ask whether a graph is
# being traced for XLA (`jit_compile=True`), whose lowering of the CPU's
# max-pool kernels breaks ties another way.
from tensorflow.python.ops import control_flow_util

from keras_rbdn.backend import Form
from keras_rbdn.backend.conv_forms import ROWS
from keras_rbdn.layers.pooling import WINDOW
from keras_rbdn.layers.pooling import pad_to_even
from keras_rbdn.layers.pooling import spatial_size

# From this many elements on (4 x 512 x 512 x 64), the switch mask of a
# graph with static shapes is compiled by XLA into one pass; below it XLA
# is no faster on a CPU and only adds compile time.
COMPILED_MASK_MIN_ELEMENTS = 2**26


def cpu_kernels(*args, training=None):
    """Whether the CPU's max-pool kernels may carry the switches.

    `MaxPoolGrad` puts each value at its window's first maximum in
    row-major order on a CPU (with or without oneDNN); XLA's lowering of
    it breaks ties another way on odd sizes, and a GPU kernel may too. So:
    only when no GPU is visible, outside `jit_compile=True` and outside
    XLA's auto-clustering of CPU ops.
    """
    if _xla_clusters_cpu_ops():
        return False
    graph = tf.compat.v1.get_default_graph()
    if control_flow_util.GraphOrParentsInXlaContext(graph):
        return False
    return not tf.config.list_logical_devices("GPU")


def _xla_clusters_cpu_ops():
    """Whether `TF_XLA_FLAGS` turns on `--tf_xla_cpu_global_jit`, with
    which XLA's auto-clustering may compile CPU ops (the last setting
    wins). TensorFlow offers no way to read its parsed flags, so this
    reads the variable."""
    enabled = False
    for flag in os.environ.get("TF_XLA_FLAGS", "").split():
        name, _, value = flag.partition("=")
        if name == "--tf_xla_cpu_global_jit":
            enabled = value.lower() not in ("false", "0")
    return enabled


def _to_windows(x):
    """`(b, 2h, 2w, c)` -> `(b, h, 2, w, 2, c)`; a reshape, no data moves."""
    shape = ops.shape(x)
    return ops.reshape(
        x, (-1, shape[1] // 2, WINDOW, shape[2] // 2, WINDOW, shape[3])
    )


def _per_window(x):
    """`(b, h, w, c)` -> `(b, h, 1, w, 1, c)`, broadcastable on windows."""
    return ops.expand_dims(ops.expand_dims(x, 2), 4)


def _first_max_mask(padded, window_max):
    """Boolean mask of each window's first maximum (row-major), full size:
    one full-size comparison with the window maximum, the tie rule on
    quarter-size booleans, one interleave back to full size."""
    is_max = ops.equal(_to_windows(padded), _per_window(window_max))
    top_left = is_max[:, :, 0, :, 0, :]
    top_right = is_max[:, :, 0, :, 1, :]
    bottom_left = is_max[:, :, 1, :, 0, :]
    top = ops.logical_or(top_left, top_right)
    first = [
        top_left,
        ops.logical_and(top_right, ops.logical_not(top_left)),
        ops.logical_and(bottom_left, ops.logical_not(top)),
        ops.logical_not(ops.logical_or(top, bottom_left)),
    ]
    windows = ops.stack(
        [ops.stack(first[:2], axis=3), ops.stack(first[2:], axis=3)], axis=2
    )
    return ops.reshape(windows, ops.shape(padded))


@functools.cache
def _compiled_first_max_mask():
    return tf.function(_first_max_mask, jit_compile=True, autograph=False)


def _switch_mask(padded, window_max):
    """The first-maximum mask; one XLA computation for large static
    shapes (the same result). Unknown sizes, as in the SavedModels of
    `keras_rbdn.export`, keep the plain ops: no XLA needed to serve them."""
    shape = padded.shape
    if None in shape or math.prod(shape) < COMPILED_MASK_MIN_ELEMENTS:
        return _first_max_mask(padded, window_max)
    return _compiled_first_max_mask()(padded, window_max)


def _select_at_switches(values, padded_switches):
    """Each value at its window's switch, zeros elsewhere (even sizes)."""
    upsampled = ops.where(
        _to_windows(padded_switches),
        _per_window(values),
        ops.zeros((), dtype=values.dtype),
    )
    return ops.reshape(upsampled, ops.shape(padded_switches))


def _read_at_switches(upstream, padded_switches):
    """The gradient of an unpooling: `upstream` read at each window's
    switch, as a max pool with `-inf` off the switches (one finite member
    per window, so exact in every dtype)."""
    selected = ops.where(
        padded_switches,
        pad_to_even(upstream, 0.0),
        ops.cast(float("-inf"), upstream.dtype),
    )
    return ops.max_pool(selected, WINDOW, WINDOW, padding="valid")


def pool_window_view(inputs, training=None):
    """Native max pool and window-view mask; the pooled values' gradient
    is set to the selected position, whatever the device's tie rule."""

    @tf.custom_gradient
    def pool(padded):
        window_max = ops.max_pool(padded, WINDOW, WINDOW, padding="valid")
        mask = _switch_mask(padded, window_max)

        def grad(upstream, *unused_mask_upstream):
            # No custom gradient inside a gradient: SavedModels keep it.
            return _select_at_switches(upstream, mask)

        return (window_max, mask), grad

    pooled, mask = pool(pad_to_even(inputs, float("-inf")))
    height, width = spatial_size(inputs)
    return [pooled, tf.stop_gradient(mask[:, :height, :width, :])]


def unpool_window_view(values, switches, training=None):
    """One broadcast select; the gradient set to a max pool of the output
    gradient at the switches (autodiff's sum over two non-minor axes is
    slower in TensorFlow graphs)."""
    height, width = spatial_size(switches)
    padded_switches = pad_to_even(ops.cast(switches, "bool"), False)

    @tf.custom_gradient
    def unpool(values):
        def grad(upstream):
            return _read_at_switches(upstream, padded_switches)

        upsampled = _select_at_switches(values, padded_switches)
        return upsampled[:, :height, :width, :], grad

    return unpool(values)


def pool_in_cpu_kernel(inputs, training=None):
    """TensorFlow's max pool; the switch mask computed only for the
    gradient (set to the first maximum, whatever the kernel's rule)."""

    @tf.custom_gradient
    def pool(x):
        window_max = tf.nn.max_pool2d(x, WINDOW, WINDOW, "SAME")

        def grad(upstream):
            mask = _switch_mask(pad_to_even(x, float("-inf")), window_max)
            height, width = spatial_size(x)
            return _select_at_switches(upstream, mask)[:, :height, :width, :]

        return window_max, grad

    return pool(inputs)


def unpool_in_cpu_kernel(values, switches, training=None):
    """`MaxPoolGrad` as the unpooling at the map `switches`.

    Its `orig_output` is the same max pool as the pooling's, which the
    graph optimizer merges, so oneDNN reuses what the pooling found.
    `values` are computed in the dtype of `switches` (no cast creates
    ties). The gradient reads the upstream gradient through a mask rather
    than with `MaxPoolGradGrad`: graphs holding both kernels gave wrong
    gradients in some calls.
    """
    window_max = tf.nn.max_pool2d(switches, WINDOW, WINDOW, "SAME")

    @tf.custom_gradient
    def unpool(values):
        def grad(upstream):
            padded = pad_to_even(switches, float("-inf"))
            mask = _switch_mask(padded, window_max)
            return _read_at_switches(upstream, mask)

        unpooled = tf.raw_ops.MaxPoolGrad(
            orig_input=switches,
            orig_output=window_max,
            grad=tf.cast(values, switches.dtype),
            ksize=[1, WINDOW, WINDOW, 1],
            strides=[1, WINDOW, WINDOW, 1],
            padding="SAME",
        )
        return tf.cast(unpooled, values.dtype), grad

    return unpool(values)


def _inference_on_cpu_kernels(values, switches, training=None):
    # In training the kernels gave wrong gradients in some calls of
    # bfloat16 graphs; inference only.
    return not training and cpu_kernels()


FORMS = {
    "max_pool": (
        Form("cpu_kernels", pool_in_cpu_kernel, cpu_kernels, True),
        Form("window_view", lambda x, training=None: pool_window_view(x)[0]),
    ),
    "max_pool_with_mask": (Form("window_view", pool_window_view),),
    "max_unpool": (Form("window_view", unpool_window_view),),
    "max_unpool_at_map": (
        Form(
            "cpu_kernels",
            unpool_in_cpu_kernel,
            _inference_on_cpu_kernels,
            True,
        ),
    ),
    "narrow_conv2d": (ROWS,),
}
