import keras
import numpy as np
import pytest
from keras import ops

from keras_rbdn.layers import RandomGaussianNoise
from tests.testing import uint8_noise_reference


def noise_levels(layer, images):
    """Per-image standard deviation of the added noise, on the 0-255 scale."""
    noisy = ops.convert_to_numpy(layer(images, training=True))
    return (noisy - images).reshape(len(images), -1).std(axis=1) * 255


class RandomGaussianNoiseTest:
    def test_identity_at_inference(self):
        images = np.random.default_rng(0).random((2, 8, 8, 1), "float32")
        layer = RandomGaussianNoise(seed=1)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(layer(images)), images
        )
        np.testing.assert_array_equal(
            ops.convert_to_numpy(layer(images, training=False)), images
        )

    def test_fixed_level(self):
        images = np.full((4, 64, 64, 1), 0.5, "float32")
        levels = noise_levels(RandomGaussianNoise((25, 25), seed=2), images)
        # 4096 samples per image: the sample std is within 3% of sigma.
        np.testing.assert_allclose(levels, 25.0, rtol=0.03)

    def test_levels_are_per_image_and_uniform_in_range(self):
        images = np.zeros((200, 32, 32, 3), "float32")
        levels = noise_levels(RandomGaussianNoise((8, 50), seed=3), images)
        # 3072 samples per image give each level within ~4%.
        assert levels.min() > 8 * 0.95 and levels.max() < 50 * 1.05
        assert levels.std() > 5  # differs from image to image
        # Uniform on [8, 50]: mean 29 and std 12.1; 200 draws.
        assert abs(levels.mean() - 29.0) < 3.0
        assert abs(levels.std() - 42 / np.sqrt(12)) < 2.0

    def test_noise_is_white_and_zero_mean(self):
        images = np.zeros((1, 128, 128, 1), "float32")
        noisy = ops.convert_to_numpy(
            RandomGaussianNoise((30, 30), seed=4)(images, training=True)
        )[0, :, :, 0]
        assert abs(noisy.mean()) < 4 * (30 / 255) / 128
        neighbours = np.corrcoef(noisy[:, :-1].ravel(), noisy[:, 1:].ravel())
        assert abs(neighbours[0, 1]) < 0.03

    def test_seeded_layers_repeat(self):
        images = np.zeros((3, 8, 8, 1), "float32")
        first = RandomGaussianNoise(seed=5)(images, training=True)
        second = RandomGaussianNoise(seed=5)(images, training=True)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(first), ops.convert_to_numpy(second)
        )

    def test_trains_inside_a_model(self):
        inputs = keras.Input((None, None, 1))
        noisy = RandomGaussianNoise(seed=6)(inputs)
        outputs = keras.layers.Conv2D(1, 3, padding="same")(noisy)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="sgd", loss="mse")
        images = np.random.default_rng(7).random((4, 16, 16, 1), "float32")
        history = model.fit(images, images, epochs=2, batch_size=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        np.testing.assert_allclose(
            model.predict(images, verbose=0),
            ops.convert_to_numpy(model.layers[-1](images)),
            atol=1e-5,
        )

    def test_uint8_protocol_rounds_without_noise(self):
        images = np.random.default_rng(9).uniform(-0.2, 1.2, (2, 9, 9, 1))
        images = images.astype("float32")
        noisy = RandomGaussianNoise((0, 0), protocol="uint8", seed=9)(
            images, training=True
        )
        expected = np.rint(np.clip(images * 255, 0, 255)) / 255
        np.testing.assert_allclose(
            ops.convert_to_numpy(noisy), expected, atol=1e-7
        )

    @pytest.mark.parametrize("clean", [0.02, 0.5, 0.97])
    def test_uint8_protocol_matches_numpy_reference(self, clean):
        # Near black and white the clipped noise is biased: 0.02 + noise
        # of sigma 25 averages 0.050, not 0.02.
        images = np.full((8, 64, 64, 1), clean, "float32")
        noisy = ops.convert_to_numpy(
            RandomGaussianNoise((25, 25), protocol="uint8", seed=10)(
                images, training=True
            )
        )
        np.testing.assert_allclose(noisy * 255, np.rint(noisy * 255), atol=1e-4)
        mean, std = uint8_noise_reference(clean, 25)
        # 32768 samples: the mean within 4 standard errors.
        assert abs(noisy.mean() - mean) < 4 * std / np.sqrt(noisy.size)
        np.testing.assert_allclose(noisy.std(), std, rtol=0.03)

    def test_mixed_protocol_rounds_about_half_the_images(self):
        images = np.full((400, 8, 8, 1), 0.02, "float32")
        noisy = ops.convert_to_numpy(
            RandomGaussianNoise((25, 25), protocol="mixed", seed=11)(
                images, training=True
            )
        ).reshape(400, -1)
        rounded = np.all(np.abs(noisy * 255 - np.rint(noisy * 255)) < 1e-4, 1)
        # Binomial(400, 1/2): within 4 standard deviations (0.1).
        assert abs(rounded.mean() - 0.5) < 0.1
        assert noisy[rounded].min() >= 0 and noisy[~rounded].min() < 0

    def test_config_round_trip(self):
        layer = RandomGaussianNoise(
            sigma_range=(15, 25), protocol="mixed", seed=3, name="n"
        )
        config = layer.get_config()
        assert config["sigma_range"] == [15.0, 25.0] and config["seed"] == 3
        clone = RandomGaussianNoise.from_config(config)
        assert clone.sigma_range == (15.0, 25.0)
        assert clone.protocol == "mixed"

    def test_rejects_bad_protocol(self):
        with pytest.raises(ValueError, match="protocol='int8'"):
            RandomGaussianNoise(protocol="int8")

    @pytest.mark.parametrize("sigma_range", [(50, 8), (-1, 5), 25, "ab"])
    def test_rejects_bad_ranges(self, sigma_range):
        with pytest.raises(ValueError, match="sigma_range"):
            RandomGaussianNoise(sigma_range=sigma_range)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="Keras layers run inside tf.data maps on the TensorFlow backend",
)
def test_runs_in_tf_data_map():
    import tensorflow as tf

    layer = RandomGaussianNoise((25, 25), seed=8)
    dataset = tf.data.Dataset.from_tensor_slices(
        np.zeros((8, 32, 32, 1), "float32")
    )
    dataset = dataset.batch(4).map(lambda x: (layer(x, training=True), x))
    noisy, clean = next(iter(dataset))
    assert 22 < float(tf.math.reduce_std(noisy - clean)) * 255 < 28
