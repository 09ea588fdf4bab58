"""A convolution to few output channels, computed as rows, then a shift-sum."""

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

    1. a 1 x K convolution from the `C` input channels to `K * F`
       channels, one per (kernel row, filter): channel `(i, f)` holds
       what row `i` of the kernel contributes to filter `f`, still at the
       position of the input row. Its output is `K * F` channels wide, a
       shape TensorFlow's kernels run efficiently;
    2. a K x 1 convolution with one-hot weights from `K * F` channels to
       `F`, which moves row `i`'s contribution up or down to its place and
       sums the rows.

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
        self._row_shift_kernel = None
        if self._narrow_path_applies():
            self._row_shift_kernel = row_shift_kernel(
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
        if getattr(self, "_row_shift_kernel", None) is None:
            return super().call(inputs)
        dtype = inputs.dtype
        outputs = rows_then_shift(
            inputs,
            ops.cast(self.kernel, dtype),
            ops.cast(self._row_shift_kernel, dtype),
        )
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def rows_then_shift(inputs, kernel, shift_kernel):
    """The "same" convolution of `inputs` with an odd square `kernel`
    (`(K, K, C, F)`), computed as kernel rows, then a shift-sum.

    A 1 x K convolution to `K * F` channels (channel `(i, f)` holds what
    kernel row `i` contributes to filter `f`, at the input row), then the
    one-hot `shift_kernel` (`row_shift_kernel(K, F)`) moves each row's
    contribution into place and sums them.
    """
    size, _, channels, filters = kernel.shape
    # (row, column, C, F) -> (1, column, C, row * F + f).
    row_kernel = ops.reshape(
        ops.transpose(kernel, (1, 2, 0, 3)),
        (1, size, channels, size * filters),
    )
    rows = ops.conv(inputs, row_kernel, padding="same")
    return ops.conv(rows, shift_kernel, padding="same")


def row_shift_kernel(size, filters):
    """The one-hot `(size, 1, size * filters, filters)` shift-sum kernel.

    Channel `(row i, filter f)` of its input is moved by `i - size // 2`
    rows (a one at kernel row `i`) and added into output filter `f`.
    """
    kernel = np.zeros((size, 1, size, filters, filters), "float32")
    for row in range(size):
        kernel[row, 0, row] = np.eye(filters, dtype="float32")
    return kernel.reshape(size, 1, size * filters, filters)
