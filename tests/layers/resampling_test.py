import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_rbdn.layers import BilinearUpsampling2D


class BilinearUpsampling2DTest:
    @pytest.mark.parametrize(
        "rows, cols, height, width", [(4, 3, 8, 6), (4, 3, 7, 5), (1, 1, 1, 2)]
    )
    def test_matches_tf_image_resize(self, rows, cols, height, width):
        x = np.random.default_rng(0).normal(size=(2, rows, cols, 3))
        x = x.astype("float32")
        reference = np.zeros((2, height, width, 1), "float32")
        out = BilinearUpsampling2D()([x, reference])
        expected = tf.image.resize(x, (2 * rows, 2 * cols), method="bilinear")
        expected = expected.numpy()[:, :height, :width, :]
        np.testing.assert_allclose(
            ops.convert_to_numpy(out), expected, atol=1e-5
        )

    def test_symbolic_shape(self):
        x = keras.Input((None, None, 5))
        reference = keras.Input((None, 9, 1))
        out = BilinearUpsampling2D()([x, reference])
        assert out.shape == (None, None, 9, 5)
