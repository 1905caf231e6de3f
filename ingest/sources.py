"""Camera sources: each yields (Picture, capture time) until it ends or fails.

A source raises SourceError with a human reason when it cannot be opened or stops
delivering; the publisher decides whether to retry. Video files play at their own frame
rate, still images repeat, live sources (webcam, RTSP, HTTP) are read as fast as they come.

A Picture is made lazily: a video frame that the publisher's sampling skips is never
converted to pixels, and a JPEG that a camera sent small enough is published as it came.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from moodstream import assets
from moodstream.camera_networks import SourceNotAllowed, check_source
from moodstream.config import CameraNetworkSettings, LimitSettings, set_opencv_ffmpeg_options
from moodstream.images import ImageRefused, ImageTooLarge, check_pixels, decode, inspect_image
from moodstream.redaction import redact_text, redact_url

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024  # one HTTP snapshot; a camera sending more is broken


class SourceError(RuntimeError):
    """The source cannot be opened or stopped delivering; the message says why."""


def shrink(frame: np.ndarray, max_width: int) -> np.ndarray:
    """The frame at most max_width wide, its aspect kept."""
    h, w = frame.shape[:2]
    if w <= max_width:
        return frame
    return cv2.resize(frame, (max_width, round(h * max_width / w)),
                      interpolation=cv2.INTER_AREA)


def encode_jpeg(frame: np.ndarray, max_width: int, quality: int) -> bytes:
    frame = shrink(frame, max_width)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SourceError("JPEG encoding failed")
    return buf.tobytes()


# libjpeg decodes at 1/2, 1/4 or 1/8 of the size for a fraction of the work.
REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
           (2, cv2.IMREAD_REDUCED_COLOR_2))


class Picture:
    """One image from a source: pixels, a way to make them (`make`, called at most once and
    only before the source moves on), or JPEG bytes with their size from the header."""

    def __init__(self, pixels: np.ndarray | None = None, *, make=None,
                 jpeg: bytes | None = None, size: tuple[int, int] | None = None):
        self._pixels, self._make, self.jpeg, self.size = pixels, make, jpeg, size
        self._encoded: tuple[tuple[int, int], bytes | None] | None = None

    def pixels(self) -> np.ndarray | None:
        if self._pixels is None and self._make is not None:
            self._pixels, self._make = self._make(), None
        elif self._pixels is None and self.jpeg is not None:
            self._pixels = decode(self.jpeg)
        return self._pixels

    def encode(self, max_width: int, quality: int) -> bytes | None:
        """JPEG bytes at most max_width wide; None if the image does not decode. Remembered,
        so a still image that a source repeats is encoded once."""
        if self._encoded is None or self._encoded[0] != (max_width, quality):
            self._encoded = ((max_width, quality), self._encode(max_width, quality))
        return self._encoded[1]

    def _encode(self, max_width: int, quality: int) -> bytes | None:
        if self.jpeg is not None and self.size is not None:
            if self.size[0] <= max_width:
                return self.jpeg  # already a JPEG of the right size: no decode, no re-encode
            flag = next((f for n, f in REDUCED if -(-self.size[0] // n) >= max_width),
                        cv2.IMREAD_COLOR)
            frame = decode(self.jpeg, flag)
        else:
            frame = self.pixels()
        return None if frame is None else encode_jpeg(frame, max_width, quality)


def camera_picture(data: bytes, max_pixels: int) -> Picture:
    """A camera's image as a Picture, checked by moodstream.images before anything decodes
    it (SourceError otherwise): a JPEG is kept as bytes, a PNG, WebP or BMP is decoded."""
    try:
        kind, size = inspect_image(data, max_pixels)
    except ImageRefused as error:
        raise SourceError(str(error)) from None
    if kind == "JPEG":
        return Picture(jpeg=data, size=size)
    return Picture(decode(data))


class FfmpegOptions:
    """OpenCV's FFmpeg backend reads its capture options from one process-wide variable when
    a capture opens. Cameras in one process that want the same options open at the same
    time; one that wants different options waits until the others' opens are done."""

    def __init__(self):
        self._cond = threading.Condition()
        self._current: str | None = None
        self._opening = 0

    @contextlib.contextmanager
    def opening(self, options: str):
        with self._cond:
            self._cond.wait_for(lambda: self._opening == 0 or self._current == options)
            if self._current != options:
                set_opencv_ffmpeg_options(options)
                self._current = options
            self._opening += 1
        try:
            yield
        finally:
            with self._cond:
                self._opening -= 1
                self._cond.notify_all()


FFMPEG_OPTIONS = FfmpegOptions()


@dataclass
class Source:
    spec: str
    live: bool  # a live source is retried when it drops; a file just ends
    # Images and video frames above this many pixels are refused (settings.limits).
    max_pixels: int = LimitSettings.model_fields["max_image_pixels"].default

    def pictures(self) -> Iterator[tuple[Picture, float]]:
        raise NotImplementedError

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """The pictures as BGR pixels (every one decoded)."""
        for picture, ts in self.pictures():
            yield picture.pixels(), ts

    def describe(self) -> str:
        return redact_url(self.spec)


class CaptureSource(Source):
    """Anything OpenCV's VideoCapture reads: webcam index, RTSP URL, video file."""

    def __init__(self, spec: str, live: bool, loop: bool = False, paced: bool = False,
                 rtsp_transport: str = "tcp", decoder_threads: int = 1):
        super().__init__(spec, live)
        self.loop, self.paced, self.rtsp_transport = loop, paced, rtsp_transport
        # FFmpeg decodes with one thread per core by default, each with its own frame
        # buffers; at a few frames per second one thread keeps up (docs/scaling.md).
        self.decoder_threads = decoder_threads

    def _open(self) -> cv2.VideoCapture:
        target = int(self.spec) if self.spec.isdigit() else self.spec
        threads = [cv2.CAP_PROP_N_THREADS, self.decoder_threads] if self.decoder_threads else []
        if isinstance(target, str) and target.startswith("rtsp"):
            with FFMPEG_OPTIONS.opening(f"rtsp_transport;{self.rtsp_transport}"):
                cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000,
                    *threads])
        elif isinstance(target, str):
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, threads)
            if not cap.isOpened():  # a file only another backend reads
                cap = cv2.VideoCapture(target)
        else:
            cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.describe()}")
        try:  # the stream's declared frame size, before any frame is decoded
            check_pixels(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0), self.max_pixels)
        except ValueError as error:
            cap.release()
            raise SourceError(str(error)) from None
        return cap

    def pictures(self):
        while True:
            cap = self._open()
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            fps = fps if 1 <= fps <= 240 else 25.0
            start, index = time.monotonic(), 0
            try:
                while cap.grab():
                    if self.paced:  # a file plays at its own frame rate, not as fast as it decodes
                        delay = start + index / fps - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    index += 1
                    # Converted to BGR only if the publisher takes this frame.
                    yield Picture(make=lambda c=cap: _retrieve(c)), time.time()
            finally:
                cap.release()
            if index == 0:
                raise SourceError(f"no frames could be decoded from {self.describe()}")
            if self.live:
                raise SourceError(f"stream ended: {self.describe()}")
            if not self.loop:
                return


def _retrieve(cap: cv2.VideoCapture) -> np.ndarray | None:
    ok, frame = cap.retrieve()
    return frame if ok else None


class ImageSource(Source):
    """A still image, repeated; the publisher's sampling sets the rate. The same Picture
    comes back each time, so it is encoded once (or, a small JPEG, never)."""

    def pictures(self):
        try:
            data = Path(self.spec).read_bytes()
            picture = camera_picture(data, self.max_pixels)
        except (OSError, SourceError) as error:
            raise SourceError(f"{self.spec}: {error}") from None
        if picture.pixels() is None:  # decoded once, so a broken file fails here, not later
            raise SourceError(f"not a readable image: {self.spec}")
        while True:
            yield picture, time.time()
            time.sleep(0.01)


class DemoSource(Source):
    """The shipped demo: a public-domain portrait that drifts and breathes a little, so that
    the pipeline sees a moving face from a clone or a wheel alone, with no media to fetch."""

    def __init__(self, fps: float = 15.0, period_s: float = 8.0):
        super().__init__("demo", live=False)
        self.fps, self.period_s = fps, period_s

    def pictures(self):
        image = cv2.imread(str(assets.demo_image()), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"the demo image {assets.demo_image()} is unreadable")
        h, w = image.shape[:2]
        start = time.monotonic()
        index = 0
        while True:
            phase = 2 * np.pi * (index / self.fps) / self.period_s
            # A slow sway (a few pixels, a degree or two) and a gentle zoom.
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0 * np.sin(phase),
                                             1.0 + 0.04 * np.sin(2 * phase))
            matrix[0, 2] += 12 * np.sin(phase)
            matrix[1, 2] += 6 * np.cos(phase)
            delay = start + index / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            index += 1
            yield Picture(make=lambda m=matrix: cv2.warpAffine(
                image, m, (w, h), borderMode=cv2.BORDER_REFLECT)), time.time()

    def describe(self) -> str:
        return "demo (grace_hopper.jpg, moving)"


class CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a camera's redirect only to an http(s) URL the camera network policy allows:
    the policy checked on the first URL must hold for every hop."""

    def __init__(self, networks: CameraNetworkSettings | None):
        self.networks = networks

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.lower().startswith(HTTP_SCHEMES):
            raise SourceError(f"redirect ({code}) to a non-HTTP URL refused")
        if self.networks is not None:
            try:
                check_source(newurl, self.networks)
            except SourceNotAllowed as error:
                raise SourceError(f"redirect ({code}) to {redact_url(newurl)} refused: "
                                  f"{error}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class HttpSource(Source):
    """An HTTP(S) camera: an MJPEG stream (multipart) or a JPEG snapshot URL polled.
    Credentials in the URL (http://user:pass@camera/) go as HTTP basic or digest auth, to
    that camera's URLs only; redirects are checked against the camera networks."""

    def __init__(self, spec: str, timeout_s: float = 5.0, snapshot_interval_s: float = 0.2,
                 networks: CameraNetworkSettings | None = None):
        super().__init__(spec, live=True)
        self.timeout_s, self.snapshot_interval_s = timeout_s, snapshot_interval_s
        self.networks = networks
        self.url, self._opener = self._build_opener()

    def _build_opener(self):
        try:
            parts = urlsplit(self.spec)
            port = parts.port
        except ValueError as error:
            raise SourceError(f"not a valid URL: {redact_url(self.spec)} ({error})") from None
        handlers: list = [CheckedRedirects(self.networks)]
        url = self.spec
        if parts.username is not None or parts.password is not None:
            host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
            netloc = f"{host}:{port}" if port is not None else host
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
            passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
            passwords.add_password(None, url, unquote(parts.username or ""),
                                   unquote(parts.password or ""), is_authenticated=True)
            handlers += [urllib.request.HTTPBasicAuthHandler(passwords),
                         urllib.request.HTTPDigestAuthHandler(passwords)]
        return url, urllib.request.build_opener(*handlers)

    def _get(self):
        try:
            return self._opener.open(self.url, timeout=self.timeout_s)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise SourceError(f"cannot reach {self.describe()}: "
                              f"{redact_text(str(error))}") from None

    def describe(self) -> str:
        return redact_url(self.spec)

    def pictures(self):
        response = self._get()
        kind = response.headers.get("Content-Type", "")
        if kind.startswith("multipart/"):
            yield from self._mjpeg(response, self.max_pixels)
            raise SourceError(f"MJPEG stream ended: {self.describe()}")
        while True:  # snapshot URL: one image per request
            data = response.read(MAX_SNAPSHOT_BYTES + 1)
            response.close()
            if len(data) > MAX_SNAPSHOT_BYTES:
                raise SourceError(f"{self.describe()} sent a snapshot above {MAX_SNAPSHOT_BYTES} "
                                  "bytes")
            try:
                picture = camera_picture(data, self.max_pixels)
            except SourceError as error:
                raise SourceError(f"{self.describe()} did not return an accepted image "
                                  f"({kind or 'no type'}): {error}") from None
            if picture.jpeg is None and picture.pixels() is None:
                raise SourceError(f"{self.describe()} did not return an image "
                                  f"({kind or 'no type'})")
            yield picture, time.time()
            time.sleep(self.snapshot_interval_s)
            response = self._get()

    @staticmethod
    def _mjpeg(response, max_pixels: int = Source.max_pixels):
        # Each part is a JPEG; find them by their start/end markers, which is robust to
        # servers that get multipart boundaries and headers slightly wrong.
        buffer = b""
        while True:
            try:
                chunk = response.read(16384)
            except OSError as error:
                raise SourceError(f"MJPEG read failed: {error}") from error
            if not chunk:
                return
            buffer += chunk
            while True:
                start = buffer.find(b"\xff\xd8")
                end = buffer.find(b"\xff\xd9", start + 2)
                if start < 0 or end < 0:
                    break
                jpeg, buffer = buffer[start:end + 2], buffer[end + 2:]
                try:
                    picture = camera_picture(jpeg, max_pixels)
                except SourceError as error:
                    if isinstance(error.__context__, ImageTooLarge):
                        raise
                    continue  # a damaged part: the next one may be whole
                yield picture, time.time()
            if len(buffer) > 8 * 1024 * 1024:
                buffer = b""  # garbage with no JPEG in it: do not grow forever


STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://")
HTTP_SCHEMES = ("http://", "https://")


def is_live(spec: str) -> bool:
    """Webcams and network cameras come back after a drop; files do not."""
    return spec.isdigit() or spec.lower().startswith(STREAM_SCHEMES + HTTP_SCHEMES)


def open_source(spec: str, loop: bool = False, rtsp_transport: str = "tcp", *,
                max_pixels: int = Source.max_pixels,
                networks: CameraNetworkSettings | None = None,
                decoder_threads: int = 1) -> Source:
    """Pick the source kind from the spec string; networks: the camera network policy
    (settings.camera_networks), checked at every (re)connect; decoder_threads: FFmpeg's
    threads per video capture (0: its default, one per core)."""
    if networks is not None:
        try:
            check_source(spec, networks)
        except SourceNotAllowed as error:
            raise SourceError(str(error)) from None
    source = _open(spec, loop, rtsp_transport, networks)
    source.max_pixels = max_pixels
    if isinstance(source, CaptureSource):
        source.decoder_threads = decoder_threads
    return source


def _open(spec: str, loop: bool, rtsp_transport: str,
          networks: CameraNetworkSettings | None) -> Source:
    if spec == "demo":
        return DemoSource()
    if spec.isdigit():
        return CaptureSource(spec, live=True)
    lower = spec.lower()
    if lower.startswith(STREAM_SCHEMES):
        return CaptureSource(spec, live=True, rtsp_transport=rtsp_transport)
    if lower.startswith(HTTP_SCHEMES):
        return HttpSource(spec, networks=networks)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"no such file, camera index or URL: {spec}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(spec, live=False)
    return CaptureSource(spec, live=False, loop=loop, paced=True)
