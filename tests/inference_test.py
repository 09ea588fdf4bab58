import os
import re

import numpy as np
import pytest
from PIL import Image

import keras_rbdn
from keras_rbdn import inference


def small_rbdn(branches=2, channels=1):
    network = keras_rbdn.build(
        branches=branches, task="denoise", channels=channels, K=3, c=4, D=1
    )
    # Non-trivial batch-norm statistics, so that every layer matters.
    rng = np.random.default_rng(0)
    for weight in network.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape))
        elif "moving_mean" in weight.path:
            weight.assign(rng.uniform(-0.2, 0.2, weight.shape))
    return network


class TiledInferenceTest:
    @pytest.mark.slow
    def test_tiled_equals_whole_image(self):
        network = small_rbdn(branches=2)
        image = np.random.default_rng(1).random((260, 230, 1), "float32")
        whole = np.asarray(network.predict_on_batch(image[None]))[0]
        tiled = inference.predict_image(network, image, tile_size=192)
        # Tiles of 192 with a margin of 48: 3 x 3 tiles, every cut inside.
        interior = (slice(48, -48), slice(48, -48))
        np.testing.assert_allclose(tiled[interior], whole[interior], atol=1e-4)
        np.testing.assert_allclose(tiled, whole, atol=1e-4)

    def test_margin_below_receptive_radius_shows_seams(self):
        network = small_rbdn(branches=1)
        image = np.random.default_rng(2).random((70, 40, 1), "float32")
        whole = np.asarray(network.predict_on_batch(image[None]))[0]
        tiled = inference.predict_image(network, image, tile_size=40, margin=4)
        assert np.abs(tiled - whole).max() > 1e-4

    def test_receptive_radius_bounds_an_impulse_response(self):
        network = small_rbdn(branches=2)
        radius = inference.receptive_radius(network)
        size = 2 * radius + 33
        image = np.zeros((1, size, size, 1), "float32")
        center = size // 2
        changed = image.copy()
        changed[0, center, center, 0] = 1.0
        difference = np.abs(
            np.asarray(network.predict_on_batch(changed))
            - np.asarray(network.predict_on_batch(image))
        )[0, ..., 0]
        rows, cols = np.nonzero(difference > 0)
        assert len(rows) > 0
        assert np.abs(rows - center).max() <= radius
        assert np.abs(cols - center).max() <= radius

    @pytest.mark.parametrize("shape", [(33, 21), (1, 1), (17, 64)])
    def test_odd_sizes_keep_their_shape(self, shape):
        network = small_rbdn(branches=2)
        image = np.random.default_rng(3).random(shape + (1,), "float32")
        output = inference.predict_image(network, image)
        assert output.shape == shape + (1,)

    def test_gray_model_on_rgb_per_channel(self):
        network = small_rbdn(branches=1)
        image = np.random.default_rng(4).random((20, 24, 3), "float32")
        output = inference.apply_model(
            network, image, color_space="per_channel"
        )
        assert output.shape == (20, 24, 3)
        for channel in range(3):
            expected = np.asarray(
                network.predict_on_batch(
                    image[None, ..., channel : channel + 1]
                )
            )[0, ..., 0]
            np.testing.assert_allclose(
                output[..., channel], expected, atol=1e-5
            )

    def test_gray_model_on_rgb_in_the_opponent_space_by_default(self):
        # Reference: the three opponent planes (Y / sqrt3, U + 1/2,
        # V + 1/2) through the network, rotated back with the transpose.
        network = small_rbdn(branches=1)
        image = np.random.default_rng(5).random((20, 24, 3), "float32")
        r, g, b = np.moveaxis(image.astype("float64"), -1, 0)
        planes = [(r + g + b) / 3, (r - b) / 2**0.5 + 0.5]
        planes.append((r - 2 * g + b) / 6**0.5 + 0.5)
        y, u, v = (
            np.asarray(
                network.predict_on_batch(
                    plane[None, ..., None].astype("float32")
                )
            )[0, ..., 0]
            for plane in planes
        )
        y, u, v = y * 3**0.5, u - 0.5, v - 0.5
        expected = np.stack(
            [
                y / 3**0.5 + u / 2**0.5 + v / 6**0.5,
                y / 3**0.5 - 2 * v / 6**0.5,
                y / 3**0.5 - u / 2**0.5 + v / 6**0.5,
            ],
            axis=-1,
        )
        output = inference.apply_model(network, image)
        np.testing.assert_allclose(output, expected, atol=1e-5)

    @pytest.mark.slow
    @pytest.mark.parametrize("color_space", ["opponent", "per_channel"])
    def test_ensemble_tiled_equals_whole_image(self, color_space):
        network = small_rbdn(branches=2)
        image = np.random.default_rng(6).random((250, 210, 3), "float32")
        whole = inference.apply_model(
            network, image, color_space=color_space, ensemble=8
        )
        tiled = inference.apply_model(
            network,
            image,
            tile_size=192,
            color_space=color_space,
            ensemble=8,
        )
        np.testing.assert_allclose(tiled, whole, atol=1e-4)
        # The ensemble is not the plain model: the network is not
        # orientation-invariant.
        plain = inference.apply_model(network, image, color_space=color_space)
        assert np.abs(whole - plain).max() > 1e-3

    @pytest.mark.parametrize(
        "argument, value, message",
        [
            ("ensemble", 3, "ensemble=3"),
            ("ensemble", 0, "ensemble=0"),
            ("color_space", "lab", "color_space='lab'"),
        ],
    )
    def test_bad_options_are_value_errors(self, argument, value, message):
        network = small_rbdn(branches=1)
        image = np.zeros((8, 8, 3), "float32")
        with pytest.raises(ValueError, match=re.escape(message)):
            inference.apply_model(network, image, **{argument: value})

    @pytest.mark.parametrize("channels", [2, 4])
    def test_gray_model_refuses_other_channel_counts(self, channels):
        network = small_rbdn(branches=1)
        image = np.zeros((8, 8, channels), "float32")
        with pytest.raises(
            ValueError, match=f"Received: images with {channels} channels"
        ):
            inference.apply_model(network, image)

    def test_tile_size_too_small_for_margin(self):
        network = small_rbdn(branches=2)
        with pytest.raises(ValueError, match="tile_size"):
            inference.predict_image(
                network, np.zeros((300, 300, 1), "float32"), tile_size=64
            )


# Image files in and out: NumPy, Pillow and tf.io.
@pytest.mark.backend_independent
class ImageFileTest:
    def test_gray_8_bit_matches_pillow(self, tmp_path):
        pixels = np.random.default_rng(0).integers(0, 256, (9, 7), "uint8")
        path = tmp_path / "gray.png"
        Image.fromarray(pixels).save(path)
        image = inference.read_image(path)
        assert image.bit_depth == 8 and image.alpha is None
        np.testing.assert_array_equal(
            np.round(image.pixels[..., 0] * 255).astype("uint8"), pixels
        )

    def test_gray_16_bit_round_trip_is_exact(self, tmp_path):
        pixels = np.random.default_rng(1).integers(0, 65536, (9, 7), "uint16")
        path = tmp_path / "gray16.png"
        Image.fromarray(pixels).save(path)
        image = inference.read_image(path)
        assert image.bit_depth == 16
        np.testing.assert_array_equal(
            np.round(image.pixels[..., 0] * 65535).astype("uint16"), pixels
        )
        output = tmp_path / "out16.png"
        inference.write_image(output, image.pixels, bit_depth=16)
        np.testing.assert_array_equal(
            np.asarray(Image.open(output)).astype("uint16"), pixels
        )

    def test_rgb_16_bit_round_trip_is_exact(self, tmp_path):
        import tensorflow as tf

        pixels = np.random.default_rng(2).integers(
            0, 65536, (5, 6, 3), "uint16"
        )
        path = tmp_path / "rgb16.png"
        path.write_bytes(tf.io.encode_png(pixels).numpy())
        image = inference.read_image(path)
        assert image.bit_depth == 16 and image.channels == 3
        output = tmp_path / "out.png"
        inference.write_image(output, image.pixels, bit_depth=16)
        decoded = tf.io.decode_png(output.read_bytes(), dtype=tf.uint16)
        np.testing.assert_array_equal(decoded.numpy(), pixels)

    def test_rgba_alpha_is_kept(self, tmp_path):
        pixels = np.random.default_rng(3).integers(0, 256, (6, 5, 4), "uint8")
        path = tmp_path / "rgba.png"
        Image.fromarray(pixels, "RGBA").save(path)
        image = inference.read_image(path)
        assert image.channels == 3 and image.alpha.shape == (6, 5)
        output = tmp_path / "out.png"
        inference.write_image(output, image.pixels, alpha=image.alpha)
        np.testing.assert_array_equal(np.asarray(Image.open(output)), pixels)

    def test_palette_image_reads_as_rgb(self, tmp_path):
        rgb = np.random.default_rng(4).integers(0, 256, (6, 5, 3), "uint8")
        path = tmp_path / "palette.png"
        Image.fromarray(rgb).convert("P").save(path)
        expected = np.asarray(Image.open(path).convert("RGB"))
        image = inference.read_image(path)
        np.testing.assert_array_equal(
            np.round(image.pixels * 255).astype("uint8"), expected
        )

    @pytest.mark.parametrize(
        "name, content, message",
        [
            ("notes.png", b"not an image", "not an image file"),
            ("empty.png", b"", "empty file"),
        ],
    )
    def test_bad_files_name_the_file(self, tmp_path, name, content, message):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(inference.ImageError, match=message) as info:
            inference.read_image(path)
        assert str(info.value).startswith(str(path))
        assert "\n" not in str(info.value)

    def test_cmyk_is_rejected(self, tmp_path):
        path = tmp_path / "cmyk.jpg"
        Image.new("CMYK", (4, 4)).save(path)
        with pytest.raises(inference.ImageError, match="CMYK"):
            inference.read_image(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(inference.ImageError, match="cannot open"):
            inference.read_image(tmp_path / "missing.png")

    def test_no_overwrite_without_permission(self, tmp_path):
        path = tmp_path / "out.png"
        inference.write_image(path, np.zeros((4, 4, 1)))
        before = path.read_bytes()
        with pytest.raises(inference.ImageError, match="already exists"):
            inference.write_image(path, np.ones((4, 4, 1)))
        assert path.read_bytes() == before
        inference.write_image(path, np.ones((4, 4, 1)), overwrite=True)
        assert np.asarray(Image.open(path)).min() == 255
        # Nothing but the output is left in the folder.
        assert os.listdir(tmp_path) == ["out.png"]

    def test_unknown_output_extension(self, tmp_path):
        with pytest.raises(inference.ImageError, match="extension"):
            inference.write_image(tmp_path / "out.xyz", np.zeros((4, 4)))

    def test_read_folder_converts_to_gray(self, tmp_path):
        rgb = np.random.default_rng(5).integers(0, 256, (6, 5, 3), "uint8")
        Image.fromarray(rgb).save(tmp_path / "a.png")
        Image.fromarray(rgb[..., 0]).save(tmp_path / "b.png")
        images = inference.read_folder(tmp_path, mode="gray")
        assert [image.shape for image in images] == [(6, 5, 1)] * 2
        expected = rgb.astype("float32") @ np.array([0.299, 0.587, 0.114])
        np.testing.assert_allclose(images[0][..., 0] * 255, expected, atol=1e-3)
