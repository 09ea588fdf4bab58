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
    size = crop.shape[0]
    for image in images:
        variants = [image]
        if "horizontal" in flips or "both" in flips:
            variants.append(image[:, ::-1])
        if "both" in flips:
            variants += [image[::-1], image[::-1, ::-1]]
        for variant in variants:
            windows = np.lib.stride_tricks.sliding_window_view(
                variant, (size, size), axis=(0, 1)
            )  # (rows, cols, C, size, size)
            windows = np.moveaxis(windows, 2, -1)
            if np.any(np.all(np.abs(windows - crop) < 1e-6, axis=(2, 3, 4))):
                return True
    return False
