import keras
import numpy as np
import pytest
from keras import ops

from keras_rbdn.layers import ab_bin_centers
from keras_rbdn.layers.ab_bins import NUM_AB_BINS
from keras_rbdn.losses import RebalancedCrossEntropy
from keras_rbdn.losses import class_rebalancing_weights
from keras_rbdn.losses import smooth_ab_prior
from tests.layers.ab_bins_test import reference_soft_encoding


def random_prior(seed=0):
    rng = np.random.default_rng(seed)
    prior = rng.random(NUM_AB_BINS) ** 4  # a few frequent colors
    prior[rng.choice(NUM_AB_BINS, 50, replace=False)] = 0.0  # never seen
    return prior / prior.sum()


# NumPy: the prior's smoothing and the class weights.
@pytest.mark.backend_independent
class SmoothABPriorTest:
    def test_keeps_mass_and_spreads_a_delta_as_a_gaussian(self):
        centers = ab_bin_centers()
        center = int(np.flatnonzero(np.all(centers == [0, 0], axis=1))[0])
        delta = np.zeros(NUM_AB_BINS)
        delta[center] = 1.0
        smoothed = smooth_ab_prior(delta, sigma=5.0)
        np.testing.assert_allclose(smoothed.sum(), 1.0)
        neighbour = int(np.flatnonzero(np.all(centers == [10, 0], axis=1))[0])
        diagonal = int(np.flatnonzero(np.all(centers == [10, 10], axis=1))[0])
        # Gaussian of sigma 5 on a grid of 10: exp(-100 / 50) per step.
        np.testing.assert_allclose(
            smoothed[neighbour] / smoothed[center], np.exp(-2.0), rtol=1e-6
        )
        np.testing.assert_allclose(
            smoothed[diagonal] / smoothed[center], np.exp(-4.0), rtol=1e-6
        )

    def test_sigma_zero_is_identity(self):
        prior = random_prior()
        np.testing.assert_allclose(smooth_ab_prior(prior, sigma=0), prior)

    def test_rejects_bad_priors(self):
        with pytest.raises(ValueError, match="shape"):
            smooth_ab_prior(np.ones(10))
        with pytest.raises(ValueError, match="non-negative"):
            smooth_ab_prior(-np.ones(NUM_AB_BINS))


@pytest.mark.backend_independent
class ClassRebalancingWeightsTest:
    def test_expectation_under_smoothed_prior_is_one(self):
        prior = random_prior(1)
        weights = class_rebalancing_weights(prior)
        smoothed = smooth_ab_prior(prior, 5.0)
        np.testing.assert_allclose(np.sum(smoothed * weights), 1.0, rtol=1e-5)

    def test_formula(self):
        prior = random_prior(2)
        smoothed = smooth_ab_prior(prior, 5.0)
        expected = 1.0 / (0.5 * smoothed + 0.5 / NUM_AB_BINS)
        expected /= np.sum(smoothed * expected)
        np.testing.assert_allclose(
            class_rebalancing_weights(prior), expected, rtol=1e-5
        )

    def test_rare_colors_weigh_more(self):
        prior = random_prior(3)
        weights = class_rebalancing_weights(prior)
        smoothed = smooth_ab_prior(prior, 5.0)
        order = np.argsort(smoothed)
        assert np.all(np.diff(weights[order]) <= 1e-6)
        assert weights.max() <= 2.0 * NUM_AB_BINS  # bounded by lambda = 0.5

    def test_uniform_cases_give_unit_weights(self):
        uniform = np.full(NUM_AB_BINS, 1.0 / NUM_AB_BINS)
        np.testing.assert_allclose(
            class_rebalancing_weights(uniform, sigma=0), 1.0, rtol=1e-5
        )
        np.testing.assert_allclose(
            class_rebalancing_weights(random_prior(), uniform_mix=1.0),
            1.0,
            rtol=1e-5,
        )


def reference_loss(ab, logits, weights=None):
    target = reference_soft_encoding(ab, ab_bin_centers())
    logits = logits.reshape(-1, NUM_AB_BINS).astype("float64")
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.sum(target * log_probabilities, axis=-1)
    if weights is not None:
        cross_entropy *= weights[np.argmax(target, axis=-1)]
    return cross_entropy.mean()


class RebalancedCrossEntropyTest:
    def test_uniform_logits_give_log_bins(self):
        loss = RebalancedCrossEntropy()(
            np.zeros((1, 3, 3, 2), "float32"),
            np.zeros((1, 3, 3, NUM_AB_BINS), "float32"),
        )
        np.testing.assert_allclose(float(loss), np.log(NUM_AB_BINS), rtol=1e-5)

    @pytest.mark.parametrize("rebalanced", [False, True])
    def test_matches_reference(self, rebalanced):
        rng = np.random.default_rng(4)
        ab = rng.uniform(-60, 60, (2, 4, 3, 2)).astype("float32")
        logits = rng.normal(size=(2, 4, 3, NUM_AB_BINS)).astype("float32")
        weights = (
            class_rebalancing_weights(random_prior()) if rebalanced else None
        )
        loss = RebalancedCrossEntropy(class_weights=weights)(ab, logits)
        np.testing.assert_allclose(
            float(loss), reference_loss(ab, logits, weights), rtol=1e-4
        )

    def test_accepts_encoded_targets(self):
        rng = np.random.default_rng(5)
        ab = rng.uniform(-60, 60, (1, 2, 2, 2)).astype("float32")
        encoded = reference_soft_encoding(ab, ab_bin_centers()).reshape(
            1, 2, 2, NUM_AB_BINS
        )
        logits = rng.normal(size=(1, 2, 2, NUM_AB_BINS)).astype("float32")
        loss = RebalancedCrossEntropy()
        np.testing.assert_allclose(
            float(loss(encoded.astype("float32"), logits)),
            float(loss(ab, logits)),
            rtol=1e-5,
        )

    def test_trains_a_model(self):
        inputs = keras.Input((None, None, 1))
        outputs = keras.layers.Conv2D(NUM_AB_BINS, 1)(inputs)
        model = keras.Model(inputs, outputs)
        weights = class_rebalancing_weights(random_prior())
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss=RebalancedCrossEntropy(class_weights=weights),
        )
        rng = np.random.default_rng(6)
        lightness = rng.random((8, 8, 8, 1), "float32")
        ab = np.broadcast_to(
            np.array([30.0, -40.0], "float32"), (8, 8, 8, 2)
        ).copy()
        history = model.fit(lightness, ab, epochs=5, batch_size=4, verbose=0)
        losses = history.history["loss"]
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]

    def test_config_round_trip(self):
        weights = class_rebalancing_weights(random_prior())
        loss = RebalancedCrossEntropy(class_weights=weights, sigma=4.0)
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert isinstance(clone, RebalancedCrossEntropy) and clone.sigma == 4.0
        np.testing.assert_allclose(clone.class_weights, weights)

    def test_rejects_wrong_number_of_weights(self):
        loss = RebalancedCrossEntropy(class_weights=np.ones(10))
        with pytest.raises(ValueError, match="class_weights"):
            loss(
                np.zeros((1, 2, 2, 2), "float32"),
                ops.zeros((1, 2, 2, NUM_AB_BINS)),
            )
