"""`OpponentDenoiser`: two RBDNs that denoise RGB in the opponent space."""

import keras
import numpy as np
import pytest

import keras_rbdn
from keras_rbdn.models import RBDN
from keras_rbdn.models import OpponentDenoiser
from tests.channels_test import opponent_reference

TINY = {"branches": 1, "filters": 4, "trunk_depth": 1}


def random_gray(seed=0, **architecture):
    """A tiny gray RBDN with random weights and batch-norm statistics."""
    gray = RBDN(**(architecture or TINY), global_residual=True)
    rng = np.random.default_rng(seed)
    gray.set_weights(
        [
            rng.uniform(0.5, 1.5, w.shape).astype("float32")
            if "variance" in w.path
            else rng.normal(0, 0.2, w.shape).astype("float32")
            for w in gray.weights
        ]
    )
    return gray


def rgb_images(shape=(2, 24, 20, 3), seed=1):
    return np.random.default_rng(seed).random(shape).astype("float32")


def use_the_guide(model):
    """Gives the chroma RBDN a nonzero kernel on the luminance guide."""
    conv1 = model.chroma.get_layer("conv1")
    kernel, bias = conv1.get_weights()
    kernel[:, :, 1] = 0.3
    conv1.set_weights([kernel, bias])


def test_from_gray_runs_the_gray_model_plane_by_plane():
    gray = random_gray()
    model = OpponentDenoiser(**TINY)
    model.load_gray(gray)
    images = rgb_images()
    expected = opponent_reference(
        images, lambda plane: keras.ops.convert_to_numpy(gray(plane))
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images)), expected, atol=2e-5
    )


def test_the_luminance_guides_only_the_chroma():
    model = OpponentDenoiser(**TINY)
    model.load_gray(random_gray())
    images = rgb_images()
    before = keras.ops.convert_to_numpy(model(images))
    use_the_guide(model)
    after = keras_rbdn.layers.RGBToOpponentPlanes()(model(images))
    before = keras_rbdn.layers.RGBToOpponentPlanes()(before)
    after, before = (keras.ops.convert_to_numpy(x) for x in (after, before))
    np.testing.assert_allclose(after[..., 0], before[..., 0], atol=1e-5)
    assert np.abs(after[..., 1:] - before[..., 1:]).max() > 1e-3


@pytest.mark.parametrize(
    "gray",
    [
        RBDN(**TINY),  # No global residual.
        RBDN(**TINY, input_channels=3, global_residual=True),
    ],
    ids=["no_residual", "rgb"],
)
def test_load_gray_rejects_other_networks(gray):
    with pytest.raises(ValueError, match="gray RBDN"):
        OpponentDenoiser(**TINY).load_gray(gray)


def test_keras_file_and_weights_round_trip(tmp_path):
    model = OpponentDenoiser(**TINY)
    model.load_gray(random_gray())
    images = rgb_images()
    expected = keras.ops.convert_to_numpy(model(images))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, OpponentDenoiser)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images)), expected, atol=1e-6
    )
    # keras_rbdn.load wraps it into the image model: outputs clipped.
    image_model = keras_rbdn.load(path)
    assert isinstance(
        keras_rbdn.inference.find_network(image_model), OpponentDenoiser
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(image_model(images)),
        np.clip(expected, 0, 1),
        atol=1e-6,
    )
    weights = str(tmp_path / "model.weights.h5")
    keras_rbdn.presets.save_weights(model, weights)
    fresh = OpponentDenoiser(**TINY)
    keras_rbdn.weights_files.load_weights(fresh, weights)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fresh(images)), expected, atol=1e-6
    )


@pytest.mark.backend_independent  # The margin; the model runs everywhere.
@pytest.mark.parametrize("wrapped", [True, False])
def test_two_tiled_passes_equal_the_whole_model(wrapped):
    small = {**TINY, "kernel_size": 3}  # A small radius: small tiles.
    model = OpponentDenoiser(**small)
    model.load_gray(random_gray(**small))
    use_the_guide(model)
    if wrapped:
        model = keras_rbdn.image_model(model, "denoise")
    image = rgb_images((1, 200, 190, 3))[0]
    whole = np.asarray(model.predict_on_batch(image[None]))[0]
    # Each pass keeps the margin of its own RBDN, half of the model's
    # radius (rounded up to the stride: 20): tiles of at most 70 pixels.
    network = keras_rbdn.inference.find_network(model)
    radius = keras_rbdn.inference.receptive_radius(network.luma)
    assert radius == 18
    tiled = keras_rbdn.inference.predict_image(
        model, image, tile_size=70, margin=radius
    )
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
