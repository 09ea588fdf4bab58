"""Writing image files: encoded like their input, written atomically.

`write_image(path, pixels, like=image)` writes pixels in the format of
`path`'s extension, with what `image` (from `read_image`) stores besides
its pixels, where that format can hold it:

- JPEG: EXIF, ICC, DPI, XMP; a JPEG input's quantization tables and
  chroma subsampling, else quality 95 and 4:4:4.
- PNG: EXIF, ICC, DPI, text chunks (XMP as one), 16 bits.
- WebP: EXIF, ICC, XMP; lossless for a lossless input (PNG, TIFF, BMP,
  lossless WebP), else quality 95.
- TIFF: EXIF (as tags), ICC, DPI, a TIFF input's compression, 16 bits.
- BMP: DPI.

An ICC profile is written only where it describes the output's colors:
a gray profile is not written into an RGB output (the colorizers' output
then has no profile, which viewers read as sRGB). Limits of the
encoders: a compressed TIFF keeps the EXIF tags of its first directory
(Make, Model, DateTime, ...) but not the EXIF and GPS sub-directories
(exposure, GPS), which only an uncompressed TIFF holds; 16-bit color TIFF
is written with `tifffile`, with deflate for any compression and the ICC
profile, DPI and first-directory text and number tags.
"""

import io
import os
import tempfile

import numpy as np

from keras_rbdn.data.files import Image
from keras_rbdn.data.files import ImageError
from keras_rbdn.data.metadata import TIFF_LAYOUT_TAGS
from keras_rbdn.data.metadata import Metadata

FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
# JPEG and lossy WebP quality where the input's cannot be reused.
DEFAULT_QUALITY = 95
EXIF_SUB_DIRECTORIES = (0x8769, 0x8825)  # EXIF and GPS.
_XMP_PNG_KEY = "XML:com.adobe.xmp"
_ICC_COLOR_SPACES = {1: b"GRAY", 3: b"RGB "}


def output_format(path):
    """Pillow's format name for `path`'s extension.

    Raises:
        ImageError: the extension is not one `write_image` writes.
    """
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in FORMATS:
        raise ImageError(
            f"{path}: unsupported output extension {extension!r} (use one "
            f"of {', '.join(FORMATS)})"
        )
    return FORMATS[extension]


def check_quality(quality):
    """Raises a `ValueError` unless `quality` is `None` or 1 to 100."""
    if quality is not None and (
        isinstance(quality, bool)
        or not isinstance(quality, (int, np.integer))
        or not 1 <= quality <= 100
    ):
        raise ValueError(
            f"`quality` must be an int from 1 to 100 or None. Received: "
            f"quality={quality!r}"
        )


def _exif(metadata, image_format, compression):
    """The EXIF option: `metadata`'s bytes as stored, or for TIFF an
    `Image.Exif` without the layout tags the writer sets, and without the
    EXIF and GPS directories when compressed; `None` if there is none."""
    from PIL import Image as PILImage

    if not metadata.exif or image_format != "TIFF":
        return metadata.exif
    exif = PILImage.Exif()
    exif.load(metadata.exif)
    dropped = set(TIFF_LAYOUT_TAGS)
    if compression not in (None, "raw"):
        dropped.update(EXIF_SUB_DIRECTORIES)
    for tag in dropped.intersection(exif):
        del exif[tag]
    return exif


def _icc_profile(metadata, channels):
    """The ICC profile if it describes `channels` colors, else `None`."""
    profile = metadata.icc_profile
    if profile and profile[16:20] == _ICC_COLOR_SPACES.get(channels):
        return profile
    return None


def _jpeg_options(metadata, channels, quality):
    tables = metadata.jpeg_qtables
    # A gray JPEG's one table does not cover color (the colorizers).
    if quality is None and tables and len(tables) >= min(channels, 2):
        options = {"qtables": tables}
    else:
        options = {"quality": quality or DEFAULT_QUALITY}
    subsampling = metadata.jpeg_subsampling
    options["subsampling"] = 0 if subsampling is None else subsampling
    if metadata.xmp:
        options["xmp"] = metadata.xmp
    return options


def _png_options(metadata):
    from PIL import PngImagePlugin

    text = dict(metadata.text or {})
    if metadata.xmp and _XMP_PNG_KEY not in text:
        text[_XMP_PNG_KEY] = metadata.xmp.decode("utf-8", "replace")
    if not text:
        return {}
    chunks = PngImagePlugin.PngInfo()
    for key, value in text.items():
        chunks.add_text(key, value)  # iTXt where not Latin-1.
    return {"pnginfo": chunks}


def _webp_options(metadata, quality):
    if metadata.lossless and quality is None:
        # `exact`: the colors under transparent pixels too.
        options = {"lossless": True, "exact": True}
    else:
        options = {"quality": quality or DEFAULT_QUALITY}
    if metadata.xmp:
        options["xmp"] = metadata.xmp
    return options


def save_options(image_format, metadata, channels, quality=None):
    """Pillow `save` options that write like `metadata`'s file.

    Args:
        image_format: str. Pillow's output format name (`output_format`).
        metadata: `Metadata`. What the input file stores.
        channels: int. 1 (gray) or 3 (RGB) color channels written.
        quality: int or `None`. JPEG and WebP quality 1 to 100; `None`
            reuses a JPEG input's quantization tables and keeps a
            lossless input lossless, else uses 95. Defaults to `None`.

    Returns:
        A dict of keyword arguments for `PIL.Image.Image.save`.
    """
    options = {}
    if metadata.dpi and image_format != "WEBP":
        options["dpi"] = metadata.dpi
    if image_format == "BMP":
        return options
    compression = None
    if image_format == "TIFF" and metadata.format == "TIFF":
        compression = metadata.tiff_compression
    # A compressed TIFF is written by libtiff, which cannot write the
    # EXIF and GPS directories.
    exif = _exif(metadata, image_format, compression)
    if exif:
        options["exif"] = exif
    icc_profile = _icc_profile(metadata, channels)
    if icc_profile:
        options["icc_profile"] = icc_profile
    if image_format == "JPEG":
        options.update(_jpeg_options(metadata, channels, quality))
    elif image_format == "PNG":
        options.update(_png_options(metadata))
    elif image_format == "WEBP":
        options.update(_webp_options(metadata, quality))
    elif image_format == "TIFF" and compression:
        options["compression"] = compression
    return options


def _splice_png_chunks(png, options):
    """`png` with the metadata chunks Pillow writes for `options`.

    For 16-bit color PNGs, which Pillow cannot encode: the chunks that
    Pillow writes between IHDR and IDAT for a 1 x 1 image go after
    `png`'s IHDR (8-byte signature, then the 25-byte IHDR chunk).
    """
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("L", (1, 1)).save(buffer, format="PNG", **options)
    carrier = buffer.getvalue()
    end = 33
    while carrier[end + 4 : end + 8] != b"IDAT":
        end += 12 + int.from_bytes(carrier[end : end + 4], "big")
    return png[:33] + carrier[33:end] + png[33:]


def _tiff16(path, array, options):
    """A 16-bit gray + alpha, RGB or RGBA TIFF, with `tifffile`: the
    `options` of `save_options`, the EXIF's first-directory text and
    number tags only."""
    try:
        import tifffile
    except ModuleNotFoundError:
        raise ImageError(
            f"{path}: writing 16-bit color TIFF needs tifffile (pip "
            "install tifffile); or write a .png"
        ) from None

    channels = array.shape[-1]
    extratags = []
    if "exif" in options:
        for tag, value in options["exif"].items():
            if tag in EXIF_SUB_DIRECTORIES:
                continue
            if isinstance(value, str):
                extratags.append((tag, "s", 0, value, True))
            elif isinstance(value, int) and 0 <= value < 2**16:
                extratags.append((tag, "H", 1, value, True))
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        array,
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="zlib" if "compression" in options else None,
        resolution=options.get("dpi"),
        resolutionunit="INCH" if "dpi" in options else None,
        iccprofile=options.get("icc_profile"),
        extratags=extratags,
        metadata=None,  # No JSON description,
        software=False,  # nor Software tag: the input's are kept.
    )
    return buffer.getvalue()


def encode_image(path, array, bit_depth=8, metadata=None, quality=None):
    """Encodes `(H, W, C)` [0, 1] pixels for `path`'s extension.

    Args:
        path: str. Names the format by its extension.
        array: float array `(height, width, 1 to 4)`: gray, gray + alpha,
            RGB or RGBA.
        bit_depth: int. 8 or 16 (PNG and TIFF). Defaults to `8`.
        metadata: `Metadata` or `None`. What to keep (`save_options`).
            Defaults to `None`: nothing.
        quality: int or `None`. See `save_options`. Defaults to `None`.

    Returns:
        The file's bytes.
    """
    from PIL import Image as PILImage

    image_format = output_format(path)
    channels = array.shape[-1]
    has_alpha = channels in (2, 4)
    if image_format == "JPEG" and has_alpha:
        array, channels, has_alpha = array[..., :-1], channels - 1, False
    options = save_options(
        image_format, metadata or Metadata(), channels - has_alpha, quality
    )
    wide = bit_depth == 16 and image_format in ("PNG", "TIFF")
    scale = 65535.0 if wide else 255.0
    quantized = np.round(np.clip(array, 0, 1) * scale)
    quantized = quantized.astype("uint16" if wide else "uint8")
    if wide and channels > 1 and image_format == "TIFF":
        return _tiff16(path, quantized, options)
    if wide and channels > 1:
        import tensorflow as tf

        png = tf.io.encode_png(quantized).numpy()
        return _splice_png_chunks(png, options)
    if channels == 1:
        quantized = quantized[..., 0]
    image = PILImage.fromarray(quantized)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def write_image(
    path,
    pixels,
    alpha=None,
    bit_depth=None,
    overwrite=False,
    like=None,
    quality=None,
):
    """Writes float32 [0, 1] pixels to an image file, atomically.

    The image is encoded to a temporary file in the destination folder,
    which is then renamed to `path`: other processes see the old file or
    the complete new one, never a partial write. With `like`, the output
    keeps the input's metadata and encoding where its format can hold them
    (the module docstring has the table): EXIF (orientation included, as
    pixels are processed as stored), ICC profile, DPI, PNG text, JPEG
    quantization tables and subsampling, WebP losslessness, TIFF
    compression and 16 bits.

    Args:
        path: str or path-like. Destination; the extension picks the
            format (PNG and TIFF keep 16 bits; JPEG drops alpha).
        pixels: array `(height, width)` or `(height, width, 1 or 3)`;
            values are clipped to [0, 1].
        alpha: array `(height, width)` in [0, 1], or `None`. Defaults to
            `None`.
        bit_depth: int or `None`. 8 or 16 (16 only for PNG and TIFF);
            `None`: `like`'s, else 8. Defaults to `None`.
        overwrite: bool. Whether to replace an existing file. Defaults to
            `False`.
        like: an `Image` from `read_image`, or `None`. The file to write
            like. Defaults to `None`: no metadata, JPEG at quality 95
            (4:4:4), lossless WebP.
        quality: int or `None`. JPEG and WebP quality, 1 to 100; `None`
            reuses a JPEG input's quantization tables and keeps a lossless
            input lossless, else 95. Defaults to `None`.

    Raises:
        ImageError: `path` exists and `overwrite` is `False`, or it cannot
            be written.
        ValueError: `bit_depth` or `quality` is not one of its values.

    Example:

    >>> image = read_image("photo.jpg")
    >>> write_image("clean.jpg", clean, alpha=image.alpha, like=image)
    """
    path = os.fspath(path)
    if like is not None and not isinstance(like, Image):
        raise ValueError(
            "`like` must be an `Image` from `read_image` or None. "
            f"Received: like={type(like).__name__}"
        )
    if bit_depth is None:
        bit_depth = like.bit_depth if like is not None else 8
    if bit_depth not in (8, 16):
        raise ValueError(f"`bit_depth` must be 8 or 16. Received: {bit_depth}")
    check_quality(quality)
    if os.path.exists(path) and not overwrite:
        raise ImageError(f"{path}: already exists (pass --overwrite)")
    array = np.asarray(pixels, dtype="float32")
    if array.ndim == 2:
        array = array[..., None]
    if alpha is not None:
        array = np.concatenate([array, np.asarray(alpha)[..., None]], -1)
    metadata = like.metadata if like is not None else None
    data = encode_image(path, array, bit_depth, metadata, quality)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        descriptor, partial = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.",
            suffix=".partial",
            dir=directory,
        )
    except OSError as error:
        raise ImageError(f"{path}: cannot write ({error.strerror})") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
