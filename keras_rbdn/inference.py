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

Inference (`predict_image`) runs a model on an image of any size. Images
larger than `tile_size` go through overlapping tiles: each tile reaches
`margin` pixels beyond the part of the output it provides, tile origins are
multiples of the network's pooling stride, and with a margin at least the
network's receptive radius (`receptive_radius`) the tiled output equals the
whole-image output, so there are no seams, while memory stays bounded by
the tile size.
"""

import os

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


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def _tile_spans(length, tile_size, margin, stride):
    """1D tiles: `(tile_start, tile_end, core_start, core_end)` tuples."""
    if length <= tile_size:
        return [(0, length, 0, length)]
    core = (tile_size - 2 * margin) // stride * stride
    spans = []
    for core_start in range(0, length, core):
        core_end = min(length, core_start + core)
        tile_start = max(0, core_start - margin)
        tile_end = min(length, core_end + margin)
        spans.append((tile_start, tile_end, core_start, core_end))
    return spans


def predict_image(model, pixels, tile_size=1024, margin=None):
    """Runs an image -> image model on one image of any size.

    Images with a side longer than `tile_size` are processed in
    overlapping tiles of at most `tile_size` x `tile_size` pixels, so the
    memory used is bounded by the tile size, not the image size. Each tile
    contributes only its core, at least `margin` pixels away from the cut
    edges, and tile origins are multiples of the network's pooling stride
    2^(branches + 1), so every pooling window matches the whole-image one:
    with the default margin (the receptive radius) the tiled result equals
    the whole-image result up to floating-point rounding.

    Args:
        model: A Keras model taking `(batch, height, width, channels)`
            float32 images, such as `keras_rbdn.load("denoise")`.
        pixels: float32 array `(height, width, channels)`.
        tile_size: int. Largest tile side. Defaults to `1024`.
        margin: int or `None`. Pixels of context beyond each tile's core;
            `None` uses the receptive radius of the network inside `model`,
            rounded up to the pooling stride. Defaults to `None`.

    Returns:
        float32 array `(height, width, output_channels)`.
    """
    pixels = np.asarray(pixels, dtype="float32")
    if pixels.ndim != 3:
        raise ValueError(
            "`pixels` must be (height, width, channels). Received: shape "
            f"{pixels.shape}"
        )
    network = find_network(model)
    stride = 2 ** (network.branches + 1) if network is not None else 1
    if margin is None:
        if network is None:
            raise ValueError(
                "No RBDN found in the model to derive the tile margin "
                "from; pass `margin`. Received: margin=None"
            )
        margin = receptive_radius(network)
    margin = _round_up(int(margin), stride)
    if tile_size - 2 * margin < stride:
        raise ValueError(
            f"`tile_size` must exceed 2 * margin + {stride} = "
            f"{2 * margin + stride}. Received: tile_size={tile_size}"
        )
    height, width = pixels.shape[:2]
    rows = _tile_spans(height, tile_size, margin, stride)
    cols = _tile_spans(width, tile_size, margin, stride)
    output = None
    for top, bottom, core_top, core_bottom in rows:
        for left, right, core_left, core_right in cols:
            tile = pixels[None, top:bottom, left:right]
            result = np.asarray(model.predict_on_batch(tile))[0]
            if output is None:
                output = np.empty(
                    (height, width, result.shape[-1]), dtype="float32"
                )
            output[core_top:core_bottom, core_left:core_right] = result[
                core_top - top : core_bottom - top,
                core_left - left : core_right - left,
            ]
    return output


def apply_model(
    model,
    pixels,
    tile_size=1024,
    margin=None,
    color_space="opponent",
    ensemble=1,
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
    without it.

    Args:
        model: A Keras image model (`keras_rbdn.load(...)`).
        pixels: float32 array `(height, width, 1 or 3)` in [0, 1].
        tile_size: int. See `predict_image`. Defaults to `1024`.
        margin: int or `None`. See `predict_image`. Defaults to `None`.
        color_space: str. `"opponent"` or `"per_channel"`: how a gray
            model processes an RGB image. Defaults to `"opponent"`.
        ensemble: int. 1, 2, 4 or 8 flips and rotations averaged.
            Defaults to `1`.

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

    def run(image):
        return self_ensemble(
            lambda x: predict_image(model, x, tile_size, margin),
            image,
            ensemble,
            xp=np,
        )

    return run_on_channels(
        run,
        pixels,
        model.input_shape[-1],
        model.output_shape[-1],
        color_space=color_space,
        xp=np,
    ).astype("float32", copy=False)
