"""Small generated image folders for the data tests, and crop look-ups."""

import os

import numpy as np
from PIL import Image

# ../shared/data next to the repository, when present.
SHARED_DATA = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data"
)


def write_images(folder, count=3, size=(40, 36), channels=1, seed=0, ext="png"):
    """Writes `count` random images; returns {path: uint8 pixels (H, W, C)}."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = {}
    for index in range(count):
        shape = size + ((3,) if channels == 3 else ())
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        path = os.path.join(folder, f"image_{index:02d}.{ext}")
        Image.fromarray(pixels).save(path)
        images[path] = pixels.reshape(size + (channels,))
    return images


def find_crop(crop, images, flips=("none", "horizontal", "both")):
    """Whether `crop` (H, W, C) is a window of an image, maybe flipped."""
    for image in images:
        variants = [image]
        if "horizontal" in flips or "both" in flips:
            variants.append(image[:, ::-1])
        if "both" in flips:
            variants += [image[::-1], image[::-1, ::-1]]
        for variant in variants:
            if _contains(variant, crop):
                return True
    return False


def _contains(image, crop):
    """Whether `crop` is a window of `image`: corner matches, then all."""
    size = crop.shape[0]
    rows, cols = image.shape[0] - size + 1, image.shape[1] - size + 1
    if rows < 1 or cols < 1:
        return False
    close = lambda a, b: np.all(np.abs(a - b) < 1e-6, axis=-1)  # noqa: E731
    candidates = close(image[:rows, :cols], crop[0, 0]) & close(
        image[size - 1 :, size - 1 :][:rows, :cols], crop[-1, -1]
    )
    for top, left in zip(*np.nonzero(candidates), strict=True):
        window = image[top : top + size, left : left + size]
        if np.all(np.abs(window - crop) < 1e-6):
            return True
    return False
