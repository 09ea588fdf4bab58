"""Losses: the class-rebalanced cross-entropy of Lab colorization."""

import keras
import numpy as np
from keras import ops

from keras_rbdn.layers.ab_bins import DEFAULT_GRID_SIZE
from keras_rbdn.layers.ab_bins import ab_bin_centers
from keras_rbdn.layers.ab_bins import soft_encode_ab


def smooth_ab_prior(prior, sigma=5.0, grid_size=DEFAULT_GRID_SIZE):
    """Smooths a distribution over the ab bins with a Gaussian kernel.

    Each bin's mass is spread over the bins with weights
    `exp(-|c_q - c_p|^2 / (2 sigma^2))`, normalized so that the total mass
    is kept.

    Args:
        prior: array `(num_bins,)`: a distribution over the bins.
        sigma: float. Kernel standard deviation in ab units; `0` returns
            the prior unchanged. Defaults to `5.0`.
        grid_size: float. Grid of the bins. Defaults to `10`.

    Returns:
        A float64 NumPy array `(num_bins,)` that sums to 1.
    """
    centers = ab_bin_centers(grid_size).astype("float64")
    prior = _check_prior(prior, len(centers))
    if sigma == 0:
        return prior
    if sigma < 0:
        raise ValueError(f"`sigma` must be >= 0. Received: sigma={sigma}")
    distance = np.sum((centers[:, None] - centers[None]) ** 2, axis=-1)
    kernel = np.exp(-distance / (2.0 * sigma**2))
    kernel /= kernel.sum(axis=0, keepdims=True)  # each column keeps mass
    smoothed = kernel @ prior
    return smoothed / smoothed.sum()


def _check_prior(prior, num_bins):
    prior = np.asarray(prior, dtype="float64")
    if prior.shape != (num_bins,):
        raise ValueError(
            f"`prior` must have shape ({num_bins},), one value per ab bin. "
            f"Received: prior.shape={prior.shape}"
        )
    if np.any(prior < 0) or not prior.sum() > 0:
        raise ValueError(
            "`prior` must be non-negative with a positive sum. "
            f"Received: min={prior.min()}, sum={prior.sum()}"
        )
    return prior / prior.sum()


def class_rebalancing_weights(
    prior, sigma=5.0, uniform_mix=0.5, grid_size=DEFAULT_GRID_SIZE
):
    """Per-bin weights that boost rare colors (Zhang et al. 2016, eq. 4).

    `w ∝ ((1 - lambda) * p~ + lambda / Q)^-1`, with `p~` the empirical
    prior smoothed with a Gaussian of standard deviation `sigma`, `Q` the
    number of bins and `lambda = uniform_mix`; the weights are normalized
    so that their expectation under `p~` is 1 (`sum(p~ * w) = 1`).

    Args:
        prior: array `(num_bins,)`: empirical bin frequencies of the
            training set (see `keras_rbdn.data.compute_ab_prior`).
        sigma: float. Smoothing of the prior. Defaults to `5.0`.
        uniform_mix: float in [0, 1]. `lambda`. Defaults to `0.5`.
        grid_size: float. Grid of the bins. Defaults to `10`.

    Returns:
        A float32 NumPy array `(num_bins,)`.
    """
    if not 0 <= uniform_mix <= 1:
        raise ValueError(
            "`uniform_mix` must be in [0, 1]. "
            f"Received: uniform_mix={uniform_mix}"
        )
    smoothed = smooth_ab_prior(prior, sigma, grid_size)
    mixed = (1.0 - uniform_mix) * smoothed + uniform_mix / len(smoothed)
    if np.any(mixed <= 0):
        raise ValueError(
            "With `uniform_mix=0` every bin needs a positive prior. "
            f"Received: {int(np.sum(mixed <= 0))} bins with zero prior"
        )
    weights = 1.0 / mixed
    weights /= np.sum(smoothed * weights)
    return weights.astype("float32")


@keras.saving.register_keras_serializable(package="keras_rbdn")
class RebalancedCrossEntropy(keras.losses.Loss):
    """Class-rebalanced cross-entropy over the ab bins (Zhang et al. 2016).

    The target ab values are soft-encoded onto the bins (`neighbors`
    nearest, Gaussian `sigma`), giving `Z`; the loss at each pixel is
    `-w[argmax_q Z_q] * sum_q Z_q log softmax(y_pred)_q`, averaged over the
    pixels. `class_weights=None` gives the plain cross-entropy (all
    weights 1).

    Args:
        class_weights: array `(num_bins,)` or `None`. Per-bin weights, from
            `class_rebalancing_weights(prior)`. Defaults to `None`.
        neighbors: int. Soft-encoding neighbors. Defaults to `5`.
        sigma: float. Soft-encoding standard deviation. Defaults to `5.0`.
        grid_size: float. Grid of the bins. Defaults to `10`.
        from_logits: bool. Whether `y_pred` holds logits (otherwise
            probabilities). Defaults to `True`.
        reduction: str. Keras loss reduction. Defaults to
            `"sum_over_batch_size"`.
        name: str. Defaults to `"rebalanced_cross_entropy"`.

    Call arguments:
        y_true: `(batch, height, width, 2)` ab targets in Lab units, or
            `(batch, height, width, num_bins)` already soft-encoded.
        y_pred: `(batch, height, width, num_bins)` logits.

    Example:

    >>> loss = RebalancedCrossEntropy()
    >>> ab = np.zeros((1, 4, 4, 2), "float32")
    >>> logits = np.zeros((1, 4, 4, 261), "float32")
    >>> round(float(loss(ab, logits)), 3)  # log(261)
    5.565
    """

    def __init__(
        self,
        class_weights=None,
        neighbors=5,
        sigma=5.0,
        grid_size=DEFAULT_GRID_SIZE,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="rebalanced_cross_entropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if class_weights is not None:
            class_weights = np.asarray(class_weights, "float32").reshape(-1)
        self.class_weights = class_weights
        self.neighbors = neighbors
        self.sigma = sigma
        self.grid_size = grid_size
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        centers = ab_bin_centers(self.grid_size)
        if self.class_weights is not None and len(self.class_weights) != len(
            centers
        ):
            raise ValueError(
                f"`class_weights` must have {len(centers)} values. "
                f"Received: {len(self.class_weights)}"
            )
        y_pred = ops.cast(y_pred, "float32")
        if y_true.shape[-1] == 2:
            target = soft_encode_ab(y_true, centers, self.neighbors, self.sigma)
        else:
            target = ops.cast(y_true, "float32")
        if self.from_logits:
            log_probabilities = ops.log_softmax(y_pred, axis=-1)
        else:
            log_probabilities = ops.log(ops.maximum(y_pred, 1e-7))
        cross_entropy = -ops.sum(target * log_probabilities, axis=-1)
        if self.class_weights is not None:
            weight = ops.take(
                self.class_weights, ops.argmax(target, axis=-1), axis=0
            )
            cross_entropy = cross_entropy * weight
        return cross_entropy

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "class_weights": None
                if self.class_weights is None
                else self.class_weights.tolist(),
                "neighbors": self.neighbors,
                "sigma": self.sigma,
                "grid_size": self.grid_size,
                "from_logits": self.from_logits,
            }
        )
        return config
