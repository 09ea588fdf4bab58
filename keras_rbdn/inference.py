"""Image files in, image files out: I/O and any-size, tiled inference.

Reading (`read_image`) accepts gray, gray + alpha, RGB and RGBA images, 8
or 16 bits per channel (16-bit PNG and TIFF included, read exactly), and
returns float32 pixels in [0, 1] with the alpha channel kept aside so that
it can be written back unchanged, and the file's metadata (EXIF, ICC
profile, DPI, encoding). Anything else raises an `ImageError` whose
one-line message names the file.

Writing (`write_image`, `keras_rbdn.data.writing`) with `like=image`
keeps that metadata and encoding; it goes to a temporary file in the
destination folder that is then renamed into place, so a reader never
sees a partial image, and refuses to replace an existing file unless
asked to.

Inference (`predict_image`) runs a model on an image of any size. Large
images go through overlapping tiles of one shape (`keras_rbdn.tiling`),
sized from the network and the memory available: each tile reaches
`margin` pixels beyond the part of the output it provides, and tile
origins are multiples of the network's pooling stride. With a margin at
least the network's receptive radius (`receptive_radius`) the tiled
output equals the whole-image output; the default margin, 70% of it,
stays within 0.01 of a gray level of it on the shipped denoisers, with
no seams, while memory stays bounded by the tile size.
"""

import functools
import math
import os
import sys
import time

import keras
import numpy as np

from keras_rbdn.data.files import IMAGE_EXTENSIONS
from keras_rbdn.data.files import Image  # noqa: F401
from keras_rbdn.data.files import ImageError
from keras_rbdn.data.files import decode_image as read_image  # noqa: F401
from keras_rbdn.data.files import to_channels
from keras_rbdn.data.writing import write_image  # noqa: F401


def list_images(directory):
    """Sorted paths of the image files (by extension) in `directory`."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ImageError(f"{directory}: not a directory")
    paths = sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not paths:
        raise ImageError(f"{directory}: no image files")
    return paths


def read_folder(directory, mode="gray"):
    """Reads every image of a folder as float32 arrays in [0, 1].

    Args:
        directory: str or path-like. Folder of image files.
        mode: str. `"gray"` (1 channel), `"rgb"` (3 channels) or
            `"keep"` (as stored, alpha dropped). Defaults to `"gray"`.

    Returns:
        A list of `(height, width, channels)` arrays, in sorted file order.
    """
    if mode not in ("gray", "rgb", "keep"):
        raise ValueError(
            f"`mode` must be 'gray', 'rgb' or 'keep'. Received: mode={mode!r}"
        )
    images = []
    for path in list_images(directory):
        pixels = read_image(path).pixels
        if mode != "keep":
            pixels = to_channels(pixels, 1 if mode == "gray" else 3)
        images.append(pixels)
    return images


# Inference on images of any size.


def rbdns_in(model):
    """Every `RBDN` in `model` (itself included), depth first; no nesting.

    An RBDN's own layers are not searched.
    """
    from keras_rbdn.models.rbdn import RBDN

    if isinstance(model, RBDN):
        yield model
        return
    for layer in getattr(model, "layers", []):
        yield from rbdns_in(layer)


def find_rbdn(model):
    """The first `RBDN` inside `model` (or `model` itself), or `None`."""
    return next(rbdns_in(model), None)


def find_network(model):
    """The image network inside `model`: an `OpponentDenoiser` if there is
    one (its two RBDNs run in sequence), else the first `RBDN`, else
    `None`."""
    from keras_rbdn.models.opponent_denoiser import OpponentDenoiser

    for layer in model._flatten_layers(include_self=True):
        if isinstance(layer, OpponentDenoiser):
            return layer
    return find_rbdn(model)


def receptive_radius(network):
    """How far (in input pixels) an RBDN output pixel can see.

    For an `OpponentDenoiser`, the sum of its two RBDNs' radii: the chroma
    RBDN reads the luminance RBDN's output.

    Along the longest path: `conv1` and `deconv1` (K x K), the first pool
    and unpool (one pixel each), the trunk (D convolutions T x T, dilated,
    at scale 1/2), and each branch B_k at scale s = 2^k: two 3 x 3
    convolutions and a deconvolution (s, 2s, s pixels) plus its pool and
    unpool (s pixels each), 6s in all. Outputs farther than this from a
    tile's cut edges do not depend on the cut.

    Args:
        network: An `RBDN` or an `OpponentDenoiser`.

    Returns:
        The radius in pixels, an int.
    """
    from keras_rbdn.models.opponent_denoiser import OpponentDenoiser

    if isinstance(network, OpponentDenoiser):
        return receptive_radius(network.luma) + receptive_radius(network.chroma)
    radius = network.kernel_size - 1  # conv1 and deconv1.
    radius += 2  # pool1 and unpool1 windows.
    radius += (
        network.trunk_depth
        * (network.trunk_kernel_size - 1)
        // 2
        * network.trunk_dilation_rate
        * 2
    )
    radius += sum(6 * 2**level for level in range(1, network.branches + 1))
    return radius


# The default tile margin as a fraction of the receptive radius. The
# influence of far pixels fades long before the radius: with this margin
# the shipped denoisers' tiled outputs differ from their whole-image
# outputs by at most 0.01 of a gray level (of 255), and the margins cost
# 30% fewer pixels (docs/performance.md, "Photos").
MARGIN_FRACTION = 0.7


def default_margin(network):
    """The tile margin `predict_image` uses by default for `network`:
    `MARGIN_FRACTION` of its receptive radius, rounded up."""
    return math.ceil(MARGIN_FRACTION * receptive_radius(network))


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def _opponent_parts(model):
    """`(task_input, denoiser, task_output)` when `model` is an
    `OpponentDenoiser`, bare (`(None, denoiser, None)`) or as
    `image_model` wraps it; else `None`."""
    from keras_rbdn.models.image_model import TaskInput
    from keras_rbdn.models.image_model import TaskOutput
    from keras_rbdn.models.opponent_denoiser import OpponentDenoiser

    if isinstance(model, OpponentDenoiser):
        return None, model, None
    layers = [
        layer
        for layer in getattr(model, "layers", [])
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    types = (TaskInput, OpponentDenoiser, TaskOutput)
    if len(layers) == 3 and all(map(isinstance, layers, types)):
        return tuple(layers)
    return None


def network_passes(model):
    """Network passes of `predict_image` over each pixel of an image: 3
    for an `OpponentDenoiser` (luminance, then each chroma plane), else
    1."""
    return 3 if _opponent_parts(model) is not None else 1


def _predict_tiles(predict, network, pixels, tile_size, margin, progress):
    """`predict` on `pixels` in tiles of one shape (`tiling.plan_tiles`).

    `network` (an RBDN or `None`) gives the pooling stride, the default
    margin and the filters that size the tiles; `progress` is called with
    the output pixels of each tile.
    """
    from keras_rbdn import tiling

    stride = 2 ** (network.branches + 1) if network is not None else 1
    if margin is None:
        if network is None:
            raise ValueError(
                "No RBDN found in the model to derive the tile margin "
                "from; pass `margin`. Received: margin=None"
            )
        margin = default_margin(network)
    margin = _round_up(int(margin), stride)
    height, width = pixels.shape[:2]
    if tile_size is None:
        filters = network.filters if network is not None else 64
        max_pixels = tiling.tile_pixel_budget(filters, height * width)
    else:
        smallest = 2 * margin + 2 * stride - 1
        if tile_size < smallest:
            raise ValueError(
                f"`tile_size` must be at least 2 * margin + 2 * {stride} - 1"
                f" = {smallest}. Received: tile_size={tile_size}"
            )
        max_pixels = tile_size * tile_size
    rows, columns = tiling.plan_tiles(
        height, width, margin, stride, max_pixels, max_side=tile_size
    )
    output = None
    for top, bottom, core_top, core_bottom in rows:
        for left, right, core_left, core_right in columns:
            tile = pixels[None, top:bottom, left:right]
            result = np.asarray(predict(tile), dtype="float32")[0]
            if output is None:
                output = np.empty(
                    (height, width, result.shape[-1]), dtype="float32"
                )
            output[core_top:core_bottom, core_left:core_right] = result[
                core_top - top : core_bottom - top,
                core_left - left : core_right - left,
            ]
            if progress is not None:
                progress((core_bottom - core_top) * (core_right - core_left))
    return output


# Rows of the image that a task's output layer converts at a time.
_ROWS_PER_BAND = 256


def _predict_opponent(parts, pixels, tile_size, margin, progress):
    """An `OpponentDenoiser` in two tiled passes, each with its own margin:
    the luminance RBDN over the whole image, then the chroma RBDN on each
    chroma plane guided by the cleaned luminance."""
    from keras_rbdn.layers.color import opponent_planes_to_rgb
    from keras_rbdn.layers.color import rgb_to_opponent_planes
    from keras_rbdn.models.opponent_denoiser import clean_opponent_planes
    from keras_rbdn.models.tasks import get_task

    task_input, denoiser, task_output = parts
    image = pixels  # In NumPy: no copy where the task reads the image.
    if task_input is not None:
        image = get_task(task_input.task).to_network_input(pixels, xp=np)

    def tiled(network):
        return functools.partial(
            _predict_tiles,
            network.predict_on_batch,
            network,
            tile_size=tile_size,
            margin=margin,
            progress=progress,
        )

    clean = clean_opponent_planes(
        rgb_to_opponent_planes(image, xp=np),
        tiled(denoiser.luma),
        tiled(denoiser.chroma),
        np.concatenate,
        np.add,
    )
    rgb = opponent_planes_to_rgb(clean, xp=np)
    del clean
    if task_output is not None:
        # A band of rows at a time: no full-size copies in the backend.
        for top in range(0, rgb.shape[0], _ROWS_PER_BAND):
            band = slice(top, top + _ROWS_PER_BAND)
            rgb[band] = np.asarray(
                task_output([image[None, band], rgb[None, band]])
            )[0]
    return rgb


def predict_image(model, pixels, tile_size=None, margin=None, progress=None):
    """Runs an image -> image model on one image of any size.

    Large images are processed in overlapping tiles, all of one shape, so
    the memory used is bounded by the tile size, not the image size, and
    the network is traced once per image shape. Each tile contributes only
    its core, at least `margin` pixels away from the cut edges, and tile
    origins are multiples of the network's pooling stride
    2^(branches + 1), so every pooling window matches the whole-image one:
    with a margin of the receptive radius the tiled result equals the
    whole-image result up to floating-point rounding, and with the
    default, `MARGIN_FRACTION` of it, the shipped denoisers stay within
    0.01 of a gray level (of 255) of it. Of the tilings
    that fit, the one that computes the fewest pixels is used
    (`keras_rbdn.tiling`).

    An `OpponentDenoiser` (bare or in an image model) runs in two tiled
    passes, each with the margin of its own RBDN: the luminance RBDN over
    the whole image, then the chroma RBDN on each chroma plane.

    Args:
        model: A Keras model taking `(batch, height, width, channels)`
            float32 images, such as `keras_rbdn.load("denoise")`.
        pixels: float32 array `(height, width, channels)`.
        tile_size: int or `None`. Largest tile side; `None` sizes the
            tiles from the network and the memory available
            (`tiling.tile_pixel_budget`). Defaults to `None`.
        margin: int or `None`. Pixels of context beyond each tile's core;
            `None` uses `default_margin` of each RBDN run. Rounded up to
            the pooling stride. Defaults to `None`.
        progress: callable or `None`. Called after each tile with the
            number of output pixels it provided (a pass over the image
            adds up to height x width). Defaults to `None`.

    Returns:
        float32 array `(height, width, output_channels)`.
    """
    pixels = np.asarray(pixels, dtype="float32")
    if pixels.ndim != 3:
        raise ValueError(
            "`pixels` must be (height, width, channels). Received: shape "
            f"{pixels.shape}"
        )
    parts = _opponent_parts(model)
    if parts is not None:
        return _predict_opponent(parts, pixels, tile_size, margin, progress)
    return _predict_tiles(
        model.predict_on_batch,
        find_network(model),
        pixels,
        tile_size,
        margin,
        progress,
    )


def apply_model(
    model,
    pixels,
    tile_size=None,
    margin=None,
    color_space="opponent",
    ensemble=1,
    progress=False,
):
    """Runs an image model on an image, adapting gray and RGB.

    - Channels match the model: run it as is.
    - RGB image, gray model that returns gray (a gray denoiser or
      relighter): by default the image is rotated into the orthonormal
      opponent color space and each plane goes through the model as a
      gray image (`color_space="opponent"`); `"per_channel"` processes R,
      G and B instead. See `keras_rbdn.channels`.
    - Gray image, RGB model (a colorizer): the gray channel is repeated.

    With `ensemble` > 1 the model also runs on flipped and rotated copies
    of the image and the results are averaged (`keras_rbdn.self_ensemble`):
    slower by that factor, and usually more accurate. Each copy goes
    through `predict_image` whole, so tiling gives the same result as
    without it (exactly with a `margin` of the receptive radius).

    With `progress`, a bar on stderr shows the megapixels of network
    passes done and the time left (`ensemble` x image planes x network
    passes, 3 for an `OpponentDenoiser`, x height x width in all), and
    a line with the image's size, seconds and MP/s replaces it at the
    end.

    Args:
        model: A Keras image model (`keras_rbdn.load(...)`).
        pixels: float32 array `(height, width, 1 or 3)` in [0, 1].
        tile_size: int or `None`. See `predict_image`. Defaults to `None`:
            from the network and the memory available.
        margin: int or `None`. See `predict_image`. Defaults to `None`.
        color_space: str. `"opponent"` or `"per_channel"`: how a gray
            model processes an RGB image. Defaults to `"opponent"`.
        ensemble: int. 1, 2, 4 or 8 flips and rotations averaged.
            Defaults to `1`.
        progress: bool or str. Whether to show a progress bar
            (`keras_rbdn.progress`); a string shows it with that
            description. Defaults to `False`.

    Returns:
        float32 array `(height, width, output channels)`.

    Raises:
        ValueError: `pixels` is not `(height, width, channels)` with a
            channel count the model can take, or `color_space` or
            `ensemble` is not one of its choices.

    Example:

    >>> model = keras_rbdn.load("denoise")
    >>> clean = apply_model(model, noisy_rgb, ensemble=8)
    """
    from keras_rbdn.channels import run_on_channels
    from keras_rbdn.self_ensemble import check_ensemble
    from keras_rbdn.self_ensemble import self_ensemble

    check_ensemble(ensemble)
    pixels = np.asarray(pixels, dtype="float32")
    if pixels.ndim != 3:
        raise ValueError(
            "`pixels` must be (height, width, channels). Received: shape "
            f"{pixels.shape}"
        )

    bar = None
    start = time.perf_counter()
    if progress:
        from keras_rbdn.progress import progress_bar

        planes = 3 if pixels.shape[-1] > model.input_shape[-1] else 1
        passes = ensemble * planes * network_passes(model)
        bar = progress_bar(
            passes * pixels.shape[0] * pixels.shape[1],
            progress if isinstance(progress, str) else None,
        )
    counter = bar.update if bar is not None else None

    def run(image):
        return self_ensemble(
            lambda x: predict_image(model, x, tile_size, margin, counter),
            image,
            ensemble,
            xp=np,
        )

    try:
        output = run_on_channels(
            run,
            pixels,
            model.input_shape[-1],
            model.output_shape[-1],
            color_space=color_space,
            xp=np,
        ).astype("float32", copy=False)
    finally:
        if bar is not None:
            bar.close()
    if bar is not None:
        from keras_rbdn.progress import summary

        seconds = time.perf_counter() - start
        bar.write(summary(bar.desc, pixels.shape, seconds), file=sys.stderr)
    return output
