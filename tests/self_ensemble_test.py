"""Geometric self-ensemble against NumPy's own rotations and flips."""

import numpy as np
import pytest
from keras import ops

from keras_rbdn.self_ensemble import ENSEMBLE_SIZES
from keras_rbdn.self_ensemble import self_ensemble


def numpy_symmetries(image):
    """The eight symmetries of `image` (H, W, C), written with rot90."""
    rotations = [np.rot90(image, k, axes=(0, 1)) for k in range(4)]
    return rotations + [np.fliplr(rotation) for rotation in rotations]


def orientation_dependent(image):
    """A model whose output depends on orientation: a row-wise running
    sum plus a weighted column shift."""
    return np.cumsum(image, axis=-2) + 0.5 * np.roll(image, 1, axis=-3)


def reference_ensemble(image, ensemble):
    """Mean over the expected symmetries, each undone with NumPy."""
    if ensemble == 1:
        forward = [lambda x: x]
        inverse = [lambda x: x]
    elif ensemble == 2:
        forward = [lambda x: x, np.fliplr]
        inverse = [lambda x: x, np.fliplr]
    else:
        forward = [lambda x, k=k: np.rot90(x, k) for k in range(4)]
        inverse = [lambda x, k=k: np.rot90(x, -k) for k in range(4)]
        if ensemble == 8:
            forward += [
                lambda x, k=k: np.fliplr(np.rot90(x, k)) for k in range(4)
            ]
            inverse += [
                lambda x, k=k: np.rot90(np.fliplr(x), -k) for k in range(4)
            ]
    outputs = [
        undo(orientation_dependent(do(image)))
        for do, undo in zip(forward, inverse, strict=True)
    ]
    return np.mean(outputs, axis=0)


@pytest.mark.backend_independent  # NumPy only
@pytest.mark.parametrize("ensemble", ENSEMBLE_SIZES)
def test_matches_numpy_rotations_and_flips(ensemble):
    image = np.random.default_rng(0).random((5, 7, 2))
    output = self_ensemble(orientation_dependent, image, ensemble, xp=np)
    np.testing.assert_allclose(
        output, reference_ensemble(image, ensemble), rtol=1e-12
    )


@pytest.mark.backend_independent  # NumPy only
def test_eight_distinct_symmetries_are_seen():
    image = np.random.default_rng(1).random((4, 6, 1))
    seen = []
    self_ensemble(lambda x: seen.append(x.copy()) or x, image, 8, xp=np)
    expected = numpy_symmetries(image)
    assert len(seen) == 8
    for symmetry in expected:
        assert (
            sum(
                s.shape == symmetry.shape and np.array_equal(s, symmetry)
                for s in seen
            )
            == 1
        )


@pytest.mark.backend_independent  # NumPy only
@pytest.mark.parametrize("ensemble", ENSEMBLE_SIZES)
def test_an_equivariant_model_is_unchanged(ensemble):
    # A pixel-wise model commutes with every flip and rotation: the
    # ensemble of it is the model itself.
    image = np.random.default_rng(2).random((6, 9, 3))

    def model(x):
        return x**2 + 0.25

    output = self_ensemble(model, image, ensemble, xp=np)
    np.testing.assert_allclose(output, model(image), rtol=1e-12)


@pytest.mark.parametrize("ensemble", ENSEMBLE_SIZES)
def test_keras_ops_on_a_batch_agree_with_numpy(ensemble):
    images = np.random.default_rng(3).random((2, 5, 7, 1)).astype("float32")
    expected = np.stack(
        [
            self_ensemble(orientation_dependent, image, ensemble, xp=np)
            for image in images
        ]
    )

    def keras_model(x):
        # The same model in keras.ops, on (batch, height, width, channels).
        return ops.cumsum(x, axis=-2) + 0.5 * ops.roll(x, 1, axis=-3)

    output = self_ensemble(keras_model, images, ensemble)
    np.testing.assert_allclose(
        ops.convert_to_numpy(output), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.backend_independent  # NumPy only
@pytest.mark.parametrize("ensemble", [0, 3, 16, True, "8", None])
def test_other_sizes_are_rejected(ensemble):
    with pytest.raises(ValueError, match=f"ensemble={ensemble!r}"):
        self_ensemble(lambda x: x, np.zeros((2, 2, 1)), ensemble, xp=np)
