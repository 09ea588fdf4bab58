import os

import numpy as np
import pytest
from PIL import Image

from keras_rbdn.data import list_image_files
from keras_rbdn.data import read_image
from keras_rbdn.data.files import check_files
from keras_rbdn.data.files import mirror_pad
from tests.data.generated import write_images

# File listing, reading and checks: NumPy and Pillow only.
pytestmark = pytest.mark.backend_independent


class ListImageFilesTest:
    def test_folder_sorted_and_filtered(self, tmp_path):
        images = write_images(str(tmp_path), count=3)
        write_images(str(tmp_path), count=1, ext="jpg", seed=1)
        open(os.path.join(tmp_path, "notes.txt"), "w").close()
        files = list_image_files(str(tmp_path))
        assert files == sorted(list(images) + [str(tmp_path / "image_00.jpg")])

    def test_file_and_list(self, tmp_path):
        images = list(write_images(str(tmp_path), count=2))
        assert list_image_files(images[1]) == [images[1]]
        assert list_image_files(images[::-1]) == images[::-1]

    def test_errors_name_the_source(self, tmp_path):
        with pytest.raises(ValueError, match="missing_folder"):
            list_image_files(str(tmp_path / "missing_folder"))
        with pytest.raises(ValueError, match="No image files"):
            list_image_files(str(tmp_path))


class ReadImageTest:
    def test_gray_conversion_matches_pillow(self, tmp_path):
        path = list(write_images(str(tmp_path), channels=3, count=1))[0]
        expected = np.asarray(Image.open(path).convert("L"), "int32")
        gray = read_image(path, channels=1)[..., 0].astype("int32")
        assert np.abs(gray - expected).max() <= 1

    def test_gray_file_as_rgb(self, tmp_path):
        path, pixels = next(iter(write_images(str(tmp_path)).items()))
        rgb = read_image(path, channels=3)
        np.testing.assert_array_equal(rgb, np.repeat(pixels, 3, axis=-1))


class MirrorPadTest:
    @pytest.mark.parametrize("shape", [(5, 7, 1), (1, 1, 3), (20, 3, 1)])
    def test_matches_numpy_symmetric_pad(self, shape):
        image = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
        padded = mirror_pad(image, 16)
        pad = ((0, max(0, 16 - shape[0])), (0, max(0, 16 - shape[1])), (0, 0))
        np.testing.assert_array_equal(padded, np.pad(image, pad, "symmetric"))

    def test_large_images_untouched(self):
        image = np.zeros((20, 30, 1), np.uint8)
        assert mirror_pad(image, 16) is image


class CheckFilesTest:
    def test_unreadable_raise_names_the_file(self, tmp_path):
        files = list(write_images(str(tmp_path)))
        broken = str(tmp_path / "broken.png")
        with open(broken, "wb") as handle:
            handle.write(b"\x89PNG not really")
        with pytest.raises(ValueError, match="broken.png"):
            check_files(files + [broken], 16)
        with pytest.warns(UserWarning, match="broken.png"):
            assert check_files(files + [broken], 16, unreadable="skip") == files

    def test_truncated_file_is_unreadable(self, tmp_path):
        path = list(write_images(str(tmp_path), ext="jpg", size=(64, 64)))[0]
        data = open(path, "rb").read()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        with pytest.raises(ValueError, match="image_00.jpg"):
            check_files([path], 16)

    def test_small_images(self, tmp_path):
        large = list(write_images(str(tmp_path / "a"), size=(20, 20)))
        small = list(write_images(str(tmp_path / "b"), size=(8, 30), count=1))
        assert check_files(large + small, 16) == large + small
        with pytest.warns(UserWarning, match="smaller than"):
            assert check_files(large + small, 16, small_images="skip") == large
        with pytest.raises(ValueError, match="No usable image"):
            with pytest.warns(UserWarning):
                check_files(small, 16, small_images="skip")

    def test_rejects_unknown_policies(self, tmp_path):
        files = list(write_images(str(tmp_path)))
        with pytest.raises(ValueError, match="small_images"):
            check_files(files, 16, small_images="resize")
        with pytest.raises(ValueError, match="unreadable"):
            check_files(files, 16, unreadable="ignore")
