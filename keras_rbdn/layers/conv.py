"""`keras.layers.Conv2D`, without Keras 3.15's input copies under PyTorch."""

import math

import keras


@keras.saving.register_keras_serializable(package="keras_rbdn")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`: same arguments, weights and function.

    Only the PyTorch backend computes it differently, for channels-last
    inputs. Keras 3.15.1 turns each input into a contiguous channels-first
    tensor (one copy of the whole input) and then back into PyTorch's
    channels-last memory format (a second copy) before convolving. The
    channels-first view of a channels-last input already has that memory
    format, so this layer hands it to PyTorch as it is: no copy, the same
    kernel and the same result, bit for bit. Keras has merged the same
    change upstream (keras-team/keras#23199), not yet released. Under
    PyTorch on a CPU the copies took 39% of RBDN-3's time
    (`benchmarks/SPEED_NOTES.md`, sections 27 and 32).

    Every other backend, channels-first data and PyTorch graphs compiled
    with `torch.compile` (`jit_compile=True`) use Keras' own code.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of 2 ints. Convolution window size.
        **kwargs: Any other `keras.layers.Conv2D` argument.

    Example:

    >>> layer = Conv2D(8, 3, padding="same")
    >>> tuple(layer(keras.random.uniform((2, 16, 16, 3))).shape)
    (2, 16, 16, 8)
    """

    def convolution_op(self, inputs, kernel):
        if not _eager_torch() or self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        return torch_conv_channels_last(
            inputs, kernel, self.strides, self.padding, self.dilation_rate
        )


def _eager_torch():
    """Whether this is the PyTorch backend, outside `torch.compile`.

    Compiled (`jit_compile=True`), PyTorch's inductor failed on the view
    with dynamic shapes ("cannot determine truth value of Relational"
    while ordering its strides), so compiled graphs keep Keras' code.
    """
    if keras.backend.backend() != "torch":
        return False
    import torch

    return not torch.compiler.is_compiling()


def torch_conv_channels_last(inputs, kernel, strides, padding, dilation_rate):
    """PyTorch's 2-D convolution of channels-last `inputs` (`(b, h, w, c)`)
    with a Keras `kernel` (`(kh, kw, c / groups, f)`), as `keras.ops.conv`
    computes it, without copying `inputs` when they are contiguous."""
    import torch

    inputs = keras.ops.convert_to_tensor(inputs)
    kernel = keras.ops.convert_to_tensor(kernel)
    channels_last = torch.channels_last
    # The channels-first view of a contiguous channels-last tensor is
    # contiguous in `channels_last` memory format: this copies nothing.
    x = inputs.permute(0, 3, 1, 2)
    if not x.is_contiguous(memory_format=channels_last):
        x = x.contiguous(memory_format=channels_last)
    weight = kernel.permute(3, 2, 0, 1)
    if not weight.is_contiguous(memory_format=channels_last):
        weight = weight.contiguous(memory_format=channels_last)
    pads = (0, 0)
    if padding == "same":
        before_after = [
            _same_padding(size, k, s, d)
            for size, k, s, d in zip(
                x.shape[2:],
                weight.shape[2:],
                strides,
                dilation_rate,
                strict=True,
            )
        ]
        if any(before != after for before, after in before_after):
            (top, bottom), (left, right) = before_after
            x = torch.nn.functional.pad(x, (left, right, top, bottom))
        else:
            pads = tuple(before for before, _ in before_after)
    outputs = torch.nn.functional.conv2d(
        x,
        weight,
        stride=tuple(strides),
        padding=pads,
        dilation=tuple(dilation_rate),
        groups=x.shape[1] // weight.shape[1],
    )
    return outputs.permute(0, 2, 3, 1)


def _same_padding(size, kernel_size, stride, dilation):
    """(before, after) zero padding of one dimension for "same", as
    TensorFlow and Keras pad: the odd one out after."""
    span = (kernel_size - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2
