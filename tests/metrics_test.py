import keras
import numpy as np
import pytest
import skimage.metrics
import tensorflow as tf
from keras import ops

from keras_rbdn.metrics import PSNR
from keras_rbdn.metrics import SSIM
from keras_rbdn.metrics import psnr
from keras_rbdn.metrics import ssim


def image_pairs(shape, seed=0, sigma=0.1):
    rng = np.random.default_rng(seed)
    clean = rng.random(shape).astype("float32")
    # Smooth the images a little so that SSIM sees structure.
    clean = (clean + np.roll(clean, 1, axis=1) + np.roll(clean, 1, axis=2)) / 3
    noisy = np.clip(clean + rng.normal(0, sigma, shape), 0, 1).astype("float32")
    return clean, noisy


@pytest.mark.parametrize("shape", [(3, 32, 24, 1), (2, 19, 40, 3)])
class PSNRSSIMTest:
    def test_psnr_matches_tf_image_and_skimage(self, shape):
        clean, noisy = image_pairs(shape)
        ours = ops.convert_to_numpy(psnr(clean, noisy))
        expected = tf.image.psnr(clean, noisy, max_val=1.0).numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-5)
        for index in range(shape[0]):
            reference = skimage.metrics.peak_signal_noise_ratio(
                clean[index], noisy[index], data_range=1.0
            )
            np.testing.assert_allclose(ours[index], reference, rtol=1e-4)

    def test_ssim_matches_tf_image_and_skimage(self, shape):
        clean, noisy = image_pairs(shape, seed=1)
        ours = ops.convert_to_numpy(ssim(clean, noisy))
        expected = tf.image.ssim(clean, noisy, max_val=1.0).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-4)
        for index in range(shape[0]):
            reference = skimage.metrics.structural_similarity(
                clean[index].astype("float64"),
                noisy[index].astype("float64"),
                data_range=1.0,
                channel_axis=-1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            np.testing.assert_allclose(ours[index], reference, atol=1e-4)

    def test_metrics_average_over_images(self, shape):
        clean, noisy = image_pairs(shape, seed=2)
        for metric, function in (
            (PSNR(), tf.image.psnr),
            (SSIM(), tf.image.ssim),
        ):
            metric.update_state(clean[:1], noisy[:1])
            metric.update_state(clean[1:], noisy[1:])
            expected = function(clean, noisy, max_val=1.0).numpy().mean()
            np.testing.assert_allclose(
                float(metric.result()), expected, rtol=1e-4
            )


def test_identical_images():
    clean, _ = image_pairs((1, 16, 16, 1))
    np.testing.assert_allclose(float(ssim(clean, clean)[0]), 1.0, atol=1e-5)
    assert not np.isfinite(float(psnr(clean, clean)[0]))  # zero error


def test_max_val_255():
    clean, noisy = image_pairs((2, 16, 16, 3), seed=3)
    np.testing.assert_allclose(
        ops.convert_to_numpy(psnr(clean * 255, noisy * 255, max_val=255.0)),
        ops.convert_to_numpy(psnr(clean, noisy)),
        rtol=1e-5,
    )


def test_metrics_in_compile_and_serialization():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(
        inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs)
    )
    model.compile(optimizer="sgd", loss="mse", metrics=[PSNR(), SSIM()])
    clean, noisy = image_pairs((4, 16, 16, 1), seed=4)
    logs = model.evaluate(noisy, clean, verbose=0, return_dict=True)
    assert np.isfinite(logs["psnr"]) and np.isfinite(logs["ssim"])
    clone = keras.metrics.deserialize(
        keras.metrics.serialize(PSNR(max_val=255.0))
    )
    assert isinstance(clone, PSNR) and clone.max_val == 255.0
