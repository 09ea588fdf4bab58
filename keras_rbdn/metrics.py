"""Image quality metrics, PSNR and SSIM, on every Keras backend.

Both follow `tf.image.psnr` and `tf.image.ssim` (Gaussian window of size
11 and sigma 1.5, k1 = 0.01, k2 = 0.03, valid convolution, averaged over
pixels and then channels); the tests compare them with those and with
scikit-image.
"""

import keras
import numpy as np
from keras import ops


def psnr(y_true, y_pred, max_val=1.0):
    """Peak signal-to-noise ratio of each image, in dB.

    Args:
        y_true: tensor `(batch, height, width, channels)`.
        y_pred: tensor of the same shape.
        max_val: float. The dynamic range (1 for images in [0, 1]).
            Defaults to `1.0`.

    Returns:
        A tensor `(batch,)`: `10 log10(max_val^2 / MSE)` per image.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
    return 20.0 * np.log10(max_val) - 10.0 * ops.log10(mse)


def _gaussian_window(size, sigma):
    coordinates = np.arange(size, dtype="float64") - (size - 1) / 2.0
    window = np.exp(-(coordinates**2) / (2.0 * sigma**2))
    return (window / window.sum()).astype("float32")


def ssim(
    y_true,
    y_pred,
    max_val=1.0,
    filter_size=11,
    filter_sigma=1.5,
    k1=0.01,
    k2=0.03,
):
    """Structural similarity of each image (Wang et al. 2004).

    Same definition as `tf.image.ssim`: local statistics under a Gaussian
    window (`filter_size`, `filter_sigma`), "valid" positions only, the
    SSIM map averaged over the pixels and then the channels. Images must
    be at least `filter_size` pixels high and wide.

    Args:
        y_true: tensor `(batch, height, width, channels)`.
        y_pred: tensor of the same shape.
        max_val: float. The dynamic range. Defaults to `1.0`.
        filter_size: int. Gaussian window size. Defaults to `11`.
        filter_sigma: float. Gaussian window sigma. Defaults to `1.5`.
        k1: float. Defaults to `0.01`.
        k2: float. Defaults to `0.03`.

    Returns:
        A tensor `(batch,)` of SSIM values in [-1, 1].
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    shape = ops.shape(y_true)
    height, width = shape[1], shape[2]

    # Channels go into the batch, so one single-channel filter serves all.
    def planes(x):
        x = ops.transpose(x, (0, 3, 1, 2))
        return ops.reshape(x, (-1, height, width, 1))

    window = _gaussian_window(filter_size, filter_sigma)
    rows = window.reshape(filter_size, 1, 1, 1)
    columns = window.reshape(1, filter_size, 1, 1)

    def blur(x):
        x = ops.conv(x, rows, padding="valid")
        return ops.conv(x, columns, padding="valid")

    x, y = planes(y_true), planes(y_pred)
    mean_x, mean_y = blur(x), blur(y)
    variance_x = blur(x * x) - mean_x * mean_x
    variance_y = blur(y * y) - mean_y * mean_y
    covariance = blur(x * y) - mean_x * mean_y
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    luminance = (2.0 * mean_x * mean_y + c1) / (
        mean_x * mean_x + mean_y * mean_y + c1
    )
    structure = (2.0 * covariance + c2) / (variance_x + variance_y + c2)
    per_plane = ops.mean(luminance * structure, axis=(1, 2, 3))
    per_channel = ops.reshape(per_plane, (shape[0], shape[3]))
    return ops.mean(per_channel, axis=-1)


class _ImageQualityMetric(keras.metrics.MeanMetricWrapper):
    def __init__(self, fn, max_val, name, dtype):
        super().__init__(fn=fn, name=name, dtype=dtype, max_val=max_val)
        self.max_val = max_val

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "max_val": self.max_val}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class PSNR(_ImageQualityMetric):
    """Mean peak signal-to-noise ratio over images, in dB.

    Averages `keras_rbdn.metrics.psnr` (per image, as `tf.image.psnr`)
    over all images seen.

    Args:
        max_val: float. Dynamic range of the images. Defaults to `1.0`.
        name: str. Defaults to `"psnr"`.
        dtype: Metric dtype. Defaults to `None`.

    Example:

    >>> model.compile(optimizer="adam", loss="mse", metrics=[PSNR()])
    """

    def __init__(self, max_val=1.0, name="psnr", dtype=None):
        super().__init__(psnr, max_val, name, dtype)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class SSIM(_ImageQualityMetric):
    """Mean structural similarity over images (as `tf.image.ssim`).

    Args:
        max_val: float. Dynamic range of the images. Defaults to `1.0`.
        name: str. Defaults to `"ssim"`.
        dtype: Metric dtype. Defaults to `None`.

    Example:

    >>> model.compile(optimizer="adam", loss="mse", metrics=[SSIM()])
    """

    def __init__(self, max_val=1.0, name="ssim", dtype=None):
        super().__init__(ssim, max_val, name, dtype)
