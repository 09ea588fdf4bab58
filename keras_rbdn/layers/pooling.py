"""Max pooling that remembers its switches, and the unpooling that uses them."""

import contextlib
import functools
import math
import os

import keras
from keras import ops

from keras_rbdn.layers import torch_pooling

_WINDOW = 2  # RBDN pools with 2x2 windows and stride 2 everywhere.
# From this many elements on (4 x 512 x 512 x 64), the switch mask of a
# TensorFlow graph is compiled by XLA into one pass; below it, XLA is no
# faster on a CPU and only adds compile time.
# Why and where it pays: docs/performance.md, "Pooling and unpooling".
COMPILED_MASK_MIN_ELEMENTS = 2**26
# What `MaxPoolingWithArgmax2D` returns as switches (see its docstring).
SWITCHES = ("mask", "input", "auto")
_portable_graphs = [0]  # depth of `portable_switches()` contexts


def _pooled_size(size):
    """Caffe's ceil-mode output length for a 2x2 / stride-2 pool."""
    if size is None:
        return None
    return (size + _WINDOW - 1) // _WINDOW


def _window_corners(x):
    """The four 2x2-window members of `x`, each at the pooled resolution.

    Odd sizes are padded with -inf first (Caffe's ceil mode); even ones are
    sliced as they are, with no padded copy. Returns the members in
    row-major order: top-left, top-right, bottom-left, bottom-right.
    """
    padded = _pad_to_even(x, float("-inf"))
    return (
        padded[:, 0::2, 0::2, :],
        padded[:, 0::2, 1::2, :],
        padded[:, 1::2, 0::2, :],
        padded[:, 1::2, 1::2, :],
    )


def _pool_tournament(corners):
    """Each window's maximum and its index (0..3, int8), first max on ties.

    Two pairs, then their winners: a later member wins only when strictly
    greater, so ties go to the first in row-major order. Both outputs are
    selects on the four corners, which XLA computes in one pass over the
    input (a maximum first, compared with each member, takes three on a
    GPU; see `docs/performance.md`). The gradient of a select goes to the
    selected member only.
    """
    top_left, top_right, bottom_left, bottom_right = corners
    right_wins = ops.greater(top_right, top_left)
    top = ops.where(right_wins, top_right, top_left)
    bottom_right_wins = ops.greater(bottom_right, bottom_left)
    bottom = ops.where(bottom_right_wins, bottom_right, bottom_left)
    bottom_wins = ops.greater(bottom, top)
    pooled = ops.where(bottom_wins, bottom, top)
    switch_index = ops.where(
        bottom_wins,
        ops.cast(bottom_right_wins, "int8") + 2,
        ops.cast(right_wins, "int8"),
    )
    return pooled, switch_index


def _upsample_nearest(x, height, width):
    """Repeats every pixel into a 2x2 block, cropped to `height` x `width`."""
    x = ops.repeat(ops.repeat(x, _WINDOW, axis=1), _WINDOW, axis=2)
    return x[:, :height, :width, :]


def _window_position(height, width):
    """(height, width) map of each pixel's row-major index in its window."""
    rows = ops.mod(ops.arange(height, dtype="int32"), _WINDOW)
    cols = ops.mod(ops.arange(width, dtype="int32"), _WINDOW)
    return ops.expand_dims(rows * _WINDOW, 1) + ops.expand_dims(cols, 0)


def _pad_to_even(x, fill):
    """Pads height and width to even sizes with `fill` (Caffe's ceil mode).

    With static sizes, only the odd ones get one more row or column (even
    sizes are returned untouched). Sizes only known when the graph runs
    get one row and column, then a slice to even sizes.
    """
    height, width = x.shape[1], x.shape[2]
    if height is not None and width is not None:
        if height % 2 == 0 and width % 2 == 0:
            return x
        padding = [[0, 0], [0, height % 2], [0, width % 2], [0, 0]]
        return ops.pad(x, padding, constant_values=fill)
    height, width = ops.shape(x)[1], ops.shape(x)[2]
    padded = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]], constant_values=fill)
    return padded[:, : 2 * ((height + 1) // 2), : 2 * ((width + 1) // 2), :]


def _to_windows(x):
    """`(b, 2h, 2w, c)` -> `(b, h, 2, w, 2, c)`; a reshape, no data moves."""
    shape = ops.shape(x)
    return ops.reshape(
        x, (-1, shape[1] // 2, _WINDOW, shape[2] // 2, _WINDOW, shape[3])
    )


def _per_window(x):
    """`(b, h, w, c)` -> `(b, h, 1, w, 1, c)`, broadcastable on windows."""
    return ops.expand_dims(ops.expand_dims(x, 2), 4)


def _spatial_size(x):
    """Height and width of `x`, static where known."""
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        height, width = ops.shape(x)[1], ops.shape(x)[2]
    return height, width


def _use_window_view():
    """Whether to use the formulation tuned for TensorFlow graphs.

    TensorFlow without XLA runs each op as its own kernel: there the
    native max pool (with its gradient set explicitly), a mask from a few
    ops on a free `(b, h, 2, w, 2, c)` reshape and a broadcast select for
    unpooling are several times faster than the strided-slice formulation.
    Under JAX (XLA) and PyTorch the slices are as fast or faster
    (`docs/performance.md`, "Pooling and unpooling with switches").
    """
    return keras.backend.backend() == "tensorflow"


@contextlib.contextmanager
def portable_switches():
    """Within it, TensorFlow traces the switches for any device.

    `switches="auto"` then means a boolean mask, and no TensorFlow CPU-only
    kernel is used for the switches: for graphs that may run on a GPU,
    such as the SavedModels of `keras_rbdn.export` (TF Serving may place
    them on a GPU, whose max-pool gradient kernel may break ties another
    way).
    """
    _portable_graphs[0] += 1
    try:
        yield
    finally:
        _portable_graphs[0] -= 1


def _cpu_max_pool_kernels():
    """Whether TensorFlow's CPU max-pool kernels can carry the switches.

    On a CPU, TensorFlow's max-pool gradient (`MaxPoolGrad`, with or
    without oneDNN) puts each value at its window's first maximum in
    row-major order, and `MaxPoolGradGrad` reads the gradient there: the
    unpooling and its gradient. With the pooled input as the switches,
    that skips the mask (`docs/performance.md` says when). Only
    with TensorFlow, when no GPU is visible, outside `portable_switches()`
    and outside XLA, whose lowering of these kernels breaks ties another
    way on odd sizes: not inside `jit_compile=True`, and not when
    `TF_XLA_FLAGS` lets XLA's auto-clustering compile CPU ops.
    """
    if not _use_window_view() or _portable_graphs[0]:
        return False
    if _xla_clusters_cpu_ops():
        return False
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util  # no public API

    graph = tf.compat.v1.get_default_graph()
    if control_flow_util.GraphOrParentsInXlaContext(graph):
        return False
    return not tf.config.list_logical_devices("GPU")


def _kernels_carry_switches(x, training):
    """Whether the backend's own max-pool kernels can find `x`'s switches
    again, so that the switches can be `x` itself.

    Under PyTorch on a CPU, outside `torch.compile`: in training too
    (`torch_pooling`; its gradients are exact, and training is faster:
    `docs/performance.md`). With TensorFlow: its CPU
    kernels, for inference only (see `_cpu_max_pool_kernels`). Never
    inside `portable_switches()`.
    """
    if keras.backend.backend() == "torch":
        return not _portable_graphs[0] and torch_pooling.applies_to(x)
    return not training and _cpu_max_pool_kernels()


def _xla_clusters_cpu_ops():
    """Whether `TF_XLA_FLAGS` turns on `--tf_xla_cpu_global_jit`.

    Without it, XLA's auto-clustering (`--tf_xla_auto_jit`,
    `tf.config.optimizer.set_jit`) leaves CPU ops alone; with it, the
    max-pool gradient kernels may be compiled by XLA. TensorFlow offers no
    way to read its parsed flags, so this reads the variable (the last
    setting wins) and assumes clustering whenever the CPU may take part.
    """
    enabled = False
    for flag in os.environ.get("TF_XLA_FLAGS", "").split():
        name, _, value = flag.partition("=")
        if name == "--tf_xla_cpu_global_jit":
            enabled = value.lower() not in ("false", "0")
    return enabled


def _first_max_mask(padded, window_max):
    """Boolean mask of each window's first maximum (row-major), full size.

    One full-size comparison with the window maximum, then the tie rule on
    the four window members at the pooled resolution (boolean ops on
    quarter-size maps), then one interleave back to full size.
    """
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
    """`_first_max_mask` as one XLA computation (TensorFlow only)."""
    import tensorflow as tf

    return tf.function(_first_max_mask, jit_compile=True, autograph=False)


def _switch_mask(padded, window_max):
    """The first-maximum mask, XLA-compiled for large static shapes.

    TensorFlow runs the mask's ops (a full-size comparison, three slices,
    boolean logic, an interleave) as separate kernels, each a pass over
    memory; XLA fuses them into one. That pays off only on large maps, and
    XLA needs static shapes: graphs traced with unknown sizes, such as the
    SavedModels of `keras_rbdn.export`, keep the plain ops, so TF Serving
    runs them without its XLA option. The result is the same bit for bit.
    """
    shape = padded.shape
    if None in shape or math.prod(shape) < COMPILED_MASK_MIN_ELEMENTS:
        return _first_max_mask(padded, window_max)
    return _compiled_first_max_mask()(padded, window_max)


def _switch_mask_of(x, window_max):
    """The first-maximum mask of `x` (any size), padded to even size."""
    return _switch_mask(_pad_to_even(x, float("-inf")), window_max)


def _pool_window_view(inputs):
    """Max pool with switches: a native max pool and a window-view mask.

    The pooled values are the native max pool's output as they are. Their
    gradient is set explicitly (`tf.custom_gradient`): the output gradient
    unpooled with the mask, so it reaches the selected position only,
    whatever tie rule the device's own max-pool gradient follows.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def pool(padded):
        window_max = ops.max_pool(padded, _WINDOW, _WINDOW, padding="valid")
        mask = _switch_mask(padded, window_max)

        def grad(upstream, *unused_mask_upstream):
            # No custom gradient inside a gradient: SavedModels keep it.
            return _select_at_switches(upstream, mask)

        return (window_max, mask), grad

    pooled, mask = pool(_pad_to_even(inputs, float("-inf")))
    height, width = _spatial_size(inputs)
    return pooled, tf.stop_gradient(mask[:, :height, :width, :])


def _select_at_switches(values, padded_switches):
    """Each value at its window's switch, zeros elsewhere (even sizes)."""
    upsampled = ops.where(
        _to_windows(padded_switches),
        _per_window(values),
        ops.zeros((), dtype=values.dtype),
    )
    return ops.reshape(upsampled, ops.shape(padded_switches))


def _unpool_window_view(values, switches):
    """Unpooling as one broadcast select on the window view.

    The gradient is set explicitly: the output gradient read at the
    switches, as a max pool of the gradient with `-inf` off the switches
    (one finite member per window, so it is exact in every dtype). The
    automatic gradient of the broadcast, a sum over two non-minor axes,
    is 2.4x slower in TensorFlow graphs.
    """
    import tensorflow as tf

    height, width = _spatial_size(switches)
    padded_switches = _pad_to_even(ops.cast(switches, "bool"), False)

    @tf.custom_gradient
    def unpool(values):
        def grad(upstream):
            return _read_at_switches(upstream, padded_switches)

        upsampled = _select_at_switches(values, padded_switches)
        return upsampled[:, :height, :width, :], grad

    return unpool(values)


def _read_at_switches(upstream, padded_switches):
    """The gradient of an unpooling: `upstream` read at each window's
    switch (`padded_switches`, a boolean mask of even size), as a max pool
    with `-inf` off the switches. One finite member per window, so it is
    exact in every dtype."""
    selected = ops.where(
        padded_switches,
        _pad_to_even(upstream, 0.0),
        ops.cast(float("-inf"), upstream.dtype),
    )
    return ops.max_pool(selected, _WINDOW, _WINDOW, padding="valid")


def _max_pool_same(x):
    """TensorFlow's 2x2 / stride-2 max pool; "SAME" is Caffe's ceil mode."""
    import tensorflow as tf

    return tf.nn.max_pool2d(x, _WINDOW, _WINDOW, "SAME")


def _unpool_with_cpu_kernels(values, switches):
    """Each value at its window's first maximum in `switches` (a map).

    `MaxPoolGrad` is the unpooling. Its `orig_output` is the max pool of
    `switches`: the same op as the pooling's, which TensorFlow's graph
    optimizer merges with it, and oneDNN's kernels then reuse what the
    pooling found (recomputing it made the unpooling twice as slow).
    `values` are computed in the dtype of `switches`, so that casting
    never creates ties.

    The gradient reads the upstream gradient through a mask of `switches`
    rather than with `MaxPoolGradGrad`: graphs holding both kernels gave
    wrong gradients in some calls (`docs/performance.md`, "Pooling and
    unpooling with switches"), and with the mask no graph holds
    `MaxPoolGradGrad`.
    """
    import tensorflow as tf

    options = {
        "ksize": [1, _WINDOW, _WINDOW, 1],
        "strides": [1, _WINDOW, _WINDOW, 1],
        "padding": "SAME",
    }
    window_max = _max_pool_same(switches)

    @tf.custom_gradient
    def unpool(values):
        def grad(upstream):
            mask = _switch_mask_of(switches, window_max)
            return _read_at_switches(upstream, mask)

        unpooled = tf.raw_ops.MaxPoolGrad(
            orig_input=switches,
            orig_output=window_max,
            grad=tf.cast(values, switches.dtype),
            **options,
        )
        return tf.cast(unpooled, values.dtype), grad

    return unpool(values)


def _pool_with_mask(inputs):
    """The pooled values and the boolean mask of each window's first
    maximum, in the form each backend computes fastest."""
    if _use_window_view():
        return list(_pool_window_view(inputs))
    pooled, switch_index = _pool_tournament(_window_corners(inputs))
    height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
    switch_index = _upsample_nearest(switch_index, height, width)
    position = ops.cast(_window_position(height, width), "int8")
    return [pooled, ops.equal(switch_index, position[None, :, :, None])]


@keras.saving.register_keras_serializable(package="keras_rbdn")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2x2 stride-2 max pooling that also returns its switches.

    The switches record where each maximum came from, as in Caffe's pooling
    layer with a second "mask" top: the unpooling layer
    (`MaxUnpooling2D`) uses them to put values back where they were.
    Semantics follow Caffe:

    - Odd sizes pool in ceil mode: a 7 x 5 map pools to 4 x 3; the last row
      and column windows only see the pixels that exist.
    - Ties pick the first maximum in row-major order inside the window
      (top-left, top-right, bottom-left, bottom-right), deterministically on
      every backend.
    - The gradient flows to the selected position only.

    The switches come in one of two forms, chosen by `switches`, both the
    size of the input and read the same way by `MaxUnpooling2D` (each
    value goes to the first maximum of its window in the switches):

    - `switches="mask"` (the default): a boolean mask, `True` where a
      pixel is the selected maximum of its window, `False` elsewhere;
      every window holds exactly one `True`. (Boolean rather than a float
      0/1 mask: a quarter of the memory traffic, and the unpooling is a
      select.)
    - `switches="input"`: the input itself (without gradient). Nothing is
      computed for the switches; the unpooling finds the maxima again.
    - `switches="auto"`, what `RBDN` uses: `"input"` where the backend's
      own CPU max-pool kernels do the unpooling, `"mask"` elsewhere.
      `"input"` with PyTorch on a CPU outside `torch.compile`, in training
      too, and for inference with TensorFlow when no GPU is visible: both
      faster than masks (`docs/performance.md`).
      `"mask"` with JAX, on GPUs, in TensorFlow training
      (`training=True`, which gained nothing), under XLA and inside
      `portable_switches()`, which `keras_rbdn.export` uses so that its
      SavedModels run on any device.

    Only channels-last inputs are supported.

    With the TensorFlow backend, masks of static shape with at least
    `keras_rbdn.layers.pooling.COMPILED_MASK_MIN_ELEMENTS` elements come
    from one XLA-compiled function, with the same result. A SavedModel
    traced with such a fixed shape then needs TF Serving's
    `--xla_cpu_compilation_enabled`; `keras_rbdn.export` traces with
    unknown sizes and never includes it. Setting that threshold to
    `float("inf")` before the model is traced turns the compiled mask off.

    Args:
        switches: `"mask"`, `"input"` or `"auto"`, as above.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        4D tensor `(batch_size, height, width, channels)`.

    Output shape:
        A list of two tensors: the pooled values,
        `(batch_size, ceil(height / 2), ceil(width / 2), channels)`, and the
        switches, `(batch_size, height, width, channels)`.

    Example:

    >>> x = keras.random.uniform((1, 7, 5, 3))
    >>> pooled, switches = MaxPoolingWithArgmax2D()(x)
    >>> tuple(pooled.shape), tuple(switches.shape)
    ((1, 4, 3, 3), (1, 7, 5, 3))
    """

    def __init__(self, switches="mask", **kwargs):
        super().__init__(**kwargs)
        if switches not in SWITCHES:
            raise ValueError(
                f"switches must be one of {SWITCHES}, got {switches!r}"
            )
        self.switches = switches
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _returns_input(self, inputs, training=None):
        if self.switches == "auto":
            return _kernels_carry_switches(inputs, training)
        return self.switches == "input"

    def call(self, inputs, training=None):
        if self._returns_input(inputs, training):
            return [_pooled_only(inputs), ops.stop_gradient(inputs)]
        return _pool_with_mask(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        pooled_shape = (
            batch,
            _pooled_size(height),
            _pooled_size(width),
            channels,
        )
        return [pooled_shape, tuple(input_shape)]

    def compute_output_spec(self, inputs, training=None):
        pooled_shape, switches_shape = self.compute_output_shape(inputs.shape)
        switches_dtype = (
            self.compute_dtype
            if self._returns_input(inputs, training)
            else "bool"
        )
        return [
            keras.KerasTensor(pooled_shape, dtype=self.compute_dtype),
            keras.KerasTensor(switches_shape, dtype=switches_dtype),
        ]

    def get_config(self):
        return {**super().get_config(), "switches": self.switches}


def _pooled_only(inputs):
    """The pooled values alone, with the first-maximum gradient."""
    if torch_pooling.applies_to(inputs):
        return torch_pooling.max_pool(inputs)
    if _cpu_max_pool_kernels():
        return _pool_with_mask_in_gradient(inputs)
    if _use_window_view():
        return _pool_window_view(inputs)[0]
    return _pool_tournament(_window_corners(inputs))[0]


def _pool_with_mask_in_gradient(inputs):
    """TensorFlow's max pool, the switch mask computed only for a gradient.

    Inference then computes no mask. The gradient is set explicitly, as in
    `_pool_window_view`, whatever tie rule the device's own kernel has.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def pool(x):
        window_max = _max_pool_same(x)

        def grad(upstream):
            mask = _switch_mask_of(x, window_max)
            height, width = _spatial_size(x)
            unpooled = _select_at_switches(upstream, mask)
            return unpooled[:, :height, :width, :]

        return window_max, grad

    return pool(inputs)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of `MaxPoolingWithArgmax2D`: values back at their switches.

    Each pooled value is written at the position its window's maximum came
    from, zeros everywhere else, and the output has exactly the size of the
    map that was pooled (odd sizes included). The gradient with respect to
    the values is the output gradient read at the switch positions.

    The switches are either of `MaxPoolingWithArgmax2D`'s forms: each value
    goes to the first maximum (row-major) of its window in the switches.
    For a boolean mask that is the window's `True`; for the pooled input
    itself, the position its maximum came from. Any other map works the
    same way (a 0/1 mask with one 1 per window, say).

    With switches that are a map, not a mask, the unpooling runs on the
    backend's own max-pool kernels where `MaxPoolingWithArgmax2D("auto")`
    returns its input: PyTorch's `max_unpool2d` on a CPU, and TensorFlow's
    max-pool gradient kernels on a CPU except with `training=True`, where
    a mask of the map is computed instead: those kernels gave wrong
    gradients in some calls of bfloat16 training graphs
    (`docs/performance.md`, "Pooling and unpooling with switches").

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `[values, switches]`, as below.
        training: Python boolean, as Keras passes it. Only changes which
            kernels TensorFlow uses on a CPU, not the result.

    Input shape:
        A list `[values, switches]`: `values` of shape
        `(batch_size, ceil(height / 2), ceil(width / 2), channels)`, and
        the `switches` returned by `MaxPoolingWithArgmax2D`,
        `(batch_size, height, width, channels)`.

    Output shape:
        4D tensor `(batch_size, height, width, channels)`.

    Example:

    >>> x = keras.random.uniform((1, 7, 5, 3))
    >>> pooled, switches = MaxPoolingWithArgmax2D()(x)
    >>> tuple(MaxUnpooling2D()([pooled, switches]).shape)
    (1, 7, 5, 3)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = [
            keras.layers.InputSpec(ndim=4),
            keras.layers.InputSpec(ndim=4),
        ]

    def call(self, inputs, training=None):
        values, switches = inputs
        if keras.backend.standardize_dtype(switches.dtype) != "bool":
            if _kernels_carry_switches(switches, training):
                if keras.backend.backend() == "torch":
                    return torch_pooling.unpool(values, switches)
                return _unpool_with_cpu_kernels(values, switches)
            switches = _pool_with_mask(switches)[1]
        if _use_window_view():
            return _unpool_window_view(values, switches)
        height, width = ops.shape(switches)[1], ops.shape(switches)[2]
        upsampled = _upsample_nearest(values, height, width)
        return ops.where(
            switches, upsampled, ops.zeros((), dtype=upsampled.dtype)
        )

    def compute_output_shape(self, input_shape):
        values_shape, switches_shape = input_shape
        channels = values_shape[-1]
        if channels is None:
            channels = switches_shape[-1]
        return tuple(switches_shape[:-1]) + (channels,)
