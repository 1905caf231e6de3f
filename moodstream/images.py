"""Image dimensions from the header, checked against the pixel limit before any decoding.

A 250 kB PNG can declare 16000x16000 pixels; decoding it takes gigabytes. Every place that
accepts an image (uploads, bulk files, frames on the stream, camera snapshots) asks here first.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Pillow's own decompression-bomb guard (a warning, then an error at twice its default) would
# stop us reading the very headers we check; the configurable limit below replaces it.
Image.MAX_IMAGE_PIXELS = None


class ImageTooLarge(ValueError):
    """An image (or video frame) above the pixel limit; the message names the limit."""


def check_pixels(width: int, height: int, limit: int) -> None:
    """limit: settings.limits.max_image_pixels (MOODSTREAM_MAX_IMAGE_PIXELS)."""
    if width * height > limit:
        raise ImageTooLarge(
            f"image is {width}x{height} ({width * height / 1e6:.1f} Mpx), above the pixel "
            f"limit of {limit / 1e6:g} Mpx (MOODSTREAM_MAX_IMAGE_PIXELS)")


def header_size(source: str | Path | bytes) -> tuple[int, int] | None:
    """(width, height) read from the header only, or None if it is not a readable image."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def check_image(source: str | Path | bytes, limit: int) -> None:
    """ImageTooLarge above the limit; ValueError when the header cannot be read at all."""
    size = header_size(source)
    if size is None:
        raise ValueError("not a readable image (corrupt, truncated or unsupported format)")
    check_pixels(*size, limit)
