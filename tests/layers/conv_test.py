import keras
import numpy as np
import pytest

import keras_rbdn
from keras_rbdn.layers import Conv2D

TORCH = keras.backend.backend() == "torch"

CONFIGURATIONS = [
    {"filters": 8, "kernel_size": 3, "padding": "same"},
    # Even kernel: "same" pads one more after than before.
    {"filters": 8, "kernel_size": 4, "padding": "same"},
    {"filters": 8, "kernel_size": 3, "padding": "same", "strides": 2},
    {"filters": 8, "kernel_size": 3, "padding": "same", "dilation_rate": 2},
    {"filters": 8, "kernel_size": 3, "padding": "valid", "dilation_rate": 2},
    {"filters": 1, "kernel_size": 9, "padding": "same"},
    {"filters": 8, "kernel_size": 3, "padding": "same", "groups": 2},
    {"filters": 8, "kernel_size": 3, "use_bias": False, "activation": "relu"},
]


def layer_pair(config, shape):
    """Keras' Conv2D and this package's, built with the same weights."""
    keras_layer = keras.layers.Conv2D(**config)
    layer = Conv2D(**config)
    keras_layer.build(shape)
    layer.build(shape)
    rng = np.random.default_rng(0)
    weights = [
        rng.normal(size=w.shape).astype("float32") for w in layer.weights
    ]
    keras_layer.set_weights(weights)
    layer.set_weights(weights)
    return keras_layer, layer


@pytest.mark.skipif(not TORCH, reason="other backends run Keras' own code")
@pytest.mark.parametrize("config", CONFIGURATIONS, ids=str)
def test_equals_keras_conv_bit_for_bit_under_torch(config):
    import torch

    shape = (2, 17, 14, 6)
    keras_layer, layer = layer_pair(config, shape)
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    results = []
    for candidate in (keras_layer, layer):
        inputs = torch.tensor(x, requires_grad=True)
        outputs = candidate(inputs)
        (outputs * outputs).sum().backward()
        results.append(
            (outputs.detach(), inputs.grad, candidate.kernel.value.grad)
        )
    (expected, *expected_grads), (actual, *actual_grads) = results
    assert actual.shape == expected.shape
    assert torch.equal(actual, expected)
    for actual_grad, expected_grad in zip(
        actual_grads, expected_grads, strict=True
    ):
        assert torch.equal(actual_grad, expected_grad)


@pytest.mark.skipif(not TORCH, reason="PyTorch's memory formats")
def test_no_copy_of_the_input_under_torch():
    """Keras 3.15.1 copies each convolution's input twice under PyTorch;
    this layer hands PyTorch the channels-last input as it is."""
    import torch

    shape = (1, 32, 32, 16)
    # 8 filters, so that the output is not of the input's size: at this
    # size PyTorch's convolution fills its output with the bias first.
    layer = Conv2D(8, 3, padding="same")
    layer.build(shape)
    inputs = torch.rand(shape)

    def input_sized_copies(function):
        with torch.profiler.profile(record_shapes=True) as profile:
            function(inputs)
        return [
            event.name
            for event in profile.events()
            if event.name in ("aten::copy_", "aten::clone", "aten::contiguous")
            and any(
                sorted(map(int, dims)) == sorted(shape)
                for dims in event.input_shapes
                if dims
            )
        ]

    assert input_sized_copies(layer) == []
    # The check sees copies where they happen: one of the input's size.
    assert input_sized_copies(lambda x: x.permute(0, 3, 1, 2).contiguous())


def test_serializes_as_this_package_conv():
    layer = Conv2D(4, 3, padding="same", dilation_rate=2, name="conv")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is Conv2D
    assert restored.get_config() == layer.get_config()


def test_saved_model_file_keeps_the_layer_and_its_weights(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(
        inputs, Conv2D(4, 3, padding="same", name="conv")(inputs)
    )
    path = str(tmp_path / "conv.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("conv")) is Conv2D
    x = np.random.default_rng(2).random((1, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(
        loaded.predict_on_batch(x), model.predict_on_batch(x)
    )


@pytest.mark.slow  # torch.compile takes about a minute on 2 CPU cores.
@pytest.mark.skipif(not TORCH, reason="torch.compile")
def test_rbdn_trains_and_predicts_under_torch_compile():
    """`jit_compile=True` under PyTorch: inductor failed on this layer's
    view in RBDN, so compiled graphs use Keras' own code."""
    model = keras_rbdn.build(branches=1, filters=4, task="denoise")
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x = np.random.default_rng(3).random((2, 15, 9, 1)).astype("float32")
    # A compiled training step first: the case that failed.
    assert np.isfinite(model.train_on_batch(x, x))
    eager = keras_rbdn.build(branches=1, filters=4, task="denoise")
    eager.set_weights(model.get_weights())
    np.testing.assert_allclose(
        model.predict_on_batch(x), eager.predict_on_batch(x), atol=1e-5
    )
