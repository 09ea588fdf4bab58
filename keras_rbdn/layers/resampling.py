"""Fixed (non-learnable) bilinear upsampling to a reference size."""

import keras
from keras import ops


def _interleave(first, second, axis):
    """Alternates slices of `first` and `second` along `axis` (1 or 2)."""
    stacked = ops.stack([first, second], axis=axis + 1)
    shape = ops.shape(stacked)
    merged = list(shape[:axis]) + [shape[axis] * 2] + list(shape[axis + 2 :])
    return ops.reshape(stacked, merged)


def _double_bilinear(x, axis):
    """2x bilinear upsampling along one axis, half-pixel centres, edge clamp.

    Output pixel 2i sits at input coordinate i - 1/4 and 2i + 1 at i + 1/4,
    so they mix x[i] with its previous / next neighbour as 3/4 and 1/4.
    """
    length = ops.shape(x)[axis]
    index = ops.arange(length, dtype="int32")
    previous = ops.take(x, ops.maximum(index - 1, 0), axis=axis)
    following = ops.take(x, ops.minimum(index + 1, length - 1), axis=axis)
    even = 0.75 * x + 0.25 * previous
    odd = 0.75 * x + 0.25 * following
    return _interleave(even, odd, axis)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class BilinearUpsampling2D(keras.layers.Layer):
    """Doubles the spatial size bilinearly and crops to a reference map.

    The fixed-upsampling alternative to unpooling + deconvolution in the
    paper's ablation (Fig. 6). Interpolation uses half-pixel centres with
    clamped edges, as `tf.image.resize(..., method="bilinear")`. The output
    is cropped to the height and width of the reference tensor, which is the
    map that was pooled, so odd sizes come back exactly.

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        A list `[inputs, reference]`: `inputs` of shape
        `(batch_size, rows, cols, channels)` and `reference` of shape
        `(batch_size, height, width, any)` with `height <= 2 * rows` and
        `width <= 2 * cols`.

    Output shape:
        4D tensor `(batch_size, height, width, channels)`.

    Example:

    >>> x = keras.random.uniform((1, 4, 3, 8))
    >>> reference = keras.random.uniform((1, 7, 5, 1))
    >>> tuple(BilinearUpsampling2D()([x, reference]).shape)
    (1, 7, 5, 8)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = [
            keras.layers.InputSpec(ndim=4),
            keras.layers.InputSpec(ndim=4),
        ]

    def call(self, inputs):
        x, reference = inputs
        x = _double_bilinear(_double_bilinear(x, axis=1), axis=2)
        height, width = ops.shape(reference)[1], ops.shape(reference)[2]
        return x[:, :height, :width, :]

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (
            x_shape[0],
            reference_shape[1],
            reference_shape[2],
            x_shape[3],
        )
