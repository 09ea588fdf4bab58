"""Max pooling that remembers its switches, and the unpooling that uses them."""

import keras
from keras import ops

from keras_rbdn import backend

WINDOW = 2  # RBDN pools with 2x2 windows and stride 2 everywhere.
# What `MaxPoolingWithArgmax2D` returns as switches (see its docstring).
SWITCHES = ("mask", "input", "auto")


@backend.operation("max_pool")
def max_pool(inputs, training=None):
    """2x2 / stride-2 max pool in ceil mode, the gradient to each window's
    first maximum (row-major). `training` only chooses the form."""
    return _pool_tournament(_window_corners(inputs))[0]


@backend.operation("max_pool_with_mask")
def max_pool_with_mask(inputs, training=None):
    """`[pooled, mask]`: the max pool, and a boolean mask of the input's
    size, `True` at each window's first maximum (row-major)."""
    pooled, switch_index = _pool_tournament(_window_corners(inputs))
    height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
    switch_index = _upsample_nearest(switch_index, height, width)
    position = ops.cast(_window_position(height, width), "int8")
    return [pooled, ops.equal(switch_index, position[None, :, :, None])]


@backend.operation("max_unpool")
def max_unpool(values, mask, training=None):
    """Each value where `mask` (boolean, one `True` per window) is set,
    zeros elsewhere, at the mask's size."""
    height, width = ops.shape(mask)[1], ops.shape(mask)[2]
    upsampled = _upsample_nearest(values, height, width)
    return ops.where(mask, upsampled, ops.zeros((), dtype=upsampled.dtype))


@backend.operation("max_unpool_at_map")
def max_unpool_at_map(values, switches, training=None):
    """Each value at the first maximum (row-major) of its window in the
    map `switches`, zeros elsewhere."""
    mask = max_pool_with_mask(switches, training=training)[1]
    return max_unpool(values, mask, training=training)


def pad_to_even(x, fill):
    """Pads height and width to even sizes with `fill` (Caffe's ceil mode).

    With static sizes only the odd ones get one more row or column (even
    sizes are returned untouched); sizes only known when the graph runs
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


def spatial_size(x):
    """Height and width of `x`, static where known."""
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        height, width = ops.shape(x)[1], ops.shape(x)[2]
    return height, width


def _pooled_size(size):
    """Caffe's ceil-mode output length for a 2x2 / stride-2 pool."""
    if size is None:
        return None
    return (size + WINDOW - 1) // WINDOW


def _window_corners(x):
    """The four members of each 2x2 window, at the pooled resolution, in
    row-major order; odd sizes are padded with -inf first."""
    padded = pad_to_even(x, float("-inf"))
    return (
        padded[:, 0::2, 0::2, :],
        padded[:, 0::2, 1::2, :],
        padded[:, 1::2, 0::2, :],
        padded[:, 1::2, 1::2, :],
    )


def _pool_tournament(corners):
    """Each window's maximum and its index (0..3, int8), first max on ties.

    Two pairs, then their winners: a later member wins only when strictly
    greater. Both outputs are selects on the four members, so the
    gradient goes to the selected member only.
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
    x = ops.repeat(ops.repeat(x, WINDOW, axis=1), WINDOW, axis=2)
    return x[:, :height, :width, :]


def _window_position(height, width):
    """(height, width) map of each pixel's row-major index in its window."""
    rows = ops.mod(ops.arange(height, dtype="int32"), WINDOW)
    cols = ops.mod(ops.arange(width, dtype="int32"), WINDOW)
    return ops.expand_dims(rows * WINDOW, 1) + ops.expand_dims(cols, 0)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2x2 stride-2 max pooling that also returns its switches.

    The switches record where each maximum came from, as in Caffe's pooling
    layer with a second "mask" top: `MaxUnpooling2D` uses them to put
    values back where they were. Semantics follow Caffe:

    - Odd sizes pool in ceil mode: a 7 x 5 map pools to 4 x 3; the last row
      and column windows only see the pixels that exist.
    - Ties pick the first maximum in row-major order inside the window
      (top-left, top-right, bottom-left, bottom-right), deterministically on
      every backend.
    - The gradient flows to the selected position only.

    The switches come in one of two forms, both the size of the input and
    read the same way by `MaxUnpooling2D` (each value goes to the first
    maximum of its window in the switches):

    - `switches="mask"` (the default): a boolean mask, `True` where a
      pixel is the selected maximum of its window; every window holds
      exactly one `True`.
    - `switches="input"`: the input itself (without gradient). Nothing is
      computed for the switches; the unpooling finds the maxima again.
    - `switches="auto"`, what `RBDN` uses: `"input"` where the backend has
      a faster form of the unpooling at a map (its own max-pool kernels,
      see `docs/performance.md`), `"mask"` elsewhere. Which form that is
      may depend on the device and on `training`, never the result.

    Only channels-last inputs are supported.

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
            # Whether unpooling at a map like `inputs` has a faster form.
            form = backend.find(
                "max_unpool_at_map", inputs, inputs, training=training
            )
            return form is not None
        return self.switches == "input"

    def call(self, inputs, training=None):
        if self._returns_input(inputs, training):
            pooled = max_pool(inputs, training=training)
            return [pooled, ops.stop_gradient(inputs)]
        return list(max_pool_with_mask(inputs, training=training))

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

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `[values, switches]`, as below.
        training: Python boolean, as Keras passes it. May change which
            form of the computation the backend uses, not the result.

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
        if keras.backend.standardize_dtype(switches.dtype) == "bool":
            return max_unpool(values, switches, training=training)
        return max_unpool_at_map(values, switches, training=training)

    def compute_output_shape(self, input_shape):
        values_shape, switches_shape = input_shape
        channels = values_shape[-1]
        if channels is None:
            channels = switches_shape[-1]
        return tuple(switches_shape[:-1]) + (channels,)
