"""A convolution with few channels on one side, in forms that run faster."""

import keras
import numpy as np
from keras import ops

from keras_rbdn.layers.conv import Conv2D

# Above this many channels on both sides the ordinary convolution kernels
# are efficient and the layer behaves exactly like `keras.layers.Conv2D`.
MAX_NARROW_FILTERS = 4
# (backend, device platform) pairs whose convolutions to few output
# channels run faster as rows, then a shift-sum: TensorFlow (the platform
# is only read under JAX) and JAX on a GPU.
# Measured forms per device: docs/performance.md, "NarrowConv2D".
ROWS_FORM_PLATFORMS = (("tensorflow", None), ("jax", "gpu"))
# (backend, device platform) pairs whose large narrow convolutions run
# faster between blocks of pixels (JAX on a GPU: docs/performance.md,
# "NarrowConv2D"), the block size, and the smallest
# kernel it is used for: the form multiplies the multiply-adds by
# (block * (2 * ceil(K // 2 / block) + 1) / K) ** 2, 1.78x for K = 9.
BLOCKS_FORM_PLATFORMS = (("jax", "gpu"),)
BLOCK_SIZE = 4
MIN_BLOCKS_KERNEL_SIZE = 7


@keras.saving.register_keras_serializable(package="keras_rbdn")
class NarrowConv2D(Conv2D):
    """`Conv2D` that is fast when it has few channels on one side.

    Same arguments, weights and function as `keras.layers.Conv2D`; only the
    way some backends compute it differs. RBDN's last layer
    (`deconv1`: 9 x 9, 64 channels to 1) is such a convolution: its
    im2col matrix has 5,184 columns but the product has a single output
    column, which TensorFlow's CPU kernels run at a few percent of their
    usual speed (it cost more than a 3 x 3, 64 to 64 layer with 7x its
    multiply-adds).

    With a stride-1, undilated, `"same"` convolution of odd kernel size
    `K` and `F <= 4` filters, the TensorFlow backend (and JAX on a GPU,
    for kernels too small for the blocks form below, such as DnCNN's 3 x 3
    output layer) instead computes:

    1. a 1 x K convolution from the `C` input channels to `K * F`
       channels, one per (kernel row, filter): channel `(i, f)` holds
       what row `i` of the kernel contributes to filter `f`, still at the
       position of the input row. Its output is `K * F` channels wide, a
       shape TensorFlow's kernels run efficiently;
    2. a K x 1 convolution with one-hot weights from `K * F` channels to
       `F`, which moves row `i`'s contribution up or down to its place and
       sums the rows.

    On a GPU under JAX, a convolution with at most 4 channels on either
    side and an odd kernel of size 7 or more (RBDN's `conv1` and `deconv1`)
    instead runs between blocks of 4 x 4 pixels: space-to-depth, a 3 x 3
    convolution from `16 * C` to `16 * F` channels with the kernel
    rearranged, depth-to-space. It does 1.78x the multiply-adds for K = 9
    in a shape the tensor cores run well (`docs/performance.md`,
    "NarrowConv2D").
    In float32 under JAX's default precision, the GPU's tensor cores then
    round its products to TF32, as they do for the network's other
    convolutions (the plain one-channel convolution did not use them);
    `jax.default_matmul_precision("highest")` keeps full float32.

    Every other configuration, and the other backends and devices (where
    the plain computation measured as fast or faster, see
    `docs/performance.md`), use the plain `Conv2D` computation.
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
        self._form = self._choose_form(input_shape[-1])
        self._row_shift_kernel = None
        self._block_taps = None
        if self._form == "rows":
            self._row_shift_kernel = row_shift_kernel(
                self.kernel_size[0], self.filters
            )
        elif self._form == "blocks":
            self._block_taps = block_taps(self.kernel_size[0], BLOCK_SIZE)

    def _choose_form(self, channels):
        """ "rows", "blocks" or None (the plain convolution), for this
        configuration on this backend and device."""
        kernel_height, kernel_width = self.kernel_size
        if not (
            kernel_height == kernel_width
            and kernel_height % 2 == 1
            and kernel_height > 1
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding == "same"
            and self.groups == 1
            and self.data_format == "channels_last"
        ):
            return None
        platform = (keras.backend.backend(), _device_platform())
        if platform in BLOCKS_FORM_PLATFORMS and (
            min(channels, self.filters) <= MAX_NARROW_FILTERS
            and kernel_height >= MIN_BLOCKS_KERNEL_SIZE
        ):
            return "blocks"
        if (
            platform in ROWS_FORM_PLATFORMS
            and self.filters <= MAX_NARROW_FILTERS
        ):
            return "rows"
        return None

    def convolution_op(self, inputs, kernel):
        if (
            keras.backend.backend() == "torch"
            and kernel.shape[-1] == 1
            and not self._torch_computes()  # which copies the kernel itself
        ):
            kernel = _contiguous_for_torch(kernel)
        return super().convolution_op(inputs, kernel)

    def call(self, inputs):
        form = getattr(self, "_form", None)
        if form is None:
            return super().call(inputs)
        dtype = inputs.dtype
        kernel = ops.cast(self.kernel, dtype)
        bias = ops.cast(self.bias, dtype) if self.use_bias else None
        if form == "rows":
            outputs = rows_then_shift(
                inputs, kernel, ops.cast(self._row_shift_kernel, dtype)
            )
            if bias is not None:
                outputs = outputs + bias
        else:
            outputs = conv_in_blocks(
                inputs,
                blocked_kernel(kernel, self._block_taps),
                BLOCK_SIZE,
                bias,
            )
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def _contiguous_for_torch(kernel):
    """`kernel` as a view whose PyTorch layout, `(out, in, h, w)`, is dense.

    With one filter, Keras' `(h, w, in, 1)` kernel becomes a PyTorch weight
    with strides `(1, 1, ...)`, which PyTorch's CPU float16 convolution
    (`slow_conv2d`, used on CPUs without native float16) rejects in the
    backward pass ("grad_weight must be contiguous"). Copying the kernel
    into PyTorch's layout and handing Keras the matching view avoids it.
    """
    dense = ops.transpose(kernel, (3, 2, 0, 1)).contiguous()
    return ops.transpose(dense, (2, 3, 1, 0))


def _device_platform():
    """The platform JAX computes on ("cpu", "gpu", "tpu"), else None."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    return jax.default_backend()


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


def block_taps(size, block):
    """Which kernel tap each weight of the kernel between pixel blocks is.

    For a "same" `size` x `size` kernel and blocks of `block` x `block`
    pixels, a `(span, span, block, block, block, block)` array of indices
    into the `size * size` taps (row-major), with `size * size` (a zero tap)
    where the weight is zero. `span = 2 * ceil((size // 2) / block) + 1`.
    Output phase `(oy, ox)` of the block at `(i, j)` reads input phase
    `(py, px)` of the block at `(i + m, j + n)` through the kernel tap
    `(block * m + py - oy + size // 2, block * n + px - ox + size // 2)`.
    """
    half = size // 2
    reach = -(-half // block)
    offsets = block * np.arange(-reach, reach + 1)
    phases = np.arange(block)
    # Axes (m, py, oy): the kernel row each weight reads; (n, px, ox) alike.
    rows = (
        offsets[:, None, None] + phases[None, :, None] - phases[None, None, :]
    ) + half
    inside = (rows >= 0) & (rows < size)
    # (m, n, py, px, oy, ox)
    tap_rows = rows[:, None, :, None, :, None]
    tap_columns = rows[None, :, None, :, None, :]
    valid = (
        inside[:, None, :, None, :, None] & inside[None, :, None, :, None, :]
    )
    return np.where(valid, tap_rows * size + tap_columns, size * size)


def blocked_kernel(kernel, taps):
    """`kernel` (`(K, K, C, F)`) as the kernel between pixel blocks whose
    weights `taps` (`block_taps(K, block)`) names: `(span, span,
    block * block * C, block * block * F)`, differentiable in `kernel`."""
    size, _, channels, filters = kernel.shape
    span, _, block = taps.shape[:3]
    flat = ops.reshape(kernel, (size * size, channels, filters))
    flat = ops.concatenate([flat, ops.zeros_like(flat[:1])], axis=0)
    # (m, n, py, px, oy, ox, C, F) -> (m, n, py, px, C, oy, ox, F)
    weights = ops.transpose(
        ops.take(flat, taps, axis=0), (0, 1, 2, 3, 6, 4, 5, 7)
    )
    return ops.reshape(
        weights, (span, span, block * block * channels, block * block * filters)
    )


def conv_in_blocks(inputs, kernel, block, bias=None):
    """The "same" convolution of `inputs` computed between pixel blocks:
    space-to-depth by `block`, the convolution with `kernel` (a
    `blocked_kernel`), depth-to-space. Heights and widths that are not
    multiples of `block` are zero-padded at the end, then cropped.

    A `bias` (one value per output channel) is added between pixel blocks,
    where it is a plain per-channel bias of the convolution (repeated for
    each pixel of a block) that XLA can fuse into it."""
    _, height, width, _ = inputs.shape
    pad_height, pad_width = -height % block, -width % block
    if pad_height or pad_width:
        inputs = ops.pad(
            inputs, [(0, 0), (0, pad_height), (0, pad_width), (0, 0)]
        )
    outputs = ops.conv(space_to_depth(inputs, block), kernel, padding="same")
    if bias is not None:
        outputs = outputs + ops.tile(bias, (block * block,))
    return depth_to_space(outputs, block)[:, :height, :width, :]


def space_to_depth(x, block):
    """`(b, h, w, c)` -> `(b, h / block, w / block, block * block * c)`,
    channel `(py * block + px) * c + i` holding pixel `(py, px)` of each
    block. Needs static heights and widths, multiples of `block`."""
    _, height, width, channels = x.shape
    x = ops.reshape(
        x, (-1, height // block, block, width // block, block, channels)
    )
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(
        x, (-1, height // block, width // block, block * block * channels)
    )


def depth_to_space(x, block):
    """The inverse of `space_to_depth`."""
    _, height, width, channels = x.shape
    channels //= block * block
    x = ops.reshape(x, (-1, height, width, block, block, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height * block, width * block, channels))
