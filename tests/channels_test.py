"""How models meet images of other channel counts (`keras_rbdn.channels`)."""

import numpy as np
import pytest
from keras import ops

from keras_rbdn.channels import run_on_channels

RGB = np.random.default_rng(0).random((2, 6, 5, 3)).astype("float32")


def curve(x):
    return np.sqrt(np.abs(x)) * 0.5


def gray_model(x):
    """A non-linear gray 'model' that takes one channel only."""
    assert x.shape[-1] == 1
    return curve(x)


def opponent_reference(rgb, model):
    """The opponent path written out: rotate, scale, model, undo."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    planes = [
        (r + g + b) / np.sqrt(3.0) / np.sqrt(3.0),
        (r - b) / np.sqrt(2.0) + 0.5,
        (r - 2 * g + b) / np.sqrt(6.0) + 0.5,
    ]
    y, u, v = (model(plane[..., None])[..., 0] for plane in planes)
    y, u, v = y * np.sqrt(3.0), u - 0.5, v - 0.5
    opponent = np.stack([y, u, v], axis=-1)
    matrix = np.array(
        [
            [1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)],
            [1 / np.sqrt(2), 0, -1 / np.sqrt(2)],
            [1 / np.sqrt(6), -2 / np.sqrt(6), 1 / np.sqrt(6)],
        ]
    )
    return opponent @ matrix  # The inverse of a rotation: its transpose.


@pytest.mark.backend_independent  # NumPy, or an error before any op
def test_gray_model_on_rgb_in_the_opponent_space():
    output = run_on_channels(gray_model, RGB, 1, 1, xp=np)
    np.testing.assert_allclose(
        output, opponent_reference(RGB, gray_model), atol=1e-5
    )


@pytest.mark.backend_independent  # NumPy, or an error before any op
def test_identity_model_gives_the_image_back():
    for color_space in ("opponent", "per_channel"):
        output = run_on_channels(
            lambda x: x, RGB, 1, 1, color_space=color_space, xp=np
        )
        np.testing.assert_allclose(output, RGB, atol=1e-6)


@pytest.mark.backend_independent  # NumPy, or an error before any op
def test_gray_model_per_channel():
    output = run_on_channels(
        gray_model, RGB, 1, 1, color_space="per_channel", xp=np
    )
    np.testing.assert_allclose(output, curve(RGB), rtol=1e-6)


def test_keras_ops_agree_with_numpy():
    output = run_on_channels(lambda x: ops.sqrt(ops.abs(x)) * 0.5, RGB, 1, 1)
    np.testing.assert_allclose(
        ops.convert_to_numpy(output),
        opponent_reference(RGB, gray_model),
        atol=1e-5,
    )


@pytest.mark.backend_independent  # NumPy, or an error before any op
def test_gray_image_through_an_rgb_model_is_repeated():
    gray = RGB[..., :1]
    seen = []
    output = run_on_channels(
        lambda x: seen.append(x) or x * 2, gray, 3, 3, xp=np
    )
    np.testing.assert_array_equal(seen[0], np.repeat(gray, 3, axis=-1))
    np.testing.assert_array_equal(output, np.repeat(gray, 3, axis=-1) * 2)


@pytest.mark.backend_independent  # NumPy, or an error before any op
def test_matching_channels_run_as_they_are():
    output = run_on_channels(lambda x: x + 1, RGB, 3, 3, xp=np)
    np.testing.assert_array_equal(output, RGB + 1)


@pytest.mark.backend_independent  # NumPy, or an error before any op
@pytest.mark.parametrize("channels", [2, 4, 5])
@pytest.mark.parametrize("model_channels", [1, 3])
def test_other_channel_counts_are_rejected(channels, model_channels):
    images = np.zeros((1, 4, 4, channels), "float32")
    with pytest.raises(
        ValueError, match=f"1 or 3 channels. Received: images with {channels}"
    ):
        run_on_channels(lambda x: x, images, model_channels, model_channels)


@pytest.mark.backend_independent  # NumPy, or an error before any op
def test_unknown_color_space_is_rejected():
    with pytest.raises(ValueError, match="color_space='lab'"):
        run_on_channels(lambda x: x, RGB, 1, 1, color_space="lab", xp=np)
