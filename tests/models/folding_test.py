import keras
import numpy as np
import pytest
from keras import ops

import keras_rbdn
from keras_rbdn import RBDN
from keras_rbdn import fold_batch_norm
from keras_rbdn.models.folding import copy_folded_weights


def randomize_batch_norms(model, seed=0):
    """Gives every batch normalization statistics far from the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(-2.0, 2.0, channels))
            layer.beta.assign(rng.normal(0.0, 0.5, channels))
            layer.moving_mean.assign(rng.normal(0.0, 0.5, channels))
            layer.moving_variance.assign(rng.uniform(0.1, 3.0, channels))


def assert_same_inference(model, folded, x):
    """`folded(x)` equals `model(x, training=False)` to float rounding."""
    expected = ops.convert_to_numpy(model(x, training=False))
    assert np.std(expected) > 0.01  # Not a constant output.
    np.testing.assert_allclose(
        ops.convert_to_numpy(folded(x)), expected, rtol=1e-4, atol=1e-4
    )


def small_network(**overrides):
    arguments = dict(branches=2, filters=6, trunk_depth=2, kernel_size=5)
    network = RBDN(**{**arguments, **overrides})
    randomize_batch_norms(network)
    return network


class FoldBatchNormTest:
    def test_convolution_matches_keras_batch_normalization(self):
        # One convolution + batch normalization pair against Keras' own
        # inference-mode BatchNormalization layer.
        network = small_network()
        folded = fold_batch_norm(network)
        x = np.random.default_rng(1).normal(size=(2, 9, 11, 6))
        x = x.astype("float32")
        convolution = network.get_layer("conv2_2")
        expected = network.get_layer("conv2_2_bn")(
            convolution(x), training=False
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(folded.get_layer("conv2_2")(x)),
            ops.convert_to_numpy(expected),
            rtol=1e-5,
            atol=1e-5,
        )

    @pytest.mark.parametrize(
        "overrides",
        [{}, dict(input_channels=3, global_residual=True), dict(merge="none")],
    )
    def test_same_function_as_inference_mode(self, overrides):
        network = small_network(**overrides)
        folded = fold_batch_norm(network)
        channels = network.input_channels
        x = np.random.default_rng(2).normal(size=(2, 20, 17, channels))
        assert_same_inference(network, folded, x)

    def test_no_normalization_left_and_parameters_removed(self):
        network = RBDN()
        folded = fold_batch_norm(network)
        assert folded.batch_norm is False
        assert not [
            layer
            for layer in folded.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        # 19 normalized convolutions of 64 channels, 4 numbers each.
        assert folded.count_params() == 790593 - 19 * 4 * 64
        assert network.batch_norm is True  # The original is untouched.

    def test_bilinear_ablation(self):
        network = small_network(upsampling="bilinear")
        folded = fold_batch_norm(network)
        x = np.random.default_rng(3).normal(size=(1, 16, 16, 1))
        assert_same_inference(network, folded, x)

    def test_image_model(self):
        network = small_network(input_channels=1, branches=1)
        model = keras_rbdn.image_model(network, "denoise")
        folded = fold_batch_norm(model)
        inner = [layer for layer in folded.layers if isinstance(layer, RBDN)]
        assert len(inner) == 1 and inner[0].batch_norm is False
        assert model.get_layer(network.name) is network
        x = np.random.default_rng(4).uniform(size=(2, 13, 10, 1))
        assert_same_inference(model, folded, x)

    def test_folded_network_is_returned_as_is(self):
        folded = fold_batch_norm(small_network())
        assert fold_batch_norm(folded) is folded

    def test_config_round_trip(self):
        folded = fold_batch_norm(small_network())
        config = folded.get_config()
        assert config["batch_norm"] is False
        assert RBDN.from_config(config).get_config() == config

    def test_rejects_what_it_cannot_fold(self):
        with pytest.raises(ValueError, match="must be an RBDN"):
            fold_batch_norm("denoise")
        inputs = keras.Input((None, None, 1))
        plain = keras.Model(inputs, keras.layers.Conv2D(1, 3)(inputs))
        with pytest.raises(ValueError, match="No RBDN found"):
            fold_batch_norm(plain)
        with pytest.raises(ValueError, match="batch_norm='yes'"):
            RBDN(batch_norm="yes")

    def test_only_channel_normalization_folds(self):
        inputs = keras.Input((8, 8, 2))
        x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
        source = keras.Model(
            inputs, keras.layers.BatchNormalization(1, name="conv_bn")(x)
        )
        target = keras.Model(
            inputs, keras.layers.Conv2D(3, 3, name="conv")(inputs)
        )
        with pytest.raises(ValueError, match="normalizes axis 1"):
            copy_folded_weights(source, target)
