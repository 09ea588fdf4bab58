"""Image files: listing, reading and checking them, without TensorFlow.

Shared by the tf.data pipeline and the NumPy loader, so that both see the
same files, drop the same ones and convert colors the same way.
"""

import os
import warnings

import numpy as np
from PIL import Image

from keras_rbdn.checks import check_choice

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


def to_gray(rgb):
    """uint8 RGB `(..., 3)` -> uint8 gray `(..., 1)` with `GRAY_WEIGHTS`."""
    gray = np.asarray(rgb, "float32") @ np.asarray(GRAY_WEIGHTS, "float32")
    return np.round(gray)[..., None].astype("uint8")


def read_image(path, channels):
    """Reads an image file as uint8 `(height, width, channels)`.

    Gray files read as RGB get three equal channels; RGB files read as gray
    are converted with `GRAY_WEIGHTS`; alpha is dropped.

    Raises:
        ValueError: naming the file, if it cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"Cannot read image file {path!r}: {error}") from None
    return rgb if channels == 3 else to_gray(rgb)


def image_size(path):
    """(height, width) of an image file, decoding it fully to check it."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.height, image.width
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"Cannot read image file {path!r}: {error}") from None


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
