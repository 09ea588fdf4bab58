"""PyTorch's own max-pool kernels as the pooling and unpooling (CPU, eager).

PyTorch's CPU max pool scans each 2x2 window in row-major order and keeps
the first strict maximum, Caffe's tie rule, and returns where it found it
as flat indices; `max_unpool2d` writes values back at those indices. On
channels-last maps both are single native passes, where the portable
formulation (`pooling._pool_tournament`, a nearest upsampling and a
select) makes several full-size copies (`docs/performance.md`, "Pooling
and unpooling with switches").
"""

import keras

from keras_rbdn.layers.conv import eager_torch

_WINDOW = 2


def applies_to(x):
    """Whether these kernels serve `x`: PyTorch, outside `torch.compile`,
    and a CPU tensor (for a symbolic `x`, Keras' current device)."""
    if not eager_torch():
        return False
    device = getattr(x, "device", None)
    if not hasattr(device, "type"):  # a KerasTensor, or no tensor
        device = keras.ops.zeros(()).device
    return device.type == "cpu"


def _channels_first(x):
    """The `(b, c, h, w)` view of a channels-last tensor: no copy."""
    return keras.ops.convert_to_tensor(x).permute(0, 3, 1, 2)


def _max_pool(x, return_indices=False):
    import torch

    return torch.nn.functional.max_pool2d(
        _channels_first(x),
        _WINDOW,
        _WINDOW,
        ceil_mode=True,  # Caffe's ceil mode for odd sizes
        return_indices=return_indices,
    )


def max_pool(x):
    """The 2x2 / stride-2 max pool of channels-last `x`, in ceil mode. Its
    gradient goes to each window's first maximum."""
    return _max_pool(x).permute(0, 2, 3, 1)


def unpool(values, switches):
    """Each value at its window's first maximum in `switches` (a map of
    the pooled input's size), zeros elsewhere. The gradient reads the
    output gradient at those positions."""
    import torch

    indices = _max_pool(switches, return_indices=True)[1]
    unpooled = torch.nn.functional.max_unpool2d(
        _channels_first(values),
        indices,
        _WINDOW,
        _WINDOW,
        output_size=tuple(switches.shape[1:3]),
    )
    return unpooled.permute(0, 2, 3, 1)
