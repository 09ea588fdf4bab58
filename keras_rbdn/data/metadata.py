"""What an image file stores besides its pixels: metadata and encoding.

`read_metadata` collects it from a file opened with Pillow, so that
`keras_rbdn.data.writing.write_image(..., like=image)` writes an output the
way the input was written: EXIF, ICC profile, DPI, XMP and PNG text
chunks, and the JPEG quantization tables and chroma subsampling, WebP
losslessness and TIFF compression.
"""

import dataclasses

EXIF_HEADER = b"Exif\x00\x00"
# TIFF tags that describe a TIFF file's own pixel layout, not the photo:
# left out of a TIFF's EXIF, the writer sets them for the output. The ICC
# profile (34675) and resolution (282, 283, 296) are kept in their own
# fields.
TIFF_LAYOUT_TAGS = frozenset(
    (254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 280, 281)
    + (282, 283, 284, 296, 317, 320, 322, 323, 324, 325, 330, 338, 339)
    + (340, 341, 347, 530, 531, 532, 34675)
)
LOSSLESS_FORMATS = ("PNG", "TIFF", "BMP", "GIF")


@dataclasses.dataclass
class Metadata:
    """An image file's metadata and encoding, to write another file alike.

    Args:
        format: str or `None`. Pillow's name of the file format (`"JPEG"`,
            `"MPO"` (a multi-picture JPEG), `"PNG"`, `"WEBP"`, `"TIFF"`,
            `"BMP"`, `"GIF"`).
        exif: bytes or `None`. The EXIF block, starting with `Exif\\0\\0`,
            all tags as stored (the orientation tag included: pixels are
            read as stored, except that Pillow turns TIFF images upright,
            whose orientation tag it then drops).
        icc_profile: bytes or `None`. The embedded ICC color profile.
        dpi: tuple of 2 floats or `None`. Pixels per inch.
        xmp: bytes or `None`. The XMP packet (JPEG, WebP).
        text: dict or `None`. PNG text chunks, `{keyword: text}`.
        lossless: bool. Whether the pixels were stored losslessly (not
            JPEG or lossy WebP).
        jpeg_qtables: list or `None`. A JPEG's quantization tables.
        jpeg_subsampling: int or `None`. A color JPEG's chroma
            subsampling, as Pillow's `subsampling` option (0: 4:4:4, 1:
            4:2:2, 2: 4:2:0).
        tiff_compression: str or `None`. A TIFF's compression, as Pillow's
            `compression` option (`"raw"`, `"tiff_lzw"`, ...).
    """

    format: str = None
    exif: bytes = None
    icc_profile: bytes = None
    dpi: tuple = None
    xmp: bytes = None
    text: dict = None
    lossless: bool = True
    jpeg_qtables: list = None
    jpeg_subsampling: int = None
    tiff_compression: str = None


def _webp_is_lossless(data):
    """Whether a WebP file's image chunk is `VP8L` (lossless)."""
    offset = 12  # After "RIFF", the size and "WEBP".
    while offset + 8 <= len(data):
        fourcc = data[offset : offset + 4]
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += 8 + size + size % 2
    return False


def _exif(image):
    """EXIF bytes with the `Exif\\0\\0` header, or `None`."""
    if image.format == "TIFF":
        # A TIFF's tags are its EXIF, less the ones about its own layout.
        tags = image.getexif()
        for tag in TIFF_LAYOUT_TAGS.intersection(tags):
            del tags[tag]
        return tags.tobytes() if len(tags) else None
    exif = image.info.get("exif")
    if not exif:
        return None
    return exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif


def read_metadata(image, data):
    """The metadata and encoding of an image file opened with Pillow.

    Args:
        image: a `PIL.Image.Image` just opened from the file (for PNG text
            chunks after the pixels, and a TIFF's orientation as read,
            loaded).
        data: bytes. The file's content.

    Returns:
        A `Metadata`.
    """
    from PIL import JpegImagePlugin

    image_format = image.format
    dpi = image.info.get("dpi")
    # A TIFF's XMP is its tag 700, kept with its EXIF.
    xmp = image.info.get("xmp") if image_format != "TIFF" else None
    metadata = Metadata(
        format=image_format,
        exif=_exif(image),
        icc_profile=image.info.get("icc_profile") or None,
        dpi=tuple(float(value) for value in dpi) if dpi else None,
        xmp=xmp.encode() if isinstance(xmp, str) else xmp or None,
        lossless=image_format in LOSSLESS_FORMATS,
    )
    if image_format == "PNG":
        metadata.text = dict(image.text) or None
    elif isinstance(image, JpegImagePlugin.JpegImageFile):  # MPO too.
        tables = image.quantization
        metadata.jpeg_qtables = [tables[key] for key in sorted(tables)] or None
        sampling = JpegImagePlugin.get_sampling(image)
        metadata.jpeg_subsampling = sampling if sampling >= 0 else None
    elif image_format == "WEBP":
        metadata.lossless = _webp_is_lossless(data)
    elif image_format == "TIFF":
        metadata.tiff_compression = image.info.get("compression")
    return metadata
