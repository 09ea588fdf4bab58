"""Color conversions against tensorflow-io (the reference) and scikit-image.

Tolerances (float32):

- RGB -> Lab: within 5e-4 (L, a, b units) of `tfio.experimental.color`
  (measured: 9.2e-5) and of scikit-image's `rgb2lab`.
- Lab -> RGB: within 5e-5 of tfio on [0, 1] (measured: 4.6e-6).
- RGB -> YCbCr: tfio takes and returns uint8 and truncates, and its R->Y
  coefficient is 65.783 where BT.601 has 65.738 (65.481 * 256 / 255), so
  255 * ours - tfio lies in [-0.05, 1.001] (measured: [-0.044, 1.0001]);
  ours matches scikit-image's float BT.601 `rgb2ycbcr` within 1e-3 levels
  (measured: 3e-5).
- YCbCr -> RGB: 255 * ours - tfio's truncated uint8 output lies in
  [-0.05, 1.05] (measured: [-0.0006, 1.00002]).
- Round trips RGB -> Lab -> RGB and RGB -> YCbCr -> RGB: within 5e-5
  (measured: 7.3e-6 and 2.4e-7).
"""

import keras
import numpy as np
import pytest
import skimage.color
import tensorflow as tf
from keras import ops
from tensorflow_io.python.experimental import color_ops as tfio_color

from keras_rbdn.layers import LabToRGB
from keras_rbdn.layers import RGBToLab
from keras_rbdn.layers import RGBToYCbCr
from keras_rbdn.layers import YCbCrToRGB
from keras_rbdn.layers.color import lab_to_rgb
from keras_rbdn.layers.color import opponent_planes_to_rgb
from keras_rbdn.layers.color import opponent_to_rgb
from keras_rbdn.layers.color import rgb_to_lab
from keras_rbdn.layers.color import rgb_to_opponent
from keras_rbdn.layers.color import rgb_to_opponent_planes
from keras_rbdn.layers.color import rgb_to_ycbcr
from keras_rbdn.layers.color import ycbcr_to_rgb
from tests.testing import gradient

pytestmark = pytest.mark.filterwarnings("ignore:.*(plugins|libtensorflow_io).*")

EDGE_COLORS = np.array(
    [
        [0, 0, 0],
        [1, 1, 1],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [0, 1, 1],
        [1, 0, 1],
        [0.5, 0.5, 0.5],
        [0.04045, 0.0031308, 0.04],  # around the sRGB curve's knee
        [1 / 255, 2 / 255, 254 / 255],
    ],
    "float32",
)


def colors(count=4000, seed=0):
    """Random RGB colors in [0, 1] plus the edge colors, as (1, n, 1, 3)."""
    rng = np.random.default_rng(seed)
    rgb = np.concatenate([EDGE_COLORS, rng.random((count, 3), "float32")])
    return rgb.reshape(1, -1, 1, 3)


def numpy(x):
    return ops.convert_to_numpy(x)


class RGBToLabTest:
    def test_matches_tfio(self):
        rgb = colors()
        expected = tfio_color.rgb_to_lab(tf.constant(rgb)).numpy()
        np.testing.assert_allclose(numpy(RGBToLab()(rgb)), expected, atol=5e-4)

    def test_matches_skimage(self):
        rgb = colors(seed=1)
        expected = skimage.color.rgb2lab(rgb[0].astype("float64"))[None]
        np.testing.assert_allclose(numpy(RGBToLab()(rgb)), expected, atol=5e-4)

    def test_white_black(self):
        lab = numpy(RGBToLab()(EDGE_COLORS[:2]))
        np.testing.assert_allclose(lab, [[0, 0, 0], [100, 0, 0]], atol=1e-2)

    def test_gradient_is_finite_at_edges(self):
        grad = gradient(lambda x: RGBToLab()(x), EDGE_COLORS)
        assert np.all(np.isfinite(grad))


class LabToRGBTest:
    def test_matches_tfio(self):
        lab = tfio_color.rgb_to_lab(tf.constant(colors(seed=2))).numpy()
        expected = tfio_color.lab_to_rgb(tf.constant(lab)).numpy()
        np.testing.assert_allclose(numpy(LabToRGB()(lab)), expected, atol=5e-5)

    def test_round_trip(self):
        rgb = colors(seed=3)
        back = numpy(LabToRGB()(RGBToLab()(rgb)))
        np.testing.assert_allclose(back, rgb, atol=5e-5)

    def test_gradient_is_finite(self):
        lab = np.array([[0, 0, 0], [100, 0, 0], [50, 80, -100]], "float32")
        assert np.all(np.isfinite(gradient(lambda x: LabToRGB()(x), lab)))


class RGBToYCbCrTest:
    def test_matches_tfio_uint8(self):
        rgb8 = np.round(colors(seed=4) * 255).astype("uint8")
        expected = tfio_color.rgb_to_ycbcr(tf.constant(rgb8)).numpy()
        ours = 255 * numpy(RGBToYCbCr()(rgb8.astype("float32") / 255))
        difference = ours - expected.astype("float32")
        assert difference.min() >= -0.05 and difference.max() <= 1.001

    def test_matches_skimage(self):
        rgb = colors(seed=5)
        expected = skimage.color.rgb2ycbcr(rgb[0].astype("float64"))[None]
        ours = 255 * numpy(RGBToYCbCr()(rgb))
        np.testing.assert_allclose(ours, expected, atol=1e-3)

    def test_range(self):
        ycbcr = 255 * numpy(RGBToYCbCr()(EDGE_COLORS[:5]))
        np.testing.assert_allclose(ycbcr[0], [16, 128, 128], atol=1e-4)
        np.testing.assert_allclose(ycbcr[1], [235, 128, 128], atol=1e-3)
        np.testing.assert_allclose(ycbcr[4, 1], 240, atol=1e-3)  # blue: Cb
        np.testing.assert_allclose(ycbcr[2, 2], 240, atol=1e-3)  # red: Cr


class YCbCrToRGBTest:
    def test_matches_tfio_uint8(self):
        rgb8 = np.round(colors(seed=6) * 255).astype("uint8")
        ycbcr8 = tfio_color.rgb_to_ycbcr(tf.constant(rgb8)).numpy()
        expected = tfio_color.ycbcr_to_rgb(tf.constant(ycbcr8)).numpy()
        ours = 255 * numpy(YCbCrToRGB()(ycbcr8.astype("float32") / 255))
        difference = np.clip(ours, 0, 255) - expected.astype("float32")
        assert difference.min() >= -0.05 and difference.max() <= 1.05

    def test_round_trip(self):
        rgb = colors(seed=7)
        back = numpy(YCbCrToRGB()(RGBToYCbCr()(rgb)))
        np.testing.assert_allclose(back, rgb, atol=5e-5)


@pytest.mark.parametrize(
    "function", [rgb_to_lab, lab_to_rgb, rgb_to_ycbcr, ycbcr_to_rgb]
)
def test_numpy_and_tf_numpy_namespaces_agree(function):
    x = colors(count=500, seed=8)
    if function is lab_to_rgb:
        x = rgb_to_lab(x.astype("float64"), xp=np).astype("float32")
    expected = numpy(function(x))
    np.testing.assert_allclose(
        function(x, xp=np), expected, rtol=1e-5, atol=2e-4
    )
    tf_numpy = function(tf.constant(x), xp=tf.experimental.numpy)
    np.testing.assert_allclose(
        np.asarray(tf_numpy), expected, rtol=1e-5, atol=2e-4
    )


@pytest.mark.parametrize("layer", [RGBToLab, LabToRGB, RGBToYCbCr, YCbCrToRGB])
def test_layer_serialization_and_symbolic_shape(layer):
    instance = layer(name="convert")
    clone = layer.from_config(instance.get_config())
    assert clone.name == "convert"
    assert clone(keras.Input((None, None, 3))).shape == (None, None, None, 3)
    with pytest.raises(ValueError):
        layer()(np.zeros((1, 4, 4, 2), "float32"))


class OpponentTest:
    """The orthonormal opponent space against its defining formulas."""

    def reference(self, rgb):
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        return np.stack(
            [
                (r + g + b) / np.sqrt(3.0),
                (r - b) / np.sqrt(2.0),
                (r - 2 * g + b) / np.sqrt(6.0),
            ],
            axis=-1,
        )

    def test_matches_the_formulas(self):
        rgb = colors()
        opponent = ops.convert_to_numpy(rgb_to_opponent(rgb))
        np.testing.assert_allclose(opponent, self.reference(rgb), atol=1e-6)

    def test_round_trip(self):
        rgb = colors()
        back = ops.convert_to_numpy(opponent_to_rgb(rgb_to_opponent(rgb)))
        np.testing.assert_allclose(back, rgb, atol=1e-6)
        planes = rgb_to_opponent_planes(rgb)
        back = ops.convert_to_numpy(opponent_planes_to_rgb(planes))
        np.testing.assert_allclose(back, rgb, atol=1e-6)

    def test_white_noise_keeps_its_sigma_and_stays_white(self):
        # Noise of sigma 0.1 on R, G, B: the opponent planes' covariance is
        # sigma^2 times the identity (an orthonormal rotation); with 10^6
        # samples its entries are within 1% of sigma^2.
        sigma = 0.1
        rng = np.random.default_rng(0)
        noise = rng.normal(0, sigma, (1_000_000, 3)).astype("float32")
        opponent = ops.convert_to_numpy(rgb_to_opponent(noise))
        covariance = np.cov(opponent, rowvar=False)
        np.testing.assert_allclose(
            covariance, sigma**2 * np.eye(3), atol=0.01 * sigma**2
        )
        # The planes for a gray model: the first is the mean of R, G, B
        # (sigma / sqrt(3)), the others keep sigma.
        planes = ops.convert_to_numpy(rgb_to_opponent_planes(noise))
        np.testing.assert_allclose(
            np.std(planes, axis=0),
            [sigma / np.sqrt(3.0), sigma, sigma],
            rtol=0.01,
        )

    def test_planes_fit_about_zero_one(self):
        # The RGB cube's corners: the first plane is the mean of R, G, B,
        # the others are shifted by one half.
        rgb = EDGE_COLORS[:8]
        planes = ops.convert_to_numpy(rgb_to_opponent_planes(rgb))
        np.testing.assert_allclose(planes[:, 0], rgb.mean(-1), atol=1e-6)
        np.testing.assert_allclose(
            planes[:, 1:], self.reference(rgb)[:, 1:] + 0.5, atol=1e-6
        )
        assert planes.min() >= 0.5 - 2 / np.sqrt(6.0) - 1e-6
        assert planes.max() <= 0.5 + 2 / np.sqrt(6.0) + 1e-6

    def test_numpy_namespace_agrees(self):
        rgb = colors()
        np.testing.assert_allclose(
            rgb_to_opponent_planes(rgb, xp=np),
            ops.convert_to_numpy(rgb_to_opponent_planes(rgb)),
            atol=1e-6,
        )
