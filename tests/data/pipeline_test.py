"""The tf.data pipeline and the NumPy loader make the same, correct pairs.

Most tests run on both (`loader` parameter): pairs are checked against the
generated source images, never against the pipelines' own output.
"""

import os

import keras
import numpy as np
import PIL.Image
import pytest
import skimage.color

import keras_rbdn
from keras_rbdn.data import ImagePairLoader
from keras_rbdn.data import image_dataset
from tests.data.generated import SHARED_DATA
from tests.data.generated import find_crop
from tests.data.generated import write_images
from tests.testing import uint8_noise_reference

LOADERS = ["tf.data", "numpy"]


def batches(loader, files, task="denoise", **kwargs):
    """All (input, target) batches of one pass, as NumPy."""
    if loader == "tf.data":
        dataset = image_dataset(files, task, **kwargs)
        return [(x.numpy(), y.numpy()) for x, y in dataset]
    kwargs.pop("repeat", None)
    dataset = ImagePairLoader(files, task, **kwargs)
    return [dataset[index] for index in range(len(dataset))]


def as_float(images):
    return [pixels.astype("float32") / 255 for pixels in images.values()]


# tf.data and the NumPy loader: TensorFlow and NumPy, whatever the Keras
# backend.
@pytest.mark.backend_independent
@pytest.mark.parametrize("loader", LOADERS)
class PairsTest:
    def test_denoise_targets_are_crops_and_inputs_noisy(self, loader, tmp_path):
        images = write_images(str(tmp_path), count=5, size=(30, 26))
        result = batches(
            loader, str(tmp_path), batch_size=2, crop_size=16, seed=3
        )
        assert [x.shape[0] for x, _ in result] == [2, 2, 1]
        sources = as_float(images)
        levels = []
        for noisy, clean in result:
            assert noisy.shape == clean.shape and clean.shape[1:] == (16, 16, 1)
            for crop in clean:
                assert find_crop(crop, sources, flips=("horizontal",))
            levels += list((noisy - clean).reshape(len(clean), -1).std(1) * 255)
        # 256 pixels per crop: the sample std is within ~15% of sigma.
        assert min(levels) > 8 * 0.8 and max(levels) < 50 * 1.2

    def test_fixed_noise_level(self, loader, tmp_path):
        write_images(str(tmp_path), count=4, size=(64, 64))
        result = batches(
            loader,
            str(tmp_path),
            batch_size=4,
            crop_size=64,
            noise_sigma_range=(25, 25),
        )
        noisy, clean = result[0]
        np.testing.assert_allclose(np.std(noisy - clean) * 255, 25, rtol=0.03)

    @pytest.mark.parametrize("protocol", ["uint8", "mixed"])
    def test_uint8_noise_protocol(self, loader, tmp_path, protocol):
        # Black images: the clipped and rounded noise of sigma 25 averages
        # 0.039, the NumPy reference of the protocol.
        for index in range(8):
            path = os.path.join(str(tmp_path), f"black_{index}.png")
            PIL.Image.new("L", (32, 32)).save(path)
        (noisy, clean), *_ = batches(
            loader,
            str(tmp_path),
            batch_size=8,
            crop_size=32,
            noise_sigma_range=(25, 25),
            noise_protocol=protocol,
        )
        assert not clean.any()
        noisy = noisy.reshape(8, -1)
        rounded = np.all(np.abs(noisy * 255 - np.rint(noisy * 255)) < 1e-4, 1)
        if protocol == "uint8":
            assert rounded.all()
            mean, std = uint8_noise_reference(0.0, 25)
            assert abs(noisy.mean() - mean) < 4 * std / np.sqrt(noisy.size)
        else:
            # Each crop rounded with probability 1/2: not all, not none.
            assert 0 < rounded.sum() < 8
            assert noisy[~rounded].min() < 0 <= noisy[rounded].min()

    def test_rgb_denoising(self, loader, tmp_path):
        images = write_images(str(tmp_path), count=2, channels=3)
        noisy, clean = batches(
            loader, str(tmp_path), batch_size=2, crop_size=8, channels=3
        )[0]
        assert clean.shape == (2, 8, 8, 3)
        assert all(find_crop(crop, as_float(images)) for crop in clean)

    def test_colorize_lab_pairs(self, loader, tmp_path):
        images = write_images(str(tmp_path), count=2, channels=3, size=(20, 24))
        for lightness, ab in batches(
            loader, str(tmp_path), "colorize_lab", batch_size=2, crop_size=12
        ):
            assert lightness.shape == (2, 12, 12, 1) and ab.shape[-1] == 2
            lab = np.concatenate([lightness * 100, ab], -1).astype("float64")
            rgb = np.clip(skimage.color.lab2rgb(lab), 0, 1)
            for crop in np.round(rgb * 255) / 255:
                assert find_crop(crop.astype("float32"), as_float(images))

    def test_colorize_ycbcr_pairs(self, loader, tmp_path):
        images = write_images(str(tmp_path), count=2, channels=3, size=(20, 24))
        luma, chroma = batches(
            loader, str(tmp_path), "colorize_ycbcr", batch_size=2, crop_size=12
        )[0]
        ycbcr = np.concatenate([luma, chroma], -1).astype("float64") * 255
        rgb = np.round(skimage.color.ycbcr2rgb(ycbcr) * 255) / 255
        assert all(
            find_crop(c.astype("float32"), as_float(images)) for c in rgb
        )

    def test_paired_crops_align(self, loader, tmp_path):
        sources = write_images(str(tmp_path / "in"), count=3, size=(24, 20))
        targets = []
        for path, pixels in sources.items():
            target = str(tmp_path / "out" / os.path.basename(path))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            from PIL import Image

            Image.fromarray(255 - pixels[..., 0]).save(target)
            targets.append(target)
        for source, target in batches(
            loader,
            list(sources),
            "relight",
            targets=targets,
            batch_size=3,
            crop_size=10,
            flips="both",
        ):
            np.testing.assert_allclose(source + target, 1.0, atol=1e-6)
            assert all(find_crop(c, as_float(sources)) for c in source)

    def test_small_images_are_mirror_padded(self, loader, tmp_path):
        images = write_images(str(tmp_path), count=1, size=(5, 7))
        _, clean = batches(
            loader, str(tmp_path), batch_size=1, crop_size=16, flips="none"
        )[0]
        pixels = next(iter(images.values()))
        expected = np.pad(pixels, ((0, 11), (0, 9), (0, 0)), "symmetric")
        np.testing.assert_array_equal(clean[0], expected / np.float32(255))

    def test_small_images_skipped(self, loader, tmp_path):
        write_images(str(tmp_path / "a"), count=2, size=(20, 20))
        small = write_images(str(tmp_path / "b"), count=1, size=(5, 30))
        files = [
            os.path.join(tmp_path, "a", name)
            for name in sorted(os.listdir(tmp_path / "a"))
        ] + list(small)
        with pytest.warns(UserWarning, match="smaller than"):
            result = batches(
                loader, files, batch_size=8, crop_size=16, small_images="skip"
            )
        assert result[0][0].shape[0] == 2

    def test_unreadable_file(self, loader, tmp_path):
        write_images(str(tmp_path), count=2)
        with open(tmp_path / "broken.jpg", "wb") as handle:
            handle.write(b"\xff\xd8 not a jpeg")
        with pytest.raises(ValueError, match="broken.jpg"):
            batches(loader, str(tmp_path), crop_size=16)
        with pytest.warns(UserWarning, match="broken.jpg"):
            result = batches(
                loader, str(tmp_path), crop_size=16, unreadable="skip"
            )
        assert result[0][0].shape[0] == 2

    def test_deterministic_given_a_seed(self, loader, tmp_path):
        write_images(str(tmp_path), count=4, size=(40, 40))
        first = batches(
            loader, str(tmp_path), batch_size=4, crop_size=16, seed=7
        )
        again = batches(
            loader, str(tmp_path), batch_size=4, crop_size=16, seed=7
        )
        other = batches(
            loader, str(tmp_path), batch_size=4, crop_size=16, seed=8
        )
        np.testing.assert_array_equal(first[0][0], again[0][0])
        np.testing.assert_array_equal(first[0][1], again[0][1])
        assert not np.array_equal(first[0][1], other[0][1])

    def test_crops_per_image(self, loader, tmp_path):
        write_images(str(tmp_path), count=3, size=(40, 40))
        result = batches(
            loader, str(tmp_path), batch_size=4, crop_size=8, crops_per_image=4
        )
        assert sum(len(x) for x, _ in result) == 12

    def test_rejects_bad_arguments(self, loader, tmp_path):
        write_images(str(tmp_path), count=1)
        for kwargs, match in [
            ({"crop_size": 0}, "crop_size"),
            ({"batch_size": 0}, "batch_size"),
            ({"flips": "vertical"}, "flips"),
            ({"channels": 2}, "channels"),
            ({"noise_sigma_range": (5, 1)}, "sigma_range"),
        ]:
            with pytest.raises(ValueError, match=match):
                batches(loader, str(tmp_path), **kwargs)
        with pytest.raises(ValueError, match="targets"):
            batches(loader, str(tmp_path), "relight")
        with pytest.raises(ValueError, match="noise"):
            batches(
                loader, str(tmp_path), "colorize_lab", noise_sigma_range=(5, 5)
            )


class TFDataTest:
    @pytest.mark.backend_independent
    def test_new_draws_each_pass_unless_fixed(self, tmp_path):
        write_images(str(tmp_path), count=4, size=(40, 40))
        dataset = image_dataset(str(tmp_path), batch_size=4, crop_size=16)
        first, second = [next(iter(dataset))[1].numpy() for _ in range(2)]
        assert not np.array_equal(first, second)
        fixed = image_dataset(
            str(tmp_path),
            batch_size=4,
            crop_size=16,
            rerandomize_each_iteration=False,
        )
        first, second = [
            [x.numpy() for x in next(iter(fixed))] for _ in range(2)
        ]
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])

    def test_repeat_and_fit(self, tmp_path):
        write_images(str(tmp_path), count=3, size=(20, 20))
        dataset = image_dataset(
            str(tmp_path), batch_size=2, crop_size=8, repeat=True
        )
        inputs = keras.Input((None, None, 1))
        model = keras.Model(
            inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs)
        )
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])

    @pytest.mark.backend_independent
    def test_whole_images_without_crop(self, tmp_path):
        images = write_images(str(tmp_path), count=2, size=(13, 9))
        noisy, clean = next(
            iter(
                image_dataset(
                    str(tmp_path),
                    batch_size=2,
                    crop_size=None,
                    shuffle=False,
                    flips="none",
                )
            )
        )
        np.testing.assert_array_equal(clean.numpy(), np.stack(as_float(images)))


REAL = os.path.isdir(SHARED_DATA)


@pytest.mark.backend_independent
@pytest.mark.skipif(not REAL, reason="../shared/data is not present")
@pytest.mark.parametrize("loader", LOADERS)
class RealDataTest:
    def test_train400_denoising(self, loader):
        files = keras_rbdn.data.list_image_files(
            os.path.join(SHARED_DATA, "denoise", "train400")
        )[:6]
        noisy, clean = batches(loader, files, batch_size=6, seed=1)[0]
        assert clean.shape == (6, 128, 128, 1)
        sources = [
            keras_rbdn.data.read_image(path, 1).astype("float32") / 255
            for path in files
        ]
        assert all(find_crop(crop, sources) for crop in clean[:2])
        assert 8 * 0.9 < np.std(noisy - clean) * 255 < 50 * 1.1

    def test_color_training_set_lab(self, loader):
        files = keras_rbdn.data.list_image_files(
            os.path.join(SHARED_DATA, "color", "train")
        )[:4]
        lightness, ab = batches(
            loader, files, "colorize_lab", batch_size=4, seed=2
        )[0]
        assert lightness.shape == (4, 128, 128, 1) and ab.shape[-1] == 2
        assert 0 <= lightness.min() and lightness.max() <= 1.0 + 1e-5
        assert np.abs(ab).max() < 128

    def test_relight_pairs(self, loader):
        root = os.path.join(SHARED_DATA, "relight")
        pairs = keras_rbdn.data.list_relight_pairs(root, subjects=["yaleB01"])
        pairs = pairs[:4]
        source, target = batches(
            loader,
            [pair[1] for pair in pairs],
            "relight",
            targets=[pair[2] for pair in pairs],
            batch_size=4,
            seed=3,
        )[0]
        assert source.shape == target.shape == (4, 128, 128, 1)
        canonical = keras_rbdn.data.read_image(pairs[0][2], 1) / np.float32(255)
        assert all(find_crop(crop, [canonical]) for crop in target)
