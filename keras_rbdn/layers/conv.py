"""`keras.layers.Conv2D`, without Keras 3.15's input copies under PyTorch."""

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
    kernel and the same result, bit for bit. Keras has merged that change
    upstream (keras-team/keras#23199), not yet released. The bias is added
    inside PyTorch's convolution, not in a pass of its own, with the same
    result bit for bit (`docs/performance.md`, "Conv2D under PyTorch").

    Every other backend, channels-first data, "same" convolutions that
    PyTorch would pad differently (strided, or an even kernel span) and
    PyTorch graphs compiled with `torch.compile` (`jit_compile=True`) use
    Keras' own code.

    Args:
        filters: int. Number of output channels.
        kernel_size: int or tuple of 2 ints. Convolution window size.
        **kwargs: Any other `keras.layers.Conv2D` argument.

    Example:

    >>> layer = Conv2D(8, 3, padding="same")
    >>> tuple(layer(keras.random.uniform((2, 16, 16, 3))).shape)
    (2, 16, 16, 8)
    """

    def call(self, inputs):
        if not (self.use_bias and self._torch_computes()):
            return super().call(inputs)
        # PyTorch adds the bias inside its convolution kernel: no separate
        # pass over the output.
        outputs = self._torch_conv(inputs, self.kernel, self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def convolution_op(self, inputs, kernel):
        if not self._torch_computes():
            return super().convolution_op(inputs, kernel)
        return self._torch_conv(inputs, kernel)

    def _torch_computes(self):
        return (
            eager_torch()
            and self.data_format == "channels_last"
            and self._torch_pads_alike()
        )

    def _torch_conv(self, inputs, kernel, bias=None):
        return torch_conv_channels_last(
            inputs,
            kernel,
            self.strides,
            self.padding,
            self.dilation_rate,
            bias,
        )

    def _torch_pads_alike(self):
        """Whether PyTorch's own padding is Keras': "valid", or "same"
        with stride 1 and an even total padding (an odd kernel span), which
        PyTorch splits evenly without copying the input."""
        if self.padding != "same":
            return True
        return all(
            stride == 1 and (size - 1) * dilation % 2 == 0
            for stride, size, dilation in zip(
                self.strides, self.kernel_size, self.dilation_rate, strict=True
            )
        )


def eager_torch():
    """Whether this is the PyTorch backend, outside `torch.compile`.

    Compiled (`jit_compile=True`), PyTorch's inductor failed on the view
    with dynamic shapes ("cannot determine truth value of Relational"
    while ordering its strides), so compiled graphs keep Keras' code.
    """
    if keras.backend.backend() != "torch":
        return False
    import torch

    return not torch.compiler.is_compiling()


def torch_conv_channels_last(
    inputs, kernel, strides, padding, dilation_rate, bias=None
):
    """PyTorch's 2-D convolution of channels-last `inputs` (`(b, h, w, c)`)
    with a Keras `kernel` (`(kh, kw, c / groups, f)`), as `keras.ops.conv`
    computes it, without copying `inputs` when they are contiguous.
    `padding` is "valid", or "same" where PyTorch pads as Keras does (stride
    1, odd kernel spans). `bias`, if given, is added per output channel."""
    import torch

    inputs = keras.ops.convert_to_tensor(inputs)
    kernel = keras.ops.convert_to_tensor(kernel)
    channels_last = torch.channels_last
    # The channels-first view of a contiguous channels-last tensor is
    # contiguous in `channels_last` memory format: this copies nothing.
    x = inputs.permute(0, 3, 1, 2)
    if not x.is_contiguous(memory_format=channels_last):
        x = x.contiguous(memory_format=channels_last)
    # A fresh copy of the (small) kernel: with one filter, the permuted view
    # already counts as channels-last, but its strides made PyTorch's CPU
    # float16 backward fail ("grad_weight must be contiguous").
    weight = kernel.permute(3, 2, 0, 1).clone(memory_format=channels_last)
    outputs = torch.nn.functional.conv2d(
        x,
        weight,
        stride=tuple(strides),
        padding=padding,
        dilation=tuple(dilation_rate),
        groups=x.shape[1] // weight.shape[1],
        bias=None if bias is None else keras.ops.convert_to_tensor(bias),
    )
    return outputs.permute(0, 2, 3, 1)
