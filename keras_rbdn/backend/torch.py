"""PyTorch's forms: its native pooling, convolution and batch norm kernels
on the channels-first views of channels-last maps (`docs/performance.md`).

Outside `torch.compile` only: compiled (`jit_compile=True`), inductor
failed on these views with dynamic shapes ("cannot determine truth value
of Relational" while ordering their strides), so compiled graphs keep
the references.
"""

import math

import keras
import torch
from keras import ops

from keras_rbdn.backend import Form
from keras_rbdn.layers.pooling import WINDOW

# Keras up to 3.15 copies a convolution's channels-last input twice under
# PyTorch (keras-team/keras#23199 removes the copies after 3.15.1).
_KERAS_COPIES_CONV_INPUTS = tuple(
    int(part) for part in keras.version().split(".")[:2]
) <= (3, 15)


def eager(*args, **kwargs):
    """Whether PyTorch runs outside `torch.compile`."""
    return not torch.compiler.is_compiling()


def _channels_first(x):
    """The `(b, c, h, w)` view of a channels-last tensor: no copy."""
    return ops.convert_to_tensor(x).permute(0, 3, 1, 2)


def _dense_kernel(kernel, memory_format=torch.contiguous_format):
    """A Keras kernel (`(kh, kw, in, out)`) copied into PyTorch's layout,
    `(out, in, kh, kw)`, dense in `memory_format`.

    Handing PyTorch the permuted view instead copies nothing, but with
    one filter that view has strides which PyTorch's CPU float16
    convolution backward (`slow_conv2d`) rejects ("grad_weight must be
    contiguous"); copying the (small) kernel avoids it.
    """
    kernel = ops.convert_to_tensor(kernel)
    return kernel.permute(3, 2, 0, 1).clone(memory_format=memory_format)


# Pooling: PyTorch's CPU max pool scans each 2x2 window in row-major order
# and keeps the first strict maximum (Caffe's tie rule), and returns its
# position as flat indices, which `max_unpool2d` writes values back at.


def on_cpu(x, *args, **kwargs):
    """Whether PyTorch's CPU kernels serve `x`: outside `torch.compile`,
    on a CPU (for a symbolic `x`, Keras' current device)."""
    if not eager():
        return False
    device = getattr(x, "device", None)
    if not hasattr(device, "type"):  # a KerasTensor, or no tensor
        device = ops.zeros(()).device
    return device.type == "cpu"


def _max_pool(x, return_indices=False):
    return torch.nn.functional.max_pool2d(
        _channels_first(x),
        WINDOW,
        WINDOW,
        ceil_mode=True,  # Caffe's ceil mode for odd sizes
        return_indices=return_indices,
    )


def max_pool(inputs, training=None):
    return _max_pool(inputs).permute(0, 2, 3, 1)


def max_unpool_at_map(values, switches, training=None):
    indices = _max_pool(switches, return_indices=True)[1]
    unpooled = torch.nn.functional.max_unpool2d(
        _channels_first(values),
        indices,
        WINDOW,
        WINDOW,
        output_size=tuple(switches.shape[1:3]),
    )
    return unpooled.permute(0, 2, 3, 1)


def _switches_on_cpu(values, switches, training=None):
    return on_cpu(switches)


# Convolution: the channels-first view of a contiguous channels-last
# tensor is contiguous in PyTorch's `channels_last` memory format, so it
# is handed over as it is; the bias is added inside the convolution.


def _pads_alike(layer):
    """Whether PyTorch's own padding is Keras': "valid", or "same" with
    stride 1 and an odd kernel span (an even total padding, split evenly
    without copying the input)."""
    if layer.padding != "same":
        return True
    return all(
        stride == 1 and (size - 1) * dilation % 2 == 0
        for stride, size, dilation in zip(
            layer.strides, layer.kernel_size, layer.dilation_rate, strict=True
        )
    )


def _conv_channels_last_applies(layer, inputs):
    return (
        _KERAS_COPIES_CONV_INPUTS
        and eager()
        and layer.data_format == "channels_last"
        and _pads_alike(layer)
    )


def conv_channels_last(layer, inputs):
    x = _channels_first(inputs)
    if not x.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    weight = _dense_kernel(layer.kernel, torch.channels_last)
    bias = ops.convert_to_tensor(layer.bias) if layer.use_bias else None
    outputs = torch.nn.functional.conv2d(
        x,
        weight,
        bias=bias,
        stride=tuple(layer.strides),
        padding=layer.padding,
        dilation=tuple(layer.dilation_rate),
        groups=x.shape[1] // weight.shape[1],
    ).permute(0, 2, 3, 1)
    if layer.activation is not None:
        return layer.activation(outputs)
    return outputs


def _one_filter(layer, inputs):
    return layer.filters == 1


def conv_dense_kernel(layer, inputs):
    """Keras' computation, with the kernel handed over as a view of a
    dense copy in PyTorch's layout."""
    kernel = _dense_kernel(layer.kernel).permute(2, 3, 1, 0)
    outputs = ops.conv(
        inputs,
        kernel,
        strides=list(layer.strides),
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
    )
    if layer.use_bias:
        shape = [1] * outputs.ndim
        shape[-1 if layer.data_format == "channels_last" else 1] = -1
        outputs = ops.add(outputs, ops.reshape(layer.bias, shape))
    if layer.activation is not None:
        return layer.activation(outputs)
    return outputs


# Batch normalization: one native kernel forward and one backward, where
# Keras builds it from separate tensor operations.


def _values_per_channel(layer, inputs):
    return math.prod(inputs.shape) // inputs.shape[layer.axis]


def _batch_norm_applies(layer, inputs, training, mask):
    return (
        eager()
        and mask is None
        and not layer.renorm
        and len(inputs.shape) >= 2
        # PyTorch rejects training batches with one value per channel;
        # Keras normalizes them to zero.
        and not (training and _values_per_channel(layer, inputs) < 2)
    )


def batch_norm(layer, inputs, training, mask):
    """Keras' batch normalization in `torch.nn.functional.batch_norm`:
    the batch's mean and biased variance in training, Keras' moving
    statistics update, half precision computed in float32."""
    compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
    x = torch.movedim(
        ops.convert_to_tensor(ops.cast(inputs, compute_dtype)), layer.axis, 1
    )
    gamma = ops.cast(layer.gamma, compute_dtype) if layer.scale else None
    beta = ops.cast(layer.beta, compute_dtype) if layer.center else None
    moving_mean = ops.cast(layer.moving_mean, compute_dtype)
    moving_variance = ops.cast(layer.moving_variance, compute_dtype)
    if training:
        # PyTorch updates the statistics it is given in place, as
        # `(1 - m) * running + m * batch` with the unbiased variance. Given
        # copies, the variance scaled by n / (n - 1) and `m` Keras'
        # 1 - momentum, that is Keras' update times n / (n - 1).
        count = _values_per_channel(layer, inputs)
        unbias = count / (count - 1)
        moving_mean = moving_mean.detach().clone()
        moving_variance = moving_variance.detach() * unbias
    outputs = torch.nn.functional.batch_norm(
        x,
        moving_mean,
        moving_variance,
        gamma,
        beta,
        training=training,
        momentum=1.0 - layer.momentum,
        eps=layer.epsilon,
    )
    if training:
        layer.moving_mean.assign(moving_mean)
        layer.moving_variance.assign(moving_variance / unbias)
    outputs = torch.movedim(outputs, 1, layer.axis)
    return ops.cast(outputs, layer.compute_dtype)


FORMS = {
    "max_pool": (Form("native_pooling", max_pool, on_cpu),),
    "max_unpool_at_map": (
        Form("native_pooling", max_unpool_at_map, _switches_on_cpu, True),
    ),
    "conv2d": (
        Form("channels_last", conv_channels_last, _conv_channels_last_applies),
        Form("dense_kernel", conv_dense_kernel, _one_filter),
    ),
    "batch_normalization": (
        Form("native_batch_norm", batch_norm, _batch_norm_applies),
    ),
}
