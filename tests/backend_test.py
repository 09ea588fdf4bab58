"""Every form registered in `keras_rbdn.backend` against its reference.

One case per operation: arguments, and how close the form must be.
Pooling and unpooling select values, with no arithmetic: outputs and
gradients must be equal bit for bit (ties in most windows included). The
convolution forms sum the same products in another order (PyTorch's
channels-last convolution is the same kernel as Keras' and must be
equal); batch normalization differs by float32 rounding of the variance.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_rbdn import backend
from keras_rbdn.layers import BatchNormalization
from keras_rbdn.layers import Conv2D
from keras_rbdn.layers import pooling
from tests.testing import gradient

OPERATIONS = (
    "max_pool",
    "max_pool_with_mask",
    "max_unpool",
    "max_unpool_at_map",
    "conv2d",
    "batch_normalization",
    "narrow_conv2d",
)
EXACT = {"rtol": 0, "atol": 0}


def _ties(shape, seed):
    """Values from {0, 1, 2}: most 2x2 windows hold ties."""
    return np.random.default_rng(seed).integers(0, 3, shape).astype("float32")


def _normal(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _mask(x):
    return ops.convert_to_numpy(pooling.max_pool_with_mask.reference(x)[1])


def _case(name, training):
    """`(arguments, differentiated argument index, tolerance)`; the
    gradient is of the sum of the output times fixed weights."""
    x = _ties((2, 7, 5, 3), seed=1)
    values = _normal((2, 4, 3, 3), seed=2)
    if name in ("max_pool", "max_pool_with_mask"):
        return (x,), {"training": training}, 0, EXACT
    if name == "max_unpool":
        return (values, _mask(x)), {"training": training}, 0, EXACT
    if name == "max_unpool_at_map":
        return (values, x), {"training": training}, 0, EXACT
    if name == "conv2d":
        layer = Conv2D(4, 3, padding="same", activation="relu")
        layer.build((None, None, None, 3))
        return (layer, _normal((2, 9, 8, 3), 3)), {}, 1, EXACT
    if name == "batch_normalization":
        layer = BatchNormalization()
        layer.build((None, None, None, 3))
        args = (layer, _normal((2, 9, 8, 3), 4) * 3 + 1, training, None)
        return args, {}, 1, {"rtol": 1e-5, "atol": 1e-5}
    if name == "narrow_conv2d":
        kernel, bias = _normal((9, 9, 5, 1), 5), _normal((1,), 6)
        args = (_normal((2, 13, 11, 5), 7), kernel, bias)
        return args, {}, 0, {"rtol": 1e-4, "atol": 1e-4}
    raise ValueError(name)


def _registered():
    return [
        pytest.param(name, form, id=f"{name}-{form.name}")
        for name in OPERATIONS
        for form in backend.forms(name)
    ]


def _reference(name):
    if name == "narrow_conv2d":
        return lambda x, kernel, bias: (
            ops.conv(x, kernel, padding="same") + bias
        )
    return backend.reference(name)


def _outputs_and_gradient(function, args, kwargs, index):
    outputs = function(*args, **kwargs)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    weights = _normal(tuple(outputs[0].shape), seed=8)

    def weighted(value):
        changed = list(args)
        changed[index] = value
        first = function(*changed, **kwargs)
        first = first[0] if isinstance(first, list | tuple) else first
        return ops.multiply(ops.cast(first, "float32"), weights)

    grad = gradient(weighted, args[index])
    return [ops.convert_to_numpy(t) for t in outputs] + [grad]


def test_every_backend_module_imports():
    for name in OPERATIONS:
        backend.forms(name)  # imports this backend's module, if any
    assert set(backend._registered(keras.backend.backend())) <= set(OPERATIONS)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name, form", _registered())
def test_form_computes_the_reference(name, form, training):
    args, kwargs, index, tolerance = _case(name, training)
    if form.device_specific and not form.applies(*args, **kwargs):
        pytest.skip(f"{form.name} does not run here")
    expected = _outputs_and_gradient(_reference(name), args, kwargs, index)
    actual = _outputs_and_gradient(form.function, args, kwargs, index)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == want.dtype
        if tolerance is EXACT:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, **tolerance)
