"""Which images are decoded: an accepted format, read twice, within the pixel limit.

A 250 kB PNG can declare 16000x16000 pixels; decoding it takes gigabytes. And Pillow alone
can be fooled: a Radiance HDR with "PCD_" at byte 2048 opens in Pillow as a 768x512 PhotoCD
while OpenCV decodes its real 16000x16000. So every place that accepts an image (uploads,
bulk files, frames on the stream, camera snapshots) asks here first: the file's signature
must name an accepted format, Pillow must read the header as that same format (and only
that one), and the size it reads must be within the pixel limit. OpenCV then picks its
decoder by the same signature, and its own pixel cap (OPENCV_IO_MAX_IMAGE_PIXELS, set from
the same limit when moodstream is imported: moodstream.config.limit_opencv_decoding) stops
anything that slips past.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Pillow's own decompression-bomb guard (a warning, then an error at twice its default) would
# stop us reading the very headers we check; the configurable limit below replaces it.
Image.MAX_IMAGE_PIXELS = None

# Still images: the formats a camera, a phone or a photo folder gives.
STILL_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})
# Frames on the stream are JPEG, whatever the camera sent (moodstream.contract).
FRAME_FORMATS = frozenset({"JPEG"})
NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP"}
HEAD_BYTES = 16


class ImageRefused(ValueError):
    """Not an image in an accepted format, or its header does not read; the message says which."""


class ImageTooLarge(ImageRefused):
    """An image (or video frame) above the pixel limit; the message names the limit."""


def signature_format(head: bytes) -> str | None:
    """The format the first bytes announce (Pillow's name for it), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    return None


def check_pixels(width: int, height: int, limit: int) -> None:
    """limit: settings.limits.max_image_pixels (MOODSTREAM_MAX_IMAGE_PIXELS)."""
    if width * height > limit:
        raise ImageTooLarge(
            f"image is {width}x{height} ({width * height / 1e6:.1f} Mpx), above the pixel "
            f"limit of {limit / 1e6:g} Mpx (MOODSTREAM_MAX_IMAGE_PIXELS)")


def _head(source: str | Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:HEAD_BYTES]
    with open(source, "rb") as file:
        return file.read(HEAD_BYTES)


def inspect_image(source: str | Path | bytes, limit: int,
                  formats: frozenset[str] = STILL_FORMATS) -> tuple[str, tuple[int, int]]:
    """(format, (width, height)) of an image that may be decoded; ImageRefused (or its
    ImageTooLarge) otherwise. Reads the header only, never the pixels."""
    accepted = ", ".join(NAMES[f] for f in sorted(formats))
    try:
        head = _head(source)
    except OSError as error:
        raise ImageRefused(f"cannot read the file: {error.strerror or error}") from None
    kind = signature_format(head)
    if kind not in formats:
        raise ImageRefused(f"not an accepted image format (accepted: {accepted})")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source,
                        formats=[kind]) as image:
            size = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageRefused(f"not a readable image (corrupt or truncated {NAMES[kind]} "
                           "header)") from None
    check_pixels(*size, limit)
    return kind, size


def check_image(source: str | Path | bytes, limit: int,
                formats: frozenset[str] = STILL_FORMATS) -> None:
    """ImageTooLarge above the limit; ImageRefused for any format not accepted or a header
    that does not read."""
    inspect_image(source, limit, formats)


def decode(source: str | Path | bytes, flags: int | None = None):
    """OpenCV's pixels (BGR unless flags say otherwise) of an image checked above, or None
    where it does not decode. OpenCV's own pixel cap raises instead of answering None."""
    import cv2
    import numpy as np

    flags = cv2.IMREAD_COLOR if flags is None else flags
    try:
        if isinstance(source, bytes):
            return cv2.imdecode(np.frombuffer(source, np.uint8), flags)
        return cv2.imread(str(source), flags)
    except cv2.error:
        return None
