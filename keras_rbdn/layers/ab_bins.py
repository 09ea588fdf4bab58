"""Quantized ab color space for Lab colorization (Zhang, Isola & Efros 2016).

"Colorful Image Colorization" (ECCV 2016) predicts, for every pixel, a
distribution over the ab plane of Lab quantized with a grid of size 10,
keeping only the in-gamut bins. The RBDN paper's RBDN-Lab model uses the
same output space. Here the bins are computed, not downloaded:

- A bin is the 10 x 10 ab cell centred on a multiple of 10 (so its center
  is the rounded ab value), and it is *in gamut* when at least one 8-bit
  sRGB color (D65) has its a, b inside the cell.
- The 6 x 256^2 colors on the faces of the 8-bit RGB cube reach the same
  cells as all 256^3 colors (checked once for grid size 10, and on a
  random sample of the cube by the tests: the extreme chromas of sRGB lie
  on the cube's surface), at 1/43 of the cost.

This gives 261 bins for grid size 10, where Zhang et al. report 313: their
`pts_in_hull.npy` also holds cells that no sRGB color reaches (a larger
hull of the gamut), which a network can never be asked to predict. The
extents agree: a in [-90, 100] and b in [-110, 90] in both.
"""

import functools

import keras
import numpy as np
from keras import ops

from keras_rbdn.layers.color import rgb_to_lab

DEFAULT_GRID_SIZE = 10
# `num_ab_bins(10)`, computed by `ab_bin_centers`; a constant so that the
# task table knows it without computing the gamut at import time (the
# tests check that the two agree).
NUM_AB_BINS = 261


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{name}` must be a number. Received: {name}={value!r}"
        )
    if value <= 0:
        raise ValueError(f"`{name}` must be > 0. Received: {name}={value!r}")


def _rgb_cube_surface():
    """The 6 * 256^2 8-bit sRGB colors on the faces of the RGB cube."""
    levels = np.arange(256, dtype="float64") / 255.0
    first, second = np.meshgrid(levels, levels, indexing="ij")
    face = np.stack([first.ravel(), second.ravel()], axis=-1)
    faces = [
        np.insert(face, axis, value, axis=1)
        for axis in range(3)
        for value in (0.0, 1.0)
    ]
    return np.concatenate(faces)


@functools.lru_cache(maxsize=8)
def _bin_centers(grid_size):
    lab = rgb_to_lab(_rgb_cube_surface(), xp=np)
    cells = np.round(lab[:, 1:] / grid_size).astype("int64")
    # One integer per cell makes `unique` fast; |cell| < 2**20 always.
    keys = np.unique((cells[:, 0] << 21) + cells[:, 1])
    first = (keys + (1 << 20)) >> 21
    second = keys - (first << 21)
    centers = (np.stack([first, second], -1) * grid_size).astype("float32")
    centers.setflags(write=False)
    return centers


def ab_bin_centers(grid_size=DEFAULT_GRID_SIZE):
    """The in-gamut ab bins: their centers, shape `(num_bins, 2)`.

    Args:
        grid_size: float. Width of the square ab cells. Defaults to `10`
            (261 bins).

    Returns:
        A read-only float32 NumPy array of `(a, b)` centers, sorted by `a`
        then `b`. Bin `q` of a colorization network's output is
        `ab_bin_centers()[q]`.
    """
    _check_positive("grid_size", grid_size)
    return _bin_centers(grid_size)


def num_ab_bins(grid_size=DEFAULT_GRID_SIZE):
    """Number of in-gamut ab bins for `grid_size` (261 for 10)."""
    return len(ab_bin_centers(grid_size))


def ab_to_bin_index(ab, grid_size=DEFAULT_GRID_SIZE):
    """Hard quantization: the index of the bin whose cell holds each ab.

    NumPy only. Values whose cell is not a bin (out of the sRGB gamut) go
    to the nearest bin center.

    Args:
        ab: array `(..., 2)` of a, b values.
        grid_size: float. Defaults to `10`.

    Returns:
        An int64 array `(...)` of bin indices.
    """
    centers = ab_bin_centers(grid_size)
    ab = np.asarray(ab, dtype="float64")
    cells = np.round(ab / grid_size).astype("int64")
    center_cells = np.round(centers / grid_size).astype("int64")
    low = center_cells.min(axis=0)
    shape = center_cells.max(axis=0) - low + 1
    table = np.full(shape, -1, dtype="int64")
    table[tuple((center_cells - low).T)] = np.arange(len(centers))
    offset = cells - low
    inside = np.all((offset >= 0) & (offset < shape), axis=-1)
    index = np.full(ab.shape[:-1], -1, dtype="int64")
    index[inside] = table[tuple(offset[inside].T)]
    missing = index < 0
    if np.any(missing):
        distance = np.sum(
            (ab[missing][:, None, :] - centers[None]) ** 2, axis=-1
        )
        index[missing] = np.argmin(distance, axis=-1)
    return index


def soft_encode_ab(ab, centers, neighbors=5, sigma=5.0):
    """Soft-encodes ab values onto bins, with `keras.ops`.

    Each value spreads over its `neighbors` nearest bin centers with
    Gaussian weights of standard deviation `sigma` (ab units), normalized
    to sum to 1; all other bins get 0.

    Args:
        ab: tensor `(..., 2)`.
        centers: array `(num_bins, 2)` of bin centers.
        neighbors: int. Number of nearest bins that share the value.
        sigma: float. Gaussian standard deviation.

    Returns:
        A tensor `(..., num_bins)` whose last axis sums to 1.
    """
    centers = np.asarray(centers, "float32")
    ab = ops.cast(ab, "float32")
    squared_distance = (
        ops.sum(ops.square(ab), axis=-1, keepdims=True)
        - 2.0 * ops.matmul(ab, centers.T)
        + np.sum(np.square(centers), axis=-1)
    )
    log_weight = -squared_distance / (2.0 * sigma**2)
    nearest, _ = ops.top_k(log_weight, k=neighbors, sorted=True)
    keep = ops.greater_equal(log_weight, nearest[..., -1:])
    weight = ops.where(keep, ops.exp(log_weight - nearest[..., :1]), 0.0)
    return weight / ops.sum(weight, axis=-1, keepdims=True)


def annealed_mean_ab(scores, centers, temperature=0.38, from_logits=True):
    """Annealed mean of bin distributions, with `keras.ops`.

    `f_T(z) = exp(log(z) / T) / sum(exp(log(z) / T))` re-sharpens the
    distribution `z` before its mean is taken: `T = 1` gives the mean,
    `T -> 0` the mode.

    Args:
        scores: tensor `(..., num_bins)`: logits (`from_logits=True`) or
            probabilities.
        centers: array `(num_bins, 2)` of bin centers.
        temperature: float. `T`.
        from_logits: bool. Whether `scores` are logits.

    Returns:
        A tensor `(..., 2)` of a, b values.
    """
    scores = ops.cast(scores, "float32")
    if from_logits:
        log_probabilities = ops.log_softmax(scores, axis=-1)
    else:
        log_probabilities = ops.log(ops.maximum(scores, 1e-30))
    annealed = ops.softmax(log_probabilities / temperature, axis=-1)
    return ops.matmul(annealed, np.asarray(centers, "float32"))


@keras.saving.register_keras_serializable(package="keras_rbdn")
class ABSoftEncoding(keras.layers.Layer):
    """Soft-encodes ab values onto the in-gamut ab bins.

    The target encoding of Zhang et al. (2016): every pixel's ab value is
    spread over its `neighbors` nearest bins with Gaussian weights
    (standard deviation `sigma`), normalized to sum to 1.

    Args:
        neighbors: int. Number of nearest bins. Defaults to `5`.
        sigma: float. Gaussian standard deviation in ab units. Defaults to
            `5.0`.
        grid_size: float. Grid of the bins (see `ab_bin_centers`).
            Defaults to `10`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., 2)`: a, b.

    Output shape:
        `(..., num_bins)`, 261 bins for grid size 10.

    Example:

    >>> encoded = ABSoftEncoding()(np.array([[3.0, -12.0]], "float32"))
    >>> float(ops.sum(encoded))
    1.0
    """

    def __init__(self, neighbors=5, sigma=5.0, grid_size=10, **kwargs):
        super().__init__(**kwargs)
        if isinstance(neighbors, bool) or not isinstance(neighbors, int):
            raise ValueError(
                "`neighbors` must be an integer. "
                f"Received: neighbors={neighbors!r}"
            )
        centers = ab_bin_centers(grid_size)
        if not 1 <= neighbors <= len(centers):
            raise ValueError(
                f"`neighbors` must be in [1, {len(centers)}]. "
                f"Received: neighbors={neighbors}"
            )
        _check_positive("sigma", sigma)
        self.neighbors = neighbors
        self.sigma = sigma
        self.grid_size = grid_size
        self.centers = centers
        self.input_spec = keras.layers.InputSpec(min_ndim=1, axes={-1: 2})

    def call(self, inputs):
        return soft_encode_ab(inputs, self.centers, self.neighbors, self.sigma)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (len(self.centers),)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype="float32"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "neighbors": self.neighbors,
                "sigma": self.sigma,
                "grid_size": self.grid_size,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_rbdn")
class ABAnnealedMean(keras.layers.Layer):
    """Decodes ab bin distributions to ab values by their annealed mean.

    Zhang et al. (2016) pick the mean of the re-sharpened distribution
    `f_T(z) = exp(log(z) / T) / sum(exp(log(z) / T))`, between the mean
    (`T = 1`, desaturated) and the mode (`T -> 0`, patchy); `T = 0.38` is
    their choice.

    Args:
        temperature: float. `T`. Defaults to `0.38`.
        from_logits: bool. Whether the inputs are logits (as an RBDN-Lab
            network predicts) rather than probabilities. Defaults to
            `True`.
        grid_size: float. Grid of the bins (see `ab_bin_centers`).
            Defaults to `10`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        `(..., num_bins)`: logits or probabilities.

    Output shape:
        `(..., 2)`: a, b.

    Example:

    >>> logits = np.zeros((1, 4, 4, num_ab_bins()), "float32")
    >>> tuple(ABAnnealedMean()(logits).shape)
    (1, 4, 4, 2)
    """

    def __init__(
        self, temperature=0.38, from_logits=True, grid_size=10, **kwargs
    ):
        super().__init__(**kwargs)
        _check_positive("temperature", temperature)
        self.temperature = temperature
        self.from_logits = from_logits
        self.grid_size = grid_size
        self.centers = ab_bin_centers(grid_size)
        self.input_spec = keras.layers.InputSpec(
            min_ndim=1, axes={-1: len(self.centers)}
        )

    def call(self, inputs):
        return annealed_mean_ab(
            inputs, self.centers, self.temperature, self.from_logits
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype="float32"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.temperature,
                "from_logits": self.from_logits,
                "grid_size": self.grid_size,
            }
        )
        return config
