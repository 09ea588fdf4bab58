import os

import keras
import numpy as np
import pytest
import skimage.color

import keras_rbdn
from keras_rbdn.layers import ab_bin_centers
from tests.layers.ab_bins_test import reference_annealed_mean

TINY = {"filters": 4, "trunk_depth": 1, "kernel_size": 3}


def tiny_network(task, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    network = keras_rbdn.build(branches=1, task=task, **TINY, **kwargs)
    # Non-trivial BatchNorm statistics would not change the checks; the
    # default weights already give outputs that depend on the input.
    return network


def images(shape, seed=1):
    return np.random.default_rng(seed).random(shape).astype("float32")


class ImageModelTest:
    @pytest.mark.parametrize("task", ["denoise", "relight"])
    @pytest.mark.parametrize("channels", [1, 3])
    def test_same_shape_tasks_clip_the_network_output(self, task, channels):
        network = tiny_network(task, channels=channels)
        model = keras_rbdn.image_model(network, task)
        x = images((2, 15, 22, channels))
        expected = np.clip(network.predict(x, verbose=0), 0, 1)
        np.testing.assert_allclose(
            model.predict(x, verbose=0), expected, atol=1e-5
        )

    def test_colorize_ycbcr_against_skimage(self):
        network = tiny_network("colorize_ycbcr")
        model = keras_rbdn.image_model(network, "colorize_ycbcr")
        rgb = images((2, 17, 9, 3), seed=2)
        luma = skimage.color.rgb2ycbcr(rgb.astype("float64"))[..., :1]
        chroma = network.predict((luma / 255).astype("float32"), verbose=0)
        ycbcr = np.concatenate([luma, 255 * chroma], axis=-1)
        expected = np.clip(skimage.color.ycbcr2rgb(ycbcr), 0, 1)
        np.testing.assert_allclose(
            model.predict(rgb, verbose=0), expected, atol=1e-4
        )

    def test_colorize_lab_against_skimage(self):
        network = tiny_network("colorize_lab")
        model = keras_rbdn.image_model(network, "colorize_lab")
        rgb = images((1, 12, 20, 3), seed=3)
        lightness = skimage.color.rgb2lab(rgb.astype("float64"))[..., :1]
        logits = network.predict((lightness / 100).astype("float32"), verbose=0)
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        ab = reference_annealed_mean(probabilities, ab_bin_centers(), 0.38)
        lab = np.concatenate([lightness, ab], axis=-1)
        expected = np.clip(skimage.color.lab2rgb(lab), 0, 1)
        np.testing.assert_allclose(
            model.predict(rgb, verbose=0), expected, atol=2e-3
        )

    def test_gray_image_keeps_its_lightness_when_colorized(self):
        model = keras_rbdn.image_model(
            tiny_network("colorize_lab"), "colorize_lab"
        )
        gray = np.repeat(images((1, 16, 16, 1), seed=4), 3, axis=-1)
        rgb = model.predict(gray, verbose=0)
        lightness = skimage.color.rgb2lab(gray[0].astype("float64"))[..., 0]
        in_gamut = np.all((rgb[0] > 0.001) & (rgb[0] < 0.999), axis=-1)
        ours = skimage.color.rgb2lab(rgb[0].astype("float64"))[..., 0]
        np.testing.assert_allclose(
            ours[in_gamut], lightness[in_gamut], atol=0.05
        )

    def test_rejects_a_network_for_another_task(self):
        with pytest.raises(ValueError, match="channels"):
            keras_rbdn.image_model(tiny_network("denoise"), "colorize_lab")

    @pytest.mark.parametrize("task", ["colorize_ycbcr", "colorize_lab"])
    def test_keras_save_and_load(self, task, tmp_path):
        model = keras_rbdn.image_model(tiny_network(task), task)
        path = os.path.join(tmp_path, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        x = images((1, 11, 14, 3), seed=5)
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
        )


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="SavedModel export needs the TensorFlow backend",
)
def test_exports_a_saved_model_of_any_size(tmp_path):
    import tensorflow as tf

    model = keras_rbdn.image_model(tiny_network("colorize_lab"), "colorize_lab")
    path = os.path.join(tmp_path, "saved")
    model.export(path, verbose=False)
    served = tf.saved_model.load(path)
    for shape in [(1, 16, 16, 3), (2, 9, 13, 3)]:
        x = images(shape, seed=6)
        np.testing.assert_allclose(
            served.serve(tf.constant(x)).numpy(),
            model.predict(x, verbose=0),
            atol=1e-5,
        )
