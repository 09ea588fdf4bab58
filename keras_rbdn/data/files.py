"""Image files: listing, reading and checking them.

`decode_image` is the one image file reader: the CLI and
`keras_rbdn.inference` use it as `read_image`, the NumPy loader through
`read_image` here (8 bits), and it decides which files the tf.data
pipeline and the NumPy loader keep. Pillow decodes, except 16-bit color
PNGs (TensorFlow) and TIFFs (`tifffile`), when those are installed.
"""

import dataclasses
import io
import os
import warnings

import numpy as np

from keras_rbdn.checks import check_choice
from keras_rbdn.data.metadata import Metadata
from keras_rbdn.data.metadata import read_metadata

# File name extensions of the images that folders are listed for, here
# and in `keras_rbdn.inference`.
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)
# RGB -> gray weights (ITU-R BT.601 luma, as PIL's "L" mode and
# `tf.image.rgb_to_grayscale`); applied the same way in both pipelines.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
SMALL_IMAGE_POLICIES = ("pad", "skip")
UNREADABLE_POLICIES = ("raise", "skip")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_COLOR_CHANNELS = {1: "gray", 2: "gray + alpha", 3: "RGB", 4: "RGBA"}


def list_image_files(source):
    """Lists image files from a folder, a file or a list of files.

    Args:
        source: str or list of str. A folder (its image files, sorted by
            name, not recursive), one image file, or a list of files (kept
            in order).

    Returns:
        A list of file paths.
    """
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if os.path.isdir(source):
            files = sorted(
                os.path.join(source, name)
                for name in os.listdir(source)
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
        elif os.path.isfile(source):
            files = [source]
        else:
            raise ValueError(
                "`source` must be a folder, an image file or a list of "
                f"files. Received: source={source!r} (does not exist)"
            )
    else:
        files = [os.fspath(path) for path in source]
    if not files:
        raise ValueError(
            f"No image files found. Received: source={source!r} "
            f"(looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


class ImageError(ValueError):
    """An image file that cannot be read or written; the message names it."""


@dataclasses.dataclass
class Image:
    """Decoded image pixels and what is needed to write them back alike.

    Args:
        pixels: float32 array `(height, width, channels)` in [0, 1], with 1
            (gray) or 3 (RGB) channels.
        alpha: float32 array `(height, width)` in [0, 1], or `None`.
        bit_depth: int. 8 or 16, the bits per channel of the file.
        metadata: `Metadata` or `None`. The file's metadata and encoding,
            which `write_image(..., like=image)` keeps.
    """

    pixels: np.ndarray
    alpha: np.ndarray = None
    bit_depth: int = 8
    metadata: Metadata = None

    @property
    def channels(self):
        return self.pixels.shape[-1]


# (bit depth, color type) of 16-bit gray + alpha, RGB and RGBA PNGs.
_PNG16_COLOR = ((16, 2), (16, 4), (16, 6))


def _png_header(data):
    """(bit depth, color type) from a PNG's IHDR chunk."""
    return data[24], data[25]


def _decode_png16_color(path, data):
    """16-bit gray + alpha, RGB or RGBA PNG, which Pillow reads as 8 bits.

    Needs TensorFlow's PNG decoder; without TensorFlow, `None` (Pillow
    then reads the file's 8 most significant bits).
    """
    try:
        import tensorflow as tf
    except ModuleNotFoundError:
        return None

    try:
        array = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        message = str(error).strip().splitlines()[0]
        raise ImageError(f"{path}: not a readable PNG ({message})") from None
    return array.astype("float32") / 65535.0, 16


def _decode_tiff16_color(path, data):
    """16-bit gray + alpha, RGB or RGBA TIFF, which Pillow reads as 8 bits
    (or, gray + alpha, not at all).

    Needs `tifffile`; without it, `None`. Pixels are read as stored.
    """
    try:
        import tifffile
    except ModuleNotFoundError:
        return None
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        page = tiff.pages[0]
        array = page.asarray()
        if page.axes.startswith("S"):  # Planar: one plane per channel.
            array = np.moveaxis(array, 0, -1)
    if array.dtype != np.uint16 or array.ndim != 3:
        raise ImageError(
            f"{path}: unsupported TIFF of {array.dtype} {array.shape}"
        )
    return array.astype("float32") / 65535.0, 16


def _wide_decoder(image, data):
    """The decoder of a 16-bit color file that Pillow reads as 8 bits, or
    `None` for a file Pillow reads fully."""
    if image.format == "PNG" and _png_header(data) in _PNG16_COLOR:
        return _decode_png16_color
    if (
        image.format == "TIFF"
        and not image.mode.startswith("I")
        and np.max(image.tag_v2.get(258, 8)) == 16
    ):
        return _decode_tiff16_color
    return None


def _pillow_pixels(path, image):
    """(pixels, bit depth) of an image opened with Pillow; loads it."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("I;16", "I;16B", "I;16L") or (
        mode == "I" and image.format == "PNG"
    ):
        # Pillow opens 16-bit gray PNGs as 32-bit "I".
        array = np.asarray(image).astype("float32") / 65535.0
        return array[..., None], 16
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageError(
            f"{path}: unsupported image mode {mode!r} (supported: gray, "
            "gray + alpha, RGB, RGBA; 8 or 16 bits)"
        )
    array = np.asarray(image).astype("float32") / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return array, 8


def _decode(path, data):
    """(pixels, bit depth, `Metadata`) of an image file's content."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as image:
            decoder = _wide_decoder(image, data)
            decoded = decoder(path, data) if decoder else None
            if decoder is _decode_tiff16_color and decoded is None:
                warnings.warn(
                    f"{path}: reading this 16-bit color TIFF at 8 bits; "
                    "install tifffile (pip install tifffile) to keep 16",
                    stacklevel=4,
                )
            if decoded is None:
                decoded = _pillow_pixels(path, image)
            # After loading: a TIFF is turned upright on load.
            return (*decoded, read_metadata(image, data))
    except UnidentifiedImageError:
        if data.startswith(TIFF_SIGNATURES):
            decoded = _decode_tiff16_color(path, data)
            if decoded is not None:
                return (*decoded, Metadata(format="TIFF"))
        raise ImageError(f"{path}: not an image file") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageError):
            raise
        message = str(error).strip().splitlines()[0] if str(error) else ""
        raise ImageError(f"{path}: cannot read image ({message})") from None


def decode_image(path):
    """Reads an image file as float32 pixels in [0, 1]: the one image reader.

    Args:
        path: str or path-like. A gray, gray + alpha, RGB or RGBA image;
            PNG or TIFF (8 or 16 bits; 16-bit color TIFF needs
            `tifffile`), JPEG, BMP, GIF or WebP.

    Returns:
        An `Image`: `pixels` `(height, width, 1 or 3)` as stored (a TIFF
        that Pillow reads is turned upright and its orientation tag
        dropped), `alpha` or `None`, the file's `bit_depth`, and its
        `metadata` (EXIF, ICC profile, DPI, encoding) for
        `write_image(..., like=image)`.

    Raises:
        ImageError: the file is missing, not an image, or of an unsupported
            kind; the message is one line and starts with the path.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ImageError(f"{path}: cannot open ({error.strerror})") from None
    if not data:
        raise ImageError(f"{path}: empty file")
    if data.startswith(PNG_SIGNATURE) and len(data) < 26:
        raise ImageError(f"{path}: truncated PNG")
    array, bit_depth, metadata = _decode(path, data)
    channels = array.shape[-1]
    if channels not in _COLOR_CHANNELS:
        raise ImageError(f"{path}: unsupported channel count {channels}")
    alpha = None
    if channels in (2, 4):
        alpha = array[..., -1]
        array = array[..., :-1]
    if min(array.shape[:2]) < 1:
        raise ImageError(f"{path}: empty image {array.shape[:2]}")
    return Image(
        pixels=np.ascontiguousarray(array),
        alpha=alpha,
        bit_depth=bit_depth,
        metadata=metadata,
    )


def to_channels(pixels, channels):
    """Converts `(H, W, C)` pixels between gray (1) and RGB (3).

    RGB to gray uses the ITU-R BT.601 luma weights; gray to RGB repeats the
    channel.
    """
    if pixels.shape[-1] == channels:
        return pixels
    if pixels.shape[-1] == 3 and channels == 1:
        weights = np.array(GRAY_WEIGHTS, dtype="float32")
        return (pixels @ weights)[..., None].astype("float32")
    if pixels.shape[-1] == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    raise ValueError(
        "Only gray (1) and RGB (3) conversions are supported. Received: "
        f"{pixels.shape[-1]} channels -> channels={channels}"
    )


def to_gray(rgb):
    """uint8 RGB `(..., 3)` -> uint8 gray `(..., 1)` with `GRAY_WEIGHTS`."""
    gray = np.asarray(rgb, "float32") @ np.asarray(GRAY_WEIGHTS, "float32")
    return np.round(gray)[..., None].astype("uint8")


def read_image(path, channels):
    """Reads an image file as uint8 `(height, width, channels)`.

    `decode_image`'s pixels rounded to 8 bits (16-bit files lose their
    low byte), alpha dropped; gray files read as RGB get three equal
    channels, RGB files read as gray are converted with `GRAY_WEIGHTS`.

    Raises:
        ImageError: naming the file, if it cannot be decoded.
    """
    pixels = decode_image(path).pixels
    image = np.round(pixels * 255.0).astype("uint8")
    if image.shape[-1] == channels:
        return image
    return to_gray(image) if channels == 1 else np.repeat(image, 3, axis=-1)


def image_size(path):
    """(height, width) of an image file, decoding it fully to check it."""
    return decode_image(path).pixels.shape[:2]


def check_files(files, crop_size, small_images="pad", unreadable="raise"):
    """Applies the unreadable-file and small-image policies to `files`.

    Every file is decoded once (with Pillow).

    Args:
        files: list of paths, or of tuples of paths that form one example
            (a relighting source and its target).
        crop_size: int or `None`. The training crop size.
        small_images: `"pad"` keeps images smaller than the crop (they are
            padded by mirroring later); `"skip"` drops them with a warning.
        unreadable: `"raise"` raises a `ValueError` that names the first
            file that cannot be decoded; `"skip"` drops it with a warning.

    Returns:
        The list of kept entries, in order.
    """
    check_choice("small_images", small_images, SMALL_IMAGE_POLICIES)
    check_choice("unreadable", unreadable, UNREADABLE_POLICIES)
    kept = []
    for entry in files:
        paths = entry if isinstance(entry, tuple) else (entry,)
        try:
            sizes = [image_size(path) for path in paths]
        except ValueError as error:
            if unreadable == "raise":
                raise
            warnings.warn(
                f"Skipping an unreadable image: {error}", stacklevel=3
            )
            continue
        if len(set(sizes)) > 1:
            raise ValueError(
                f"The images of one example must have the same size. "
                f"Received: {dict(zip(paths, sizes, strict=True))}"
            )
        height, width = sizes[0]
        if (
            crop_size
            and small_images == "skip"
            and min(height, width) < (crop_size)
        ):
            warnings.warn(
                f"Skipping {paths[0]!r}: {height}x{width} is smaller than "
                f"the {crop_size}x{crop_size} crop",
                stacklevel=3,
            )
            continue
        kept.append(entry)
    if not kept:
        raise ValueError(
            f"No usable image left out of {len(files)} "
            f"(small_images={small_images!r}, unreadable={unreadable!r})"
        )
    return kept


def mirror_pad(image, size):
    """Extends `image` (H, W, C) by mirroring to at least `size` x `size`.

    Repeats the image and its mirror image as often as needed, so any size
    works (even a 1 x 1 image).
    """
    height, width = image.shape[:2]
    if height >= size and width >= size:
        return image
    out_height, out_width = max(size, height), max(size, width)
    rows = np.concatenate([image, image[::-1]], axis=0)
    rows = np.tile(rows, (-(-out_height // (2 * height)), 1, 1))
    columns = np.concatenate([rows, rows[:, ::-1]], axis=1)
    columns = np.tile(columns, (1, -(-out_width // (2 * width)), 1))
    return columns[:out_height, :out_width]
