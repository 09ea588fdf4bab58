import keras
import numpy as np
import pytest

from keras_rbdn.layers import BatchNormalization
from tests.testing import gradient

TORCH = keras.backend.backend() == "torch"
EPSILON = 1e-3
MOMENTUM = 0.9


def statistics(channels, seed=0):
    """Gamma, beta, moving mean and moving variance for `channels`."""
    rng = np.random.default_rng(seed)
    return [
        rng.uniform(0.5, 1.5, channels).astype("float32"),
        rng.normal(size=channels).astype("float32"),
        rng.normal(size=channels).astype("float32"),
        rng.uniform(0.5, 1.5, channels).astype("float32"),
    ]


def built(layer, shape, axis=-1):
    layer.build(shape)
    layer.set_weights(statistics(shape[axis]))
    return layer


def numpy_batch_norm(x, axis, gamma, beta, mean, variance):
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - mean.reshape(shape)) / np.sqrt(
        variance.reshape(shape) + EPSILON
    ) * gamma.reshape(shape) + beta.reshape(shape)


def inputs(shape, seed=1):
    rng = np.random.default_rng(seed)
    return (3 * rng.normal(size=shape) + 1).astype("float32")


@pytest.mark.parametrize("axis", [-1, 1])
def test_training_normalizes_with_batch_moments_and_updates_moving_ones(axis):
    shape = (2, 7, 5, 6)
    layer = built(BatchNormalization(axis=axis, momentum=MOMENTUM), shape, axis)
    gamma, beta, moving_mean, moving_variance = statistics(shape[axis])
    x = inputs(shape)
    reduce = tuple(i for i in range(4) if i != axis % 4)
    mean, variance = x.mean(axis=reduce), x.var(axis=reduce)

    outputs = keras.ops.convert_to_numpy(layer(x, training=True))

    np.testing.assert_allclose(
        outputs,
        numpy_batch_norm(x, axis, gamma, beta, mean, variance),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        layer.moving_mean.numpy(),
        MOMENTUM * moving_mean + (1 - MOMENTUM) * mean,
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(),
        MOMENTUM * moving_variance + (1 - MOMENTUM) * variance,
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "training, trainable",
    [(None, True), (False, True), (True, False)],
    ids=["inference", "training False", "frozen layer in training"],
)
def test_moving_statistics_normalize_and_stay(training, trainable):
    shape = (2, 7, 5, 6)
    layer = built(BatchNormalization(), shape)
    layer.trainable = trainable
    weights = statistics(6)
    x = inputs(shape)

    outputs = keras.ops.convert_to_numpy(layer(x, training=training))

    np.testing.assert_allclose(
        outputs, numpy_batch_norm(x, -1, *weights), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(layer.moving_mean.numpy(), weights[2])
    np.testing.assert_array_equal(layer.moving_variance.numpy(), weights[3])


@pytest.mark.parametrize("training", [True, False])
def test_input_gradient_equals_keras(training):
    shape = (3, 6, 5, 4)
    layer = built(BatchNormalization(), shape)
    keras_layer = built(keras.layers.BatchNormalization(), shape)
    # Weighted, so that the gradient through the batch moments is not zero.
    weights = keras.ops.convert_to_tensor(
        np.random.default_rng(2).normal(size=shape).astype("float32")
    )
    x = inputs(shape)

    actual = gradient(lambda v: layer(v, training=training) * weights, x)
    expected = gradient(
        lambda v: keras_layer(v, training=training) * weights, x
    )

    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_half_precision_computes_in_float32_as_keras(policy):
    shape = (2, 7, 5, 6)
    layer = built(BatchNormalization(dtype=policy), shape)
    keras_layer = built(keras.layers.BatchNormalization(dtype=policy), shape)
    x = keras.ops.cast(inputs(shape), policy.split("_")[1])

    for training in (True, False):
        actual = layer(x, training=training)
        expected = keras_layer(x, training=training)
        assert keras.backend.standardize_dtype(actual.dtype) == (
            keras.backend.standardize_dtype(expected.dtype)
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(keras.ops.cast(actual, "float32")),
            keras.ops.convert_to_numpy(keras.ops.cast(expected, "float32")),
            rtol=1e-2,
            atol=1e-2,
        )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(),
        keras_layer.moving_variance.numpy(),
        rtol=1e-6,
    )


def test_one_value_per_channel_in_training_is_normalized_to_beta():
    """PyTorch's kernel rejects such batches; Keras normalizes them."""
    shape = (1, 1, 1, 3)
    layer = built(BatchNormalization(), shape)
    beta = statistics(3)[1]

    outputs = layer(inputs(shape), training=True)

    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs).reshape(-1), beta, atol=1e-5
    )


def test_masked_inputs_as_keras():
    shape = (2, 7, 5, 6)
    layer = built(BatchNormalization(), shape)
    keras_layer = built(keras.layers.BatchNormalization(), shape)
    x = inputs(shape)
    mask = np.random.default_rng(3).random(shape[:-1]) > 0.3

    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x, training=True, mask=mask)),
        keras.ops.convert_to_numpy(keras_layer(x, training=True, mask=mask)),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.skipif(not TORCH, reason="PyTorch's batch normalization kernel")
def test_weight_gradients_equal_keras_under_torch():
    import torch

    shape = (3, 6, 5, 4)
    x = inputs(shape)
    weights = torch.tensor(
        np.random.default_rng(2).normal(size=shape).astype("float32")
    )
    grads = []
    for layer in (
        built(BatchNormalization(), shape),
        built(keras.layers.BatchNormalization(), shape),
    ):
        (layer(torch.tensor(x), training=True) * weights).sum().backward()
        grads.append([w.value.grad.numpy() for w in layer.trainable_weights])
    for actual, expected in zip(*grads, strict=True):
        assert np.abs(expected).max() > 0.1
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not TORCH, reason="PyTorch's batch normalization kernel")
@pytest.mark.parametrize("training", [True, False])
def test_torch_runs_one_native_kernel(training):
    import torch

    shape = (2, 16, 16, 8)
    layer = built(BatchNormalization(), shape)
    keras_layer = built(keras.layers.BatchNormalization(), shape)
    x = torch.tensor(inputs(shape))

    def operators(candidate):
        with torch.profiler.profile() as profile:
            candidate(x, training=training)
        return {event.name for event in profile.events()}

    assert "aten::native_batch_norm" in operators(layer)
    assert "aten::mean" not in operators(layer)
    # The check tells the two apart: Keras' own code has neither.
    assert "aten::native_batch_norm" not in operators(keras_layer)


def test_serializes_as_this_package_layer():
    layer = BatchNormalization(momentum=0.8, epsilon=1e-4, name="bn")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is BatchNormalization
    assert restored.get_config() == layer.get_config()
