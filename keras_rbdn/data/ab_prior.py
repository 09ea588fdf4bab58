"""The empirical ab-bin prior of a training set, for class rebalancing."""

import os

import numpy as np

from keras_rbdn.data.files import check_files
from keras_rbdn.data.files import list_image_files
from keras_rbdn.data.files import read_image
from keras_rbdn.layers.ab_bins import DEFAULT_GRID_SIZE
from keras_rbdn.layers.ab_bins import ab_bin_centers
from keras_rbdn.layers.ab_bins import ab_to_bin_index
from keras_rbdn.layers.color import rgb_to_lab


def compute_ab_prior(
    files,
    output_path=None,
    grid_size=DEFAULT_GRID_SIZE,
    max_pixels_per_image=None,
    seed=0,
    unreadable="raise",
):
    """Counts how often each ab bin occurs in a set of color images.

    Every pixel's ab value (Lab, D65) is quantized to the bin whose cell
    holds it; the counts, normalized to sum to 1, are the empirical prior
    `p` of Zhang et al. (2016). Smoothing and the mix with the uniform
    distribution happen later, in
    `keras_rbdn.losses.class_rebalancing_weights`, so the saved file stays
    the raw statistic. NumPy and Pillow only.

    Args:
        files: str or list. A folder of training images, an image file or
            a list of files.
        output_path: str or `None`. If given, writes a `.npz` file with
            `prior` (num_bins,), `counts` (num_bins,), `centers`
            (num_bins, 2), `grid_size` and `num_images`. Defaults to
            `None`.
        grid_size: float. Grid of the bins. Defaults to `10`.
        max_pixels_per_image: int or `None`. Count a random subset of this
            many pixels per image (faster on large sets); `None` counts all.
            Defaults to `None`.
        seed: int. Seed of the pixel subsets. Defaults to `0`.
        unreadable: str. `"raise"` or `"skip"` (with a warning). Defaults
            to `"raise"`.

    Returns:
        The prior, a float64 NumPy array `(num_bins,)` that sums to 1.

    Example:

    >>> prior = compute_ab_prior("../shared/data/color/train", "prior.npz")
    >>> loss = keras_rbdn.losses.RebalancedCrossEntropy(
    ...     class_weights=keras_rbdn.losses.class_rebalancing_weights(prior))
    """
    files = check_files(list_image_files(files), None, unreadable=unreadable)
    centers = ab_bin_centers(grid_size)
    counts = np.zeros(len(centers), dtype="int64")
    rng = np.random.default_rng(seed)
    for path in files:
        rgb = read_image(path, channels=3).reshape(-1, 3)
        if max_pixels_per_image and len(rgb) > max_pixels_per_image:
            rgb = rgb[rng.choice(len(rgb), max_pixels_per_image, replace=False)]
        ab = rgb_to_lab(rgb.astype("float64") / 255.0, xp=np)[:, 1:]
        counts += np.bincount(
            ab_to_bin_index(ab, grid_size), minlength=len(centers)
        )
    prior = counts / counts.sum()
    if output_path is not None:
        directory = os.path.dirname(os.fspath(output_path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        np.savez(
            output_path,
            prior=prior,
            counts=counts,
            centers=centers,
            grid_size=grid_size,
            num_images=len(files),
        )
    return prior


def load_ab_prior(path):
    """Reads the prior written by `compute_ab_prior`; checks its bins."""
    with np.load(path) as saved:
        prior, centers = saved["prior"], saved["centers"]
        grid_size = float(saved["grid_size"])
    expected = ab_bin_centers(grid_size)
    if centers.shape != expected.shape or not np.allclose(centers, expected):
        raise ValueError(
            f"The prior in {path!r} was computed for other ab bins "
            f"({len(centers)} bins, grid {grid_size}) than this version's "
            f"{len(expected)} bins."
        )
    return prior
