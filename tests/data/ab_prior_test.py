import os

import numpy as np
import pytest
import skimage.color
from PIL import Image

from keras_rbdn.data import compute_ab_prior
from keras_rbdn.data import load_ab_prior
from keras_rbdn.layers import ab_bin_centers
from keras_rbdn.losses import class_rebalancing_weights
from tests.data.generated import SHARED_DATA

COLORS = np.array([[200, 30, 40], [20, 60, 220], [128, 128, 128]], np.uint8)

# The prior and its weights are computed with NumPy alone.
pytestmark = pytest.mark.backend_independent


def bin_of(rgb8):
    """Reference: the bin of a color, via skimage and rounding."""
    ab = skimage.color.rgb2lab(rgb8[None, None] / 255.0)[0, 0, 1:]
    center = np.round(ab / 10) * 10
    return int(np.flatnonzero(np.all(ab_bin_centers() == center, axis=1))[0])


def write_color_images(folder):
    """Two images: 3/4 of all pixels are COLORS[0], 1/8 each the others."""
    os.makedirs(folder)
    first = np.empty((8, 8, 3), np.uint8)
    first[:] = COLORS[0]
    second = first.copy()
    second[:4, :] = COLORS[1]
    second[4:, :] = COLORS[2]
    for index, pixels in enumerate((first, second)):
        Image.fromarray(pixels).save(os.path.join(folder, f"{index}.png"))


class ComputeABPriorTest:
    def test_counts_bins_and_writes_a_file(self, tmp_path):
        write_color_images(str(tmp_path / "train"))
        path = str(tmp_path / "out" / "prior.npz")
        prior = compute_ab_prior(str(tmp_path / "train"), path)
        expected = np.zeros(len(ab_bin_centers()))
        for color, share in zip(COLORS, (0.5, 0.25, 0.25), strict=True):
            expected[bin_of(color)] += share
        np.testing.assert_allclose(prior, expected)
        np.testing.assert_allclose(load_ab_prior(path), expected)
        with np.load(path) as saved:
            assert int(saved["num_images"]) == 2
            assert saved["counts"].sum() == 128
        weights = class_rebalancing_weights(prior)
        assert weights[bin_of(COLORS[1])] > weights[bin_of(COLORS[0])]

    def test_pixel_subsets(self, tmp_path):
        write_color_images(str(tmp_path / "train"))
        prior = compute_ab_prior(
            str(tmp_path / "train"), max_pixels_per_image=10
        )
        np.testing.assert_allclose(prior.sum(), 1.0)
        assert np.count_nonzero(prior) <= 3

    def test_load_rejects_other_bins(self, tmp_path):
        path = str(tmp_path / "prior.npz")
        np.savez(
            path, prior=np.ones(3) / 3, centers=np.zeros((3, 2)), grid_size=10
        )
        with pytest.raises(ValueError, match="other ab bins"):
            load_ab_prior(path)


@pytest.mark.skipif(
    not os.path.isdir(SHARED_DATA), reason="../shared/data is not present"
)
def test_prior_of_real_color_images():
    folder = os.path.join(SHARED_DATA, "color", "train")
    files = sorted(os.listdir(folder))[:5]
    prior = compute_ab_prior(
        [os.path.join(folder, name) for name in files],
        max_pixels_per_image=5000,
    )
    np.testing.assert_allclose(prior.sum(), 1.0)
    # Natural images: near-gray colors dominate.
    gray = np.flatnonzero(np.all(np.abs(ab_bin_centers()) <= 10, axis=1))
    assert prior[gray].sum() > 0.3
