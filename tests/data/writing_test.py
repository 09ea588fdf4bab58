import io
import sys

import numpy as np
import pytest
from PIL import Image
from PIL import ImageCms
from PIL import JpegImagePlugin
from PIL import PngImagePlugin

from keras_rbdn.data.files import ImageError
from keras_rbdn.data.files import decode_image as read_image
from keras_rbdn.data.writing import write_image

# Metadata and encoding kept: Pillow, NumPy and tifffile; files built
# with Pillow and read back with it.
pytestmark = pytest.mark.backend_independent

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# A profile whose header names the gray color space.
GRAY_ICC = SRGB[:16] + b"GRAY" + SRGB[20:]
DATE = "2024:05:06 07:08:09"


def camera_exif():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display.
    exif[0x010F] = "Canon"  # Make.
    exif.get_ifd(0x8769)[0x9003] = DATE  # DateTimeOriginal.
    return exif


def tags(path):
    """IFD0 tags (less the TIFF layout ones) and the EXIF directory."""
    exif = Image.open(path).getexif()
    return exif.get(0x0112), exif.get(0x010F), exif.get_ifd(0x8769)


def pixels(shape, seed=0, dtype="uint8"):
    high = 256 if dtype == "uint8" else 65536
    return np.random.default_rng(seed).integers(0, high, shape, dtype)


@pytest.fixture
def photo(tmp_path):
    """A 48 x 40 JPEG with camera EXIF, an sRGB profile, DPI and XMP, at
    quality 80 with 4:2:2 chroma."""
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels((40, 48, 3))).save(
        path,
        quality=80,
        subsampling=1,
        exif=camera_exif().tobytes(),
        icc_profile=SRGB,
        dpi=(300, 300),
        xmp=b"<x:xmpmeta>rated</x:xmpmeta>",
    )
    return path


class JpegTest:
    def test_read_as_stored_and_written_alike(self, tmp_path, photo):
        image = read_image(photo)
        assert image.pixels.shape == (40, 48, 3)  # Not turned upright.
        output = tmp_path / "out.jpg"
        write_image(output, image.pixels, like=image)
        source, written = Image.open(photo), Image.open(output)
        assert written.info["exif"] == source.info["exif"]
        assert tags(output) == (6, "Canon", {0x9003: DATE})
        assert written.info["icc_profile"] == SRGB
        assert written.info["dpi"] == (300, 300)
        assert written.info["xmp"] == b"<x:xmpmeta>rated</x:xmpmeta>"
        assert written.quantization == source.quantization
        assert JpegImagePlugin.get_sampling(written) == 1

    def test_multi_picture_jpeg_is_a_jpeg(self, tmp_path):
        # Phones write MPO files: a JPEG and more pictures after it.
        source = tmp_path / "phone.jpg"
        first = Image.fromarray(pixels((40, 48, 3)))
        exif = camera_exif().tobytes()
        first.save(
            source, "MPO", save_all=True, append_images=[first], exif=exif
        )
        assert Image.open(source).format == "MPO"
        image = read_image(source)
        output = tmp_path / "out.jpg"
        write_image(output, image.pixels, like=image)
        written = Image.open(output)
        assert written.quantization == Image.open(source).quantization
        assert tags(output) == (6, "Canon", {0x9003: DATE})

    def test_quality_replaces_the_tables(self, tmp_path, photo):
        image = read_image(photo)
        output = tmp_path / "out.jpg"
        write_image(output, image.pixels, like=image, quality=60)
        reference = io.BytesIO()
        Image.open(photo).save(reference, "JPEG", quality=60)
        written = Image.open(output).quantization
        assert written == Image.open(reference).quantization
        assert written != Image.open(photo).quantization
        assert JpegImagePlugin.get_sampling(Image.open(output)) == 1

    @pytest.mark.parametrize("extension", ["png", "webp", "tif"])
    def test_other_formats_keep_exif_and_profile(
        self, tmp_path, photo, extension
    ):
        image = read_image(photo)
        output = tmp_path / f"out.{extension}"
        write_image(output, image.pixels, like=image)
        assert tags(output) == (6, "Canon", {0x9003: DATE})
        assert Image.open(output).info["icc_profile"] == SRGB
        if extension == "webp":  # A JPEG's pixels are not lossless.
            assert b"VP8L" not in output.read_bytes()
        else:
            dpi = Image.open(output).info["dpi"]
            assert dpi == pytest.approx((300, 300), abs=0.01)

    def test_png_input_gives_quality_95_and_full_chroma(self, tmp_path):
        source = tmp_path / "in.png"
        Image.fromarray(pixels((40, 48, 3))).save(source)
        output = tmp_path / "out.jpg"
        image = read_image(source)
        write_image(output, image.pixels, like=image)
        reference = io.BytesIO()
        Image.open(source).save(reference, "JPEG", quality=95)
        written = Image.open(output)
        assert written.quantization == Image.open(reference).quantization
        assert JpegImagePlugin.get_sampling(written) == 0

    def test_bad_quality_is_refused(self, tmp_path, photo):
        image = read_image(photo)
        with pytest.raises(ValueError, match="quality=101"):
            write_image(tmp_path / "o.jpg", image.pixels, quality=101)


class LosslessTest:
    def test_lossless_webp_round_trip_is_exact(self, tmp_path):
        rgba = pixels((40, 48, 4), seed=1)
        source = tmp_path / "in.webp"
        exif = camera_exif().tobytes()
        Image.fromarray(rgba, "RGBA").save(
            source, lossless=True, exact=True, exif=exif, icc_profile=SRGB
        )
        image = read_image(source)
        assert image.metadata.lossless
        output = tmp_path / "out.webp"
        write_image(output, image.pixels, alpha=image.alpha, like=image)
        assert b"VP8L" in output.read_bytes()
        np.testing.assert_array_equal(np.asarray(Image.open(output)), rgba)
        assert tags(output) == (6, "Canon", {0x9003: DATE})
        assert Image.open(output).info["icc_profile"] == SRGB

    def test_lossy_webp_stays_lossy(self, tmp_path):
        source = tmp_path / "in.webp"
        Image.fromarray(pixels((40, 48, 3))).save(source, quality=70)
        image = read_image(source)
        assert not image.metadata.lossless
        output = tmp_path / "out.webp"
        write_image(output, image.pixels, like=image)
        assert b"VP8 " in output.read_bytes()
        assert b"VP8L" not in output.read_bytes()

    def test_png_text_dpi_profile_and_exif(self, tmp_path):
        chunks = PngImagePlugin.PngInfo()
        chunks.add_text("Title", "scan 12")
        chunks.add_text("Comment", "épreuve ✓")  # Not Latin-1: iTXt.
        source = tmp_path / "in.png"
        Image.fromarray(pixels((40, 48, 3))).save(
            source,
            pnginfo=chunks,
            dpi=(600, 600),
            icc_profile=SRGB,
            exif=camera_exif().tobytes(),
        )
        image = read_image(source)
        output = tmp_path / "out.png"
        write_image(output, image.pixels, like=image)
        written = Image.open(output)
        assert written.text == {"Title": "scan 12", "Comment": "épreuve ✓"}
        assert written.info["dpi"] == pytest.approx((600, 600), abs=0.01)
        assert written.info["icc_profile"] == SRGB
        assert tags(output) == (6, "Canon", {0x9003: DATE})

    def test_16_bit_rgb_png_keeps_values_and_text(self, tmp_path):
        import tensorflow as tf

        rgb = pixels((40, 48, 3), seed=2, dtype="uint16")
        source = tmp_path / "in.png"
        source.write_bytes(tf.io.encode_png(rgb).numpy())
        image = read_image(source)
        image.metadata.text = {"Title": "wide"}
        image.metadata.icc_profile = SRGB
        output = tmp_path / "out.png"
        write_image(output, image.pixels, like=image)
        written = tf.io.decode_png(output.read_bytes(), dtype=tf.uint16)
        np.testing.assert_array_equal(written.numpy(), rgb)
        assert Image.open(output).text == {"Title": "wide"}
        assert Image.open(output).info["icc_profile"] == SRGB


class TiffTest:
    def test_16_bit_rgb_tiff_keeps_values_and_tags(self, tmp_path):
        tifffile = pytest.importorskip("tifffile")
        rgb = pixels((40, 48, 3), seed=3, dtype="uint16")
        source = tmp_path / "in.tif"
        tifffile.imwrite(
            source,
            rgb,
            photometric="rgb",
            compression="zlib",
            resolution=(300, 300),
            resolutionunit="INCH",
            iccprofile=SRGB,
            extratags=[(0x010F, "s", 0, "Nikon", True)],
        )
        image = read_image(source)
        assert image.bit_depth == 16
        output = tmp_path / "out.tif"
        write_image(output, image.pixels, like=image)
        np.testing.assert_array_equal(tifffile.imread(output), rgb)
        written = Image.open(output)
        assert written.info["compression"] == "tiff_adobe_deflate"
        assert written.info["icc_profile"] == SRGB
        assert written.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert written.getexif()[0x010F] == "Nikon"

    @pytest.mark.parametrize("channels", [2, 4])
    def test_16_bit_tiff_with_alpha_round_trip(self, tmp_path, channels):
        # Pillow opens neither file: tifffile reads them.
        tifffile = pytest.importorskip("tifffile")
        stored = pixels((40, 48, channels), seed=5, dtype="uint16")
        source = tmp_path / "in.tif"
        tifffile.imwrite(
            source,
            stored,
            photometric="rgb" if channels == 4 else "minisblack",
            extrasamples=("unassalpha",),
        )
        image = read_image(source)
        assert image.bit_depth == 16 and image.alpha is not None
        output = tmp_path / "out.tif"
        write_image(output, image.pixels, alpha=image.alpha, like=image)
        np.testing.assert_array_equal(tifffile.imread(output), stored)

    def test_without_tifffile(self, tmp_path, monkeypatch):
        tifffile = pytest.importorskip("tifffile")
        rgb = pixels((40, 48, 3), seed=6, dtype="uint16")
        source = tmp_path / "in.tif"
        tifffile.imwrite(source, rgb, photometric="rgb")
        monkeypatch.setitem(sys.modules, "tifffile", None)
        with pytest.warns(UserWarning, match="install tifffile"):
            image = read_image(source)
        assert image.bit_depth == 8
        np.testing.assert_array_equal(
            np.round(image.pixels * 255), rgb >> 8
        )
        output = tmp_path / "out.tif"
        with pytest.raises(ImageError, match="out.tif: .* needs tifffile"):
            write_image(output, image.pixels, bit_depth=16)
        assert not output.exists()

    @pytest.mark.parametrize("compression", ["tiff_lzw", "raw"])
    def test_16_bit_gray_tiff_keeps_values_and_compression(
        self, tmp_path, compression
    ):
        gray = pixels((40, 48), seed=4, dtype="uint16")
        source = tmp_path / "in.tif"
        # No orientation: Pillow turns a TIFF upright on reading.
        exif = Image.Exif()
        exif[0x010F] = "Canon"
        if compression == "raw":  # libtiff cannot write the EXIF IFD.
            exif.get_ifd(0x8769)[0x9003] = DATE
        Image.fromarray(gray).save(
            source,
            compression=compression,
            exif=exif.tobytes(),
            dpi=(150, 150),
        )
        image = read_image(source)
        assert image.bit_depth == 16
        output = tmp_path / "out.tif"
        write_image(output, image.pixels, like=image)
        written = Image.open(output)
        np.testing.assert_array_equal(np.asarray(written), gray)
        assert written.info["compression"] == compression
        assert written.info["dpi"] == pytest.approx((150, 150), abs=0.01)
        assert tags(output) == tags(source)
        assert tags(output)[1] == "Canon"

    def test_compressed_tiff_drops_only_the_exif_directory(self, tmp_path):
        source = tmp_path / "in.tif"
        exif = camera_exif()
        del exif[0x0112]
        Image.fromarray(pixels((40, 48, 3))).save(source, exif=exif.tobytes())
        image = read_image(source)
        assert tags(source) == (None, "Canon", {0x9003: DATE})
        image.metadata.tiff_compression = "tiff_adobe_deflate"
        output = tmp_path / "out.tif"
        write_image(output, image.pixels, like=image)
        assert Image.open(output).info["compression"] == "tiff_adobe_deflate"
        assert tags(output) == (None, "Canon", {})


class ColorProfileTest:
    def test_gray_profile_is_not_written_on_color(self, tmp_path):
        source = tmp_path / "old.jpg"
        exif = camera_exif().tobytes()
        Image.fromarray(pixels((40, 48))).save(
            source, exif=exif, icc_profile=GRAY_ICC
        )
        image = read_image(source)
        color = np.repeat(image.pixels, 3, axis=-1)
        write_image(tmp_path / "color.jpg", color, like=image)
        write_image(tmp_path / "gray.jpg", image.pixels, like=image)
        assert "icc_profile" not in Image.open(tmp_path / "color.jpg").info
        assert tags(tmp_path / "color.jpg")[:2] == (6, "Canon")
        gray = Image.open(tmp_path / "gray.jpg")
        assert gray.info["icc_profile"] == GRAY_ICC
        assert gray.quantization == Image.open(source).quantization


def test_unknown_output_extension_names_the_file(tmp_path):
    with pytest.raises(ImageError, match="out.xyz: unsupported"):
        write_image(tmp_path / "out.xyz", np.zeros((4, 4)))
