import keras
import numpy as np
import pytest
import skimage.color
from keras import ops

from keras_rbdn.layers import ABAnnealedMean
from keras_rbdn.layers import ABSoftEncoding
from keras_rbdn.layers import ab_bin_centers
from keras_rbdn.layers import num_ab_bins
from keras_rbdn.layers.ab_bins import NUM_AB_BINS
from keras_rbdn.layers.ab_bins import ab_to_bin_index


def reference_soft_encoding(ab, centers, neighbors=5, sigma=5.0):
    """Brute force: Gaussian weights on the `neighbors` nearest centers."""
    ab = ab.reshape(-1, 2).astype("float64")
    out = np.zeros((len(ab), len(centers)))
    for row, value in enumerate(ab):
        distance = np.sum((centers - value) ** 2, axis=-1)
        nearest = np.argsort(distance, kind="stable")[:neighbors]
        weight = np.exp(-distance[nearest] / (2 * sigma**2))
        out[row, nearest] = weight / weight.sum()
    return out


def reference_annealed_mean(probabilities, centers, temperature):
    annealed = np.exp(np.log(probabilities) / temperature)
    annealed /= annealed.sum(axis=-1, keepdims=True)
    return annealed @ centers


# The bins and the hard quantization are NumPy.
@pytest.mark.backend_independent
class ABBinsTest:
    def test_count_and_extent(self):
        centers = ab_bin_centers()
        assert len(centers) == num_ab_bins() == NUM_AB_BINS == 261
        np.testing.assert_array_equal(centers.min(axis=0), [-90, -110])
        np.testing.assert_array_equal(centers.max(axis=0), [100, 90])
        assert np.all(centers % 10 == 0)

    def test_matches_skimage_gamut_of_cube_faces(self):
        levels = np.arange(256) / 255.0
        first, second = np.meshgrid(levels, levels, indexing="ij")
        face = np.stack([first.ravel(), second.ravel()], -1)
        rgb = np.concatenate(
            [np.insert(face, a, v, axis=1) for a in range(3) for v in (0, 1)]
        )
        lab = skimage.color.rgb2lab(rgb[None])[0]
        cells = np.unique(np.round(lab[:, 1:] / 10).astype(int), axis=0)
        expected = {tuple(cell * 10) for cell in cells}
        assert {tuple(center) for center in ab_bin_centers()} == expected

    def test_colors_inside_the_cube_add_no_bin(self):
        # The faces reach every bin that any 8-bit color reaches; the full
        # 256^3 check (skimage, about a minute) was run once; here a random
        # sample of the whole cube.
        rng = np.random.default_rng(2)
        rgb = rng.integers(0, 256, (300_000, 3)) / 255.0
        lab = skimage.color.rgb2lab(rgb[None])[0]
        cells = np.unique(np.round(lab[:, 1:] / 10).astype(int), axis=0)
        bins = {tuple(center) for center in ab_bin_centers()}
        assert {tuple(cell * 10) for cell in cells} <= bins

    def test_bin_index_is_the_nearest_center(self):
        rng = np.random.default_rng(0)
        rgb = rng.random((2000, 3))
        ab = skimage.color.rgb2lab(rgb[None])[0, :, 1:]
        centers = ab_bin_centers()
        nearest = np.argmin(
            np.sum((ab[:, None] - centers[None]) ** 2, axis=-1), axis=-1
        )
        np.testing.assert_array_equal(ab_to_bin_index(ab), nearest)
        # Out of gamut: still the nearest center.
        np.testing.assert_array_equal(
            ab_to_bin_index(np.array([[150.0, 150.0]])),
            [np.argmin(np.sum((centers - 150.0) ** 2, axis=-1))],
        )


class ABSoftEncodingTest:
    def test_matches_reference_and_sums_to_one(self):
        rng = np.random.default_rng(1)
        ab = rng.uniform(-80, 80, (2, 5, 7, 2)).astype("float32")
        encoded = ops.convert_to_numpy(ABSoftEncoding()(ab))
        assert encoded.shape == (2, 5, 7, NUM_AB_BINS)
        np.testing.assert_allclose(encoded.sum(axis=-1), 1.0, rtol=1e-5)
        assert np.all(np.count_nonzero(encoded, axis=-1) == 5)
        expected = reference_soft_encoding(ab, ab_bin_centers())
        np.testing.assert_allclose(
            encoded.reshape(-1, NUM_AB_BINS), expected, atol=1e-5
        )

    def test_far_out_of_gamut_values_do_not_underflow(self):
        encoded = ops.convert_to_numpy(
            ABSoftEncoding()(np.array([[500.0, -500.0]], "float32"))
        )
        assert np.all(np.isfinite(encoded))
        np.testing.assert_allclose(encoded.sum(), 1.0, rtol=1e-5)

    def test_config_and_symbolic_shape(self):
        layer = ABSoftEncoding(neighbors=3, sigma=2.0)
        clone = ABSoftEncoding.from_config(layer.get_config())
        assert (clone.neighbors, clone.sigma) == (3, 2.0)
        output = clone(keras.Input((None, None, 2)))
        assert output.shape == (None, None, None, NUM_AB_BINS)

    @pytest.mark.parametrize(
        "kwargs", [{"neighbors": 0}, {"neighbors": 2.5}, {"sigma": -1}]
    )
    def test_rejects_bad_arguments(self, kwargs):
        with pytest.raises(ValueError):
            ABSoftEncoding(**kwargs)


class ABAnnealedMeanTest:
    def random_probabilities(self, shape, seed):
        logits = np.random.default_rng(seed).normal(scale=2.0, size=shape)
        probabilities = np.exp(logits)
        return (probabilities / probabilities.sum(-1, keepdims=True)).astype(
            "float32"
        ), logits.astype("float32")

    def test_temperature_one_is_the_mean(self):
        probabilities, _ = self.random_probabilities((3, NUM_AB_BINS), 2)
        ab = ABAnnealedMean(temperature=1.0, from_logits=False)(probabilities)
        np.testing.assert_allclose(
            ops.convert_to_numpy(ab),
            probabilities @ ab_bin_centers(),
            atol=1e-3,
        )

    def test_low_temperature_is_the_mode(self):
        _, logits = self.random_probabilities((3, NUM_AB_BINS), 3)
        mode = np.argmax(logits, axis=-1)
        logits[np.arange(3), mode] += 1.0  # a clear mode
        ab = ABAnnealedMean(temperature=0.01)(logits)
        mode = ab_bin_centers()[mode]
        np.testing.assert_allclose(ops.convert_to_numpy(ab), mode, atol=1e-2)

    def test_paper_temperature_matches_reference(self):
        probabilities, logits = self.random_probabilities(
            (2, 3, 4, NUM_AB_BINS), 4
        )
        expected = reference_annealed_mean(
            probabilities.astype("float64"), ab_bin_centers(), 0.38
        )
        from_logits = ABAnnealedMean()(logits)
        from_probabilities = ABAnnealedMean(from_logits=False)(probabilities)
        for ab in (from_logits, from_probabilities):
            np.testing.assert_allclose(
                ops.convert_to_numpy(ab), expected, atol=1e-3
            )

    def test_one_hot_gives_its_center(self):
        one_hot = np.eye(NUM_AB_BINS, dtype="float32")[[0, 100, 260]]
        ab = ABAnnealedMean(from_logits=False)(one_hot)
        np.testing.assert_allclose(
            ops.convert_to_numpy(ab), ab_bin_centers()[[0, 100, 260]], atol=1e-4
        )

    def test_config_and_symbolic_shape(self):
        layer = ABAnnealedMean(temperature=0.5, from_logits=False)
        clone = ABAnnealedMean.from_config(layer.get_config())
        assert (clone.temperature, clone.from_logits) == (0.5, False)
        assert clone(keras.Input((None, None, NUM_AB_BINS))).shape == (
            None,
            None,
            None,
            2,
        )
        with pytest.raises(ValueError, match="temperature"):
            ABAnnealedMean(temperature=0)
