"""Color space conversions: RGB <-> YCbCr (BT.601), CIE Lab and opponent.

The conversions are written once, as functions of an array namespace `xp`
(`keras.ops`, `numpy` or `tf.experimental.numpy`) that provides `add`,
`matmul`, `where`, `exp`, `log`, `maximum` and `concatenate`. The Keras layers
call them with `keras.ops`, so they run on every backend and inside a
model; the NumPy loader calls them with `numpy` (no TensorFlow needed) and
the tf.data pipeline with `tf.experimental.numpy` (inside a `map`, whatever
the Keras backend).

Conventions, the ones `tfio.experimental.color` uses:

- RGB: sRGB values in [0, 1], channels last.
- YCbCr: ITU-R BT.601 "studio swing" Y'CbCr divided by 255, so Y is in
  [16/255, 235/255] and Cb, Cr in [16/255, 240/255] for RGB in [0, 1].
- Lab: CIE L*a*b* of sRGB under the D65 illuminant, 2 degree observer.
  L is in [0, 100]; a and b are roughly in [-86, 98] and [-108, 94] for
  colors in the sRGB gamut.

The orthonormal opponent space (the one CBM3D denoises in) is an exact
rotation of RGB: Y = (R + G + B) / sqrt(3), U = (R - B) / sqrt(2),
V = (R - 2G + B) / sqrt(6). Because the matrix is orthonormal, white
Gaussian noise of one sigma on R, G and B is white Gaussian noise of the
same sigma on Y, U and V, so a gray blind denoiser can clean each plane.
`rgb_to_opponent_planes` also shifts and scales the planes into about
[0, 1], the range a gray model was trained on: Y / sqrt(3) (the mean of R,
G and B), U + 1/2 and V + 1/2.
"""

import keras
import numpy as np
from keras import ops

# ITU-R BT.601: Y'CbCr (8-bit studio swing) = offset + matrix @ RGB, for
# RGB in [0, 1]. Divided by 255 here.
_YCBCR_MATRIX = (
    np.array(
        [
            [65.481, 128.553, 24.966],
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ]
    )
    / 255.0
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_RGB_MATRIX = np.linalg.inv(_YCBCR_MATRIX)

# sRGB (linear) to CIE XYZ, D65, and the D65 2-degree white point; the
# white point division is folded into the matrix.
_XYZ_MATRIX = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_NORMALIZED_XYZ_MATRIX = _XYZ_MATRIX / D65_WHITE[:, None]
_LINEAR_RGB_MATRIX = np.linalg.inv(_NORMALIZED_XYZ_MATRIX)

_OPPONENT_MATRIX = np.array(
    [
        np.array([1.0, 1.0, 1.0]) / np.sqrt(3.0),
        np.array([1.0, 0.0, -1.0]) / np.sqrt(2.0),
        np.array([1.0, -2.0, 1.0]) / np.sqrt(6.0),
    ]
)
# Y / sqrt(3), U + 1/2, V + 1/2: each plane in about [0, 1].
_PLANES_SCALE = np.array([1.0 / np.sqrt(3.0), 1.0, 1.0])
_PLANES_OFFSET = np.array([0.0, 0.5, 0.5])
_PLANES_MATRIX = _PLANES_SCALE[:, None] * _OPPONENT_MATRIX
_PLANES_INVERSE = _OPPONENT_MATRIX.T / _PLANES_SCALE

_LAB_EPSILON = 0.008856  # (6/29)^3, as tensorflow-io and scikit-image.
_LAB_KAPPA = 7.787  # (29/6)^2 / 3
_LAB_DELTA = 16.0 / 116.0
_LAB_INVERSE_EPSILON = 6.0 / 29.0


def _constant(value, like):
    """`value` as a NumPy constant of `like`'s floating dtype."""
    dtype = getattr(like, "dtype", None)
    name = getattr(dtype, "name", None) or str(dtype).replace("torch.", "")
    if name not in ("float16", "bfloat16", "float32", "float64"):
        name = "float32"
    if name == "bfloat16":
        name = "float32"
    return np.asarray(value, dtype=name)


def _linear_map(x, matrix, xp, offset=None):
    """Applies `matrix` (3 x 3) to the last axis of `x`, then `offset`."""
    y = xp.matmul(x, _constant(matrix.T, x))
    if offset is not None:
        y = xp.add(y, _constant(offset, x))
    return y


def _power(x, exponent, xp):
    """`x ** exponent` for positive `x`, as exp(exponent * log(x)).

    Two to three times faster than `power` on CPUs (vectorized exp and
    log), and as accurate in float32 for the exponents used here.
    """
    return xp.exp(xp.log(x) * exponent)


def rgb_to_ycbcr(rgb, xp=ops):
    """Converts RGB in [0, 1] to BT.601 studio-swing YCbCr divided by 255."""
    return _linear_map(rgb, _YCBCR_MATRIX, xp, offset=_YCBCR_OFFSET)


def ycbcr_to_rgb(ycbcr, xp=ops):
    """Inverse of `rgb_to_ycbcr` (not clipped to [0, 1])."""
    return _linear_map(
        xp.add(ycbcr, _constant(-_YCBCR_OFFSET, ycbcr)), _RGB_MATRIX, xp
    )


def rgb_to_opponent(rgb, xp=ops):
    """Converts RGB to the orthonormal opponent space Y, U, V (a rotation)."""
    return _linear_map(rgb, _OPPONENT_MATRIX, xp)


def opponent_to_rgb(opponent, xp=ops):
    """Inverse of `rgb_to_opponent` (the transposed rotation)."""
    return _linear_map(opponent, _OPPONENT_MATRIX.T, xp)


def rgb_to_opponent_planes(rgb, xp=ops):
    """RGB in [0, 1] to opponent planes for a gray model, each in ~[0, 1].

    Y / sqrt(3), U + 1/2 and V + 1/2: noise of sigma on RGB becomes
    noise of sigma / sqrt(3) on the first plane and of sigma on the others.
    """
    return _linear_map(rgb, _PLANES_MATRIX, xp, offset=_PLANES_OFFSET)


def opponent_planes_to_rgb(planes, xp=ops):
    """Inverse of `rgb_to_opponent_planes` (not clipped to [0, 1])."""
    return _linear_map(
        xp.add(planes, _constant(-_PLANES_OFFSET, planes)),
        _PLANES_INVERSE,
        xp,
    )


def rgb_to_lab(rgb, xp=ops):
    """Converts sRGB in [0, 1] to CIE Lab (D65, 2 degrees)."""
    # sRGB transfer function. `maximum` keeps the untaken branch of
    # `where` finite, so that gradients do not become NaN.
    gamma = _power((xp.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4, xp)
    linear = xp.where(rgb > 0.04045, gamma, rgb / 12.92)
    xyz = _linear_map(linear, _NORMALIZED_XYZ_MATRIX, xp)
    f = xp.where(
        xyz > _LAB_EPSILON,
        _power(xp.maximum(xyz, _LAB_EPSILON), 1.0 / 3.0, xp),
        xyz * _LAB_KAPPA + _LAB_DELTA,
    )
    fx, fy, fz = f[..., 0:1], f[..., 1:2], f[..., 2:3]
    return xp.concatenate(
        [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1
    )


def lab_to_rgb(lab, xp=ops):
    """Inverse of `rgb_to_lab` (not clipped to [0, 1])."""
    lightness, a, b = lab[..., 0:1], lab[..., 1:2], lab[..., 2:3]
    fy = (lightness + 16.0) / 116.0
    f = xp.concatenate([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = xp.where(
        f > _LAB_INVERSE_EPSILON,
        f * f * f,
        (f - _LAB_DELTA) / _LAB_KAPPA,
    )
    linear = _linear_map(xyz, _LINEAR_RGB_MATRIX, xp)
    gamma = 1.055 * _power(xp.maximum(linear, 0.0031308), 1.0 / 2.4, xp) - 0.055
    return xp.where(linear > 0.0031308, gamma, linear * 12.92)


class _ColorConversion(keras.layers.Layer):
    """Base class: a stateless per-pixel conversion of 3 channels."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = keras.layers.InputSpec(min_ndim=1, axes={-1: 3})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class RGBToYCbCr(_ColorConversion):
    """Converts RGB to ITU-R BT.601 YCbCr, the tensorflow-io convention.

    Studio-swing Y'CbCr divided by 255: for RGB in [0, 1], Y is in
    [16/255, 235/255] and Cb, Cr in [16/255, 240/255]. Works on any
    rank; the last axis holds the channels.

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., 3)`: RGB in [0, 1].

    Output shape:
        `(..., 3)`: Y, Cb, Cr.

    Example:

    >>> ycbcr = RGBToYCbCr()(np.ones((1, 2, 2, 3), "float32"))
    >>> np.round(ops.convert_to_numpy(ycbcr)[0, 0, 0] * 255, 3)
    array([235., 128., 128.], dtype=float32)
    """

    def call(self, inputs):
        return rgb_to_ycbcr(inputs)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class YCbCrToRGB(_ColorConversion):
    """Converts BT.601 YCbCr (divided by 255) back to RGB.

    The inverse of `RGBToYCbCr`. The output is not clipped: YCbCr values
    outside the RGB cube give RGB values outside [0, 1].

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., 3)`: Y, Cb, Cr.

    Output shape:
        `(..., 3)`: RGB.
    """

    def call(self, inputs):
        return ycbcr_to_rgb(inputs)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class RGBToLab(_ColorConversion):
    """Converts sRGB to CIE Lab (D65 illuminant, 2 degree observer).

    The same formulas and constants as `tfio.experimental.color.rgb_to_lab`
    and `skimage.color.rgb2lab`. L is in [0, 100]; a and b are about in
    [-110, 110].

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., 3)`: sRGB in [0, 1].

    Output shape:
        `(..., 3)`: L, a, b.

    Example:

    >>> lab = RGBToLab()(np.ones((1, 3), "float32"))
    >>> np.round(ops.convert_to_numpy(lab), 2)
    array([[100.,   0.,   0.]], dtype=float32)
    """

    def call(self, inputs):
        return rgb_to_lab(inputs)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class LabToRGB(_ColorConversion):
    """Converts CIE Lab (D65, 2 degrees) back to sRGB.

    The inverse of `RGBToLab`. The output is not clipped: Lab colors
    outside the sRGB gamut give values outside [0, 1].

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., 3)`: L, a, b.

    Output shape:
        `(..., 3)`: sRGB.
    """

    def call(self, inputs):
        return lab_to_rgb(inputs)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class RGBToOpponentPlanes(_ColorConversion):
    """Converts RGB to the opponent planes a gray model reads.

    Y / sqrt(3) (the mean of R, G and B), U + 1/2 and V + 1/2, each about
    in [0, 1] (see `rgb_to_opponent_planes`). White Gaussian noise of one
    sigma on RGB is white on the planes: sigma / sqrt(3) on the first,
    sigma on the other two.

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., 3)`: RGB in [0, 1].

    Output shape:
        `(..., 3)`: the luminance plane and the two chroma planes.

    Example:

    >>> planes = RGBToOpponentPlanes()(np.ones((1, 3), "float32"))
    >>> np.round(ops.convert_to_numpy(planes), 4)
    array([[1. , 0.5, 0.5]], dtype=float32)
    """

    def call(self, inputs):
        return rgb_to_opponent_planes(inputs)


@keras.saving.register_keras_serializable(package="keras_rbdn")
class OpponentPlanesToRGB(_ColorConversion):
    """Converts opponent planes back to RGB (not clipped).

    The inverse of `RGBToOpponentPlanes`.

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., 3)`: the luminance plane and the two chroma planes.

    Output shape:
        `(..., 3)`: RGB.
    """

    def call(self, inputs):
        return opponent_planes_to_rgb(inputs)
