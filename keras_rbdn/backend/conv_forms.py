"""The narrow convolution's forms, in `keras.ops`: rows, or blocks.

A stride-1, undilated "same" convolution with an odd square kernel
(`(K, K, C, F)`) and few channels on one side runs far below the usual
rate of convolution kernels (a 9 x 9, 64 -> 1 convolution is a
matrix-vector product). Two forms compute the same function in shapes
that run well; `tensorflow.py` and `jax.py` register them for the
devices where they pay (`docs/performance.md`, "NarrowConv2D"):

- `ROWS`: a 1 x K convolution to `K * F` channels (one per kernel row and
  filter), then a K x 1 one-hot convolution that shifts each row's
  contribution into place and sums them. For at most 4 filters.
- `BLOCKS`: space-to-depth by `BLOCK_SIZE`, a convolution between pixel
  blocks with the kernel rearranged, depth-to-space. It does
  (block * (2 * ceil(K // 2 / block) + 1) / K) ** 2 the multiply-adds,
  1.78x for K = 9, in a shape tensor cores run well.

Both take `(inputs, kernel, bias)` (bias or `None`, in the inputs'
dtype) and are selected with the kernel's shape.
"""

import functools

import numpy as np
from keras import ops

from keras_rbdn.backend import Form

MAX_NARROW_CHANNELS = 4
BLOCK_SIZE = 4
MIN_BLOCKS_KERNEL_SIZE = 7


def rows(inputs, kernel, bias=None):
    """The "same" convolution as kernel rows, then a shift-sum."""
    size, _, _, filters = kernel.shape
    shift = ops.cast(row_shift_kernel(size, filters), kernel.dtype)
    outputs = rows_then_shift(inputs, kernel, shift)
    if bias is not None:
        outputs = outputs + bias
    return outputs


def blocks(inputs, kernel, bias=None):
    """The "same" convolution between blocks of `BLOCK_SIZE` pixels."""
    taps = block_taps(kernel.shape[0], BLOCK_SIZE)
    return conv_in_blocks(
        inputs, blocked_kernel(kernel, taps), BLOCK_SIZE, bias
    )


def few_filters(kernel_shape):
    """Whether the rows form serves a kernel of this shape."""
    return kernel_shape[-1] <= MAX_NARROW_CHANNELS


def narrow_and_large(kernel_shape):
    """Whether the blocks form serves a kernel of this shape."""
    size, _, channels, filters = kernel_shape
    return (
        min(channels, filters) <= MAX_NARROW_CHANNELS
        and size >= MIN_BLOCKS_KERNEL_SIZE
    )


ROWS = Form("rows", rows, few_filters)
BLOCKS = Form("blocks", blocks, narrow_and_large)


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


@functools.cache
def row_shift_kernel(size, filters):
    """The one-hot `(size, 1, size * filters, filters)` shift-sum kernel.

    Channel `(row i, filter f)` of its input is moved by `i - size // 2`
    rows (a one at kernel row `i`) and added into output filter `f`.
    """
    kernel = np.zeros((size, 1, size, filters, filters), "float32")
    for row in range(size):
        kernel[row, 0, row] = np.eye(filters, dtype="float32")
    return kernel.reshape(size, 1, size * filters, filters)


@functools.cache
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
