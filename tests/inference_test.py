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
        radius = inference.receptive_radius(network)
        tiled = inference.predict_image(
            network, image, tile_size=192, margin=radius
        )
        # Tiles of at most 192 with a margin of 48: every cut inside.
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

    def test_edge_tiles_take_the_shape_of_the_others(self, monkeypatch):
        # 101 x 75 is no multiple of the stride 4: the last tile of each
        # row and column moves inward to end at the edge, in one shape.
        network = small_rbdn(branches=1)
        image = np.random.default_rng(7).random((101, 75, 1), "float32")
        whole = np.asarray(network.predict_on_batch(image[None]))[0]
        shapes = []
        predict = network.predict_on_batch

        def spy(tiles):
            shapes.append(tiles.shape)
            return predict(tiles)

        monkeypatch.setattr(network, "predict_on_batch", spy)
        done = []
        tiled = inference.predict_image(
            network,
            image,
            tile_size=60,
            margin=inference.receptive_radius(network),
            progress=done.append,
        )
        assert len(shapes) >= 4 and len(set(shapes)) == 1, shapes
        assert max(shapes[0][1:3]) <= 60
        np.testing.assert_allclose(tiled, whole, atol=1e-5)
        assert sum(done) == 101 * 75  # Each output pixel counted once.

    def test_progress_bar_counts_every_pass(self, capsys, monkeypatch):
        from keras_rbdn import progress

        bars = []

        def keep(*args, **kwargs):
            bars.append(progress_bar(*args, **kwargs))
            return bars[-1]

        progress_bar = progress.progress_bar
        monkeypatch.setattr(progress, "progress_bar", keep)
        network = small_rbdn(branches=1)
        image = np.random.default_rng(8).random((200, 250, 3), "float32")
        inference.apply_model(network, image, ensemble=2, progress="photo")
        # 2 orientations x 3 opponent planes x 0.05 MP, all counted.
        (bar,) = bars
        assert bar.total == bar.n == 2 * 3 * 200 * 250
        assert "| 0/0.3 MP [" in capsys.readouterr().err

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
            margin=inference.receptive_radius(network),
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
