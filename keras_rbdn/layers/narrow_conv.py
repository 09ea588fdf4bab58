"""A convolution to few output channels, computed as projection + shifts."""

import keras
import numpy as np
from keras import ops

# Above this many output channels the ordinary convolution kernels are
# efficient and the layer behaves exactly like `keras.layers.Conv2D`.
MAX_NARROW_FILTERS = 4


@keras.saving.register_keras_serializable(package="keras_rbdn")
class NarrowConv2D(keras.layers.Conv2D):
    """`Conv2D` that is fast when it has few output channels.

    Same arguments, weights and function as `keras.layers.Conv2D`; only the
    way the TensorFlow backend computes it differs. RBDN's last layer
    (`deconv1`: 9 x 9, 64 channels to 1) is such a convolution: its
    im2col matrix has 5,184 columns but the product has a single output
    column, which TensorFlow's CPU kernels run at a few percent of their
    usual speed (it cost more than a 3 x 3, 64 to 64 layer with 7x its
    multiply-adds).

    With a stride-1, undilated, `"same"` convolution of odd kernel size
    `K` and `F <= 4` filters, the TensorFlow backend instead computes:

    1. a 1 x 1 projection to `K * K * F` channels, one per kernel tap (an
       efficient matrix product);
    2. the sum of each tap's map shifted to its place: a 1 x K depthwise
       convolution with one-hot kernels, a sum over the column taps, then
       a K x 1 depthwise one-hot convolution and a sum over the row taps.

    Every other configuration, and the JAX and PyTorch backends (whose
    compiled or native convolutions are already as fast, see
    `benchmarks/SPEED_NOTES.md`), use the plain `Conv2D` computation.
    Results agree with `Conv2D` to float rounding.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of 2 ints. Convolution window size.
        **kwargs: Any other `keras.layers.Conv2D` argument (`padding`,
            `use_bias`, initializers, regularizers, `name`, `dtype`, ...).

    Input shape:
        4D tensor `(batch_size, height, width, channels)`.

    Output shape:
        4D tensor `(batch_size, new_height, new_width, filters)`, as
        `keras.layers.Conv2D`.

    Example:

    >>> layer = NarrowConv2D(1, 9, padding="same")
    >>> tuple(layer(keras.random.uniform((2, 16, 16, 64))).shape)
    (2, 16, 16, 1)
    """

    def build(self, input_shape):
        super().build(input_shape)
        self._shift_kernels = None
        if self._narrow_path_applies():
            self._shift_kernels = _one_hot_shift_kernels(
                self.kernel_size[0], self.filters
            )

    def _narrow_path_applies(self):
        kernel_height, kernel_width = self.kernel_size
        return (
            keras.backend.backend() == "tensorflow"
            and self.filters <= MAX_NARROW_FILTERS
            and kernel_height == kernel_width
            and kernel_height % 2 == 1
            and kernel_height > 1
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding == "same"
            and self.groups == 1
            and self.data_format == "channels_last"
        )

    def call(self, inputs):
        if getattr(self, "_shift_kernels", None) is None:
            return super().call(inputs)
        size = self.kernel_size[0]
        filters = self.filters
        channels = self.kernel.shape[2]
        dtype = inputs.dtype
        batch, height, width = (
            ops.shape(inputs)[0],
            ops.shape(inputs)[1],
            ops.shape(inputs)[2],
        )
        # (K, K, C, F) -> (C, K * K * F), taps ordered (row, column, filter).
        projection = ops.reshape(
            ops.transpose(self.kernel, (2, 0, 1, 3)),
            (channels, size * size * filters),
        )
        taps = ops.matmul(inputs, ops.cast(projection, dtype))
        row_kernel, column_kernel = self._shift_kernels
        shifted = ops.depthwise_conv(
            taps, ops.cast(row_kernel, dtype), padding="same"
        )
        shifted = ops.reshape(
            shifted, (batch, height, width, size, size, filters)
        )
        rows = ops.reshape(
            ops.sum(shifted, axis=4), (batch, height, width, size * filters)
        )
        shifted = ops.depthwise_conv(
            rows, ops.cast(column_kernel, dtype), padding="same"
        )
        outputs = ops.sum(
            ops.reshape(shifted, (batch, height, width, size, filters)),
            axis=3,
        )
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def _one_hot_shift_kernels(size, filters):
    """Depthwise kernels that move each tap's map to its kernel position.

    Returns a `(1, size, size * size * filters, 1)` kernel whose channel
    (row i, column j, filter f) is one-hot at column j, and a
    `(size, 1, size * filters, 1)` kernel whose channel (row i, filter f)
    is one-hot at row i.
    """
    row_kernel = np.zeros((1, size, size, size, filters), "float32")
    column_kernel = np.zeros((size, 1, size, filters), "float32")
    for index in range(size):
        row_kernel[0, index, :, index, :] = 1.0
        column_kernel[index, 0, index, :] = 1.0
    return (
        row_kernel.reshape(1, size, size * size * filters, 1),
        column_kernel.reshape(size, 1, size * filters, 1),
    )
