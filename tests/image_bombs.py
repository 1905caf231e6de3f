"""Images that lie about themselves, made in the test (never committed)."""

from __future__ import annotations

PCD_OFFSET = 2048


def radiance_bomb(width: int = 16000, height: int = 16000, rows: int = 4) -> bytes:
    """A Radiance HDR header declaring width x height, with "PCD_" at byte 2048 inside a
    header comment (Pillow then reads it as a 768x512 PhotoCD), followed by `rows` run-length
    encoded scanlines: a few kB on disk, gigabytes once OpenCV decodes it."""
    start = b"#?RADIANCE\n#"
    comment = start + b" " * (PCD_OFFSET - len(start)) + b"PCD_ made to fool a header check"
    header = comment + b"\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {height} +X {width}\n".encode()
    runs = b"".join(bytes((128 + n, 128)) for n in _runs(width))
    scanline = bytes((2, 2, width >> 8, width & 0xFF)) + runs * 4
    return header + scanline * rows


def _runs(width: int):
    while width > 0:
        n = min(127, width)
        yield n
        width -= n
