import keras
import numpy as np
import pytest
import skimage.color
import tensorflow as tf

import keras_rbdn
from keras_rbdn.layers.ab_bins import NUM_AB_BINS

TINY = {"filters": 4, "trunk_depth": 1, "kernel_size": 3}
NETWORK_CHANNELS = {
    "denoise": (1, 1),
    "relight": (1, 1),
    "colorize_ycbcr": (1, 2),
    "colorize_lab": (1, NUM_AB_BINS),
}


def clean_images(spec, count=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, size, size, spec.image_channels)).astype(
        "float32"
    )


class TaskTableTest:
    # The task table.
    @pytest.mark.backend_independent
    def test_four_tasks(self):
        assert sorted(keras_rbdn.TASKS) == sorted(NETWORK_CHANNELS)

    @pytest.mark.parametrize("task", sorted(NETWORK_CHANNELS))
    def test_build_default_channels(self, task):
        model = keras_rbdn.build(branches=1, task=task, **TINY)
        assert (model.input_shape[-1], model.output_shape[-1]) == (
            NETWORK_CHANNELS[task]
        )

    @pytest.mark.slow
    def test_paper_lab_network(self):
        model = keras_rbdn.build(branches=3, task="colorize_lab")
        assert model.output_shape == (None, None, None, NUM_AB_BINS)

    def test_channels_only_for_same_shape_tasks(self):
        assert keras_rbdn.build(1, task="denoise", channels=3, **TINY)
        with pytest.raises(ValueError, match="same-shape"):
            keras_rbdn.build(1, task="colorize_lab", channels=3, **TINY)

    @pytest.mark.backend_independent
    def test_unknown_task(self):
        with pytest.raises(ValueError, match="colorise"):
            keras_rbdn.get_task("colorise")


class MakePairTest:
    # NumPy (the default namespace); the others: `test_namespaces_agree`.
    @pytest.mark.backend_independent
    def test_denoise_adds_the_noise(self):
        spec = keras_rbdn.TASKS["denoise"]
        clean = clean_images(spec)
        noise = np.full_like(clean, 0.1)
        noisy, target = spec.make_pair(clean, noise=noise)
        np.testing.assert_allclose(noisy, clean + 0.1, rtol=1e-6)
        np.testing.assert_array_equal(target, clean)

    @pytest.mark.backend_independent
    def test_relight_pairs_source_and_target(self):
        spec = keras_rbdn.TASKS["relight"]
        source, target = clean_images(spec, seed=1), clean_images(spec, seed=2)
        network_input, network_target = spec.make_pair(target, source=source)
        np.testing.assert_array_equal(network_input, source)
        np.testing.assert_array_equal(network_target, target)

    @pytest.mark.backend_independent
    def test_colorize_ycbcr_matches_skimage(self):
        spec = keras_rbdn.TASKS["colorize_ycbcr"]
        rgb = clean_images(spec, seed=3)
        luma, chroma = spec.make_pair(rgb)
        expected = skimage.color.rgb2ycbcr(rgb.astype("float64")) / 255
        np.testing.assert_allclose(luma, expected[..., :1], atol=1e-5)
        np.testing.assert_allclose(chroma, expected[..., 1:], atol=1e-5)

    @pytest.mark.backend_independent
    def test_colorize_lab_matches_skimage(self):
        spec = keras_rbdn.TASKS["colorize_lab"]
        rgb = clean_images(spec, seed=4)
        lightness, ab = spec.make_pair(rgb)
        expected = skimage.color.rgb2lab(rgb.astype("float64"))
        np.testing.assert_allclose(
            lightness, expected[..., :1] / 100, atol=2e-5
        )
        np.testing.assert_allclose(ab, expected[..., 1:], atol=2e-3)

    @pytest.mark.parametrize("task", sorted(NETWORK_CHANNELS))
    def test_namespaces_agree(self, task):
        spec = keras_rbdn.TASKS[task]
        clean = clean_images(spec, seed=5)
        expected = spec.make_pair(clean)
        tf_numpy = spec.make_pair(tf.constant(clean), xp=tf.experimental.numpy)
        ops_pair = spec.make_pair(clean, xp=keras.ops)
        for pair in (tf_numpy, ops_pair):
            for ours, reference in zip(pair, expected, strict=True):
                # float32: Lab's a, b (up to ~100) agree to ~1e-4.
                np.testing.assert_allclose(
                    keras.ops.convert_to_numpy(ours), reference, atol=5e-4
                )


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(NETWORK_CHANNELS))
def test_trains_a_few_steps_and_predicts(task):
    spec = keras_rbdn.TASKS[task]
    network = keras_rbdn.build(branches=1, task=task, **TINY)
    network.compile(optimizer="adam", loss=spec.loss)
    clean = clean_images(spec, seed=6)
    noise = None
    if spec.noise_sigma_range:
        noise = 0.1 * np.random.default_rng(7).normal(size=clean.shape)
        noise = noise.astype("float32")
    inputs, targets = spec.make_pair(clean, noise=noise)
    history = network.fit(inputs, targets, epochs=1, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    model = keras_rbdn.image_model(network, task)
    images = clean_images(spec, count=1, size=13, seed=8)
    output = model.predict(images, verbose=0)
    assert output.shape == images.shape
    assert output.min() >= 0.0 and output.max() <= 1.0
