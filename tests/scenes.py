"""Scenes with faces built at test time from a public-domain portrait that an installed
package ships (matplotlib's `grace_hopper.jpg`), for a clone without ../shared.

`build_media(folder)` writes stand-ins for the shared media files the tests use, under the
same names, with what the tests rely on: the same image sizes, the same number of faces, and
for the three dlib photos faces pasted exactly at the reference boxes of the shared README
(the places they are pasted at are the reference boxes); the clip has the shared clip's
size, frame rate and length, with one face moving in every frame. The portrait's face is
found once with the shipped MTCNN, then cut with a margin and pasted, mirrored every other
time, onto a smooth background that has no face-like detail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from moodstream.bench.detectors import DLIB_BOXES

MARGIN = 0.25  # of the face's side, around it, in the pasted tile
# The shared clip's size, rate, length and about its bit rate (1.87 MB: size limits in the
# tests are set around it).
CLIP = {"size": (596, 336), "fps": 29.97, "frames": 464, "kbit_s": 970}
# name -> (width, height) of the shared photos
SIZES = {"dlib_2007_007763.jpg": (500, 375), "dlib_2008_002470.jpg": (500, 332),
         "dlib_2008_001322.jpg": (500, 375), "retinaface_img3.jpg": (1000, 644),
         "mtcnn_ivan.jpg": (561, 561), "fer_justin.jpg": (381, 384),
         "mtcnn_no-faces.jpg": (199, 148)}
# The other photos: name -> (size, face boxes), as many faces as the README counts.
PHOTOS = {
    "oarriaga_test_image.jpg": ((2048, 1536), [(260, 500, 110, 110), (560, 470, 120, 120),
                                               (860, 520, 110, 110), (1160, 480, 115, 115),
                                               (1460, 510, 110, 110), (1500, 950, 380, 380)]),
    "deepface_selfie-many-people.jpg": ((600, 604), [(60, 60, 70, 70), (250, 50, 75, 75),
                                                     (440, 70, 70, 70), (70, 260, 80, 80),
                                                     (260, 250, 85, 85), (450, 270, 80, 80),
                                                     (240, 430, 110, 110)]),
    "deepface_couple.jpg": ((2280, 1588), [(650, 420, 330, 330), (1300, 380, 340, 340)]),
    "face_recognition_two_people.jpg": ((1126, 661), [(150, 160, 260, 260),
                                                      (700, 170, 250, 250)]),
}


def portrait() -> np.ndarray:
    """matplotlib's public-domain portrait of Grace Hopper (BGR)."""
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        data = np.frombuffer(f.read(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def face_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """The portrait's face as the shipped MTCNN sees it."""
    from moodstream.detection.detectors import make_detector

    (faces,) = make_detector("mtcnn-onnx", min_face=40).detect([image])
    best = max(faces, key=lambda f: f.score)
    return tuple(int(v) for v in best.box)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, low-contrast background: blurred noise over a gentle gradient."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 25)
    noise = noise / (np.abs(noise).max() + 1e-6)
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    grey = 110 + 40 * ramp + 25 * noise
    image = np.stack([grey * 0.95, grey, grey * 1.05], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8)


class FacePaster:
    """Pastes the portrait's face so that its face box lands on a given box."""

    def __init__(self):
        self.image = portrait()
        x, y, w, h = face_box(self.image)
        side = max(w, h)
        cx, cy = x + w / 2, y + h / 2
        half = side * (0.5 + MARGIN)
        self.tile = self.image[max(0, int(cy - half)):int(cy + half),
                               max(0, int(cx - half)):int(cx + half)]
        self.face_fraction = side / self.tile.shape[1]  # of the tile's width

    def paste(self, canvas: np.ndarray, box, mirror: bool = False) -> None:
        x, y, w, h = box
        side = max(w, h) / self.face_fraction
        tile = cv2.resize(self.tile, (max(1, round(side)), max(1, round(side))),
                          interpolation=cv2.INTER_AREA)
        if mirror:
            tile = tile[:, ::-1]
        cx, cy = x + w / 2, y + h / 2
        left, top = round(cx - side / 2), round(cy - side / 2)
        # Clip to the canvas.
        x0, y0 = max(0, left), max(0, top)
        x1 = min(canvas.shape[1], left + tile.shape[1])
        y1 = min(canvas.shape[0], top + tile.shape[0])
        if x1 > x0 and y1 > y0:
            canvas[y0:y1, x0:x1] = tile[y0 - top:y1 - top, x0 - left:x1 - left]


def group_photo(paster: FacePaster, size, boxes, seed: int = 0) -> np.ndarray:
    canvas = background(*size, seed=seed)
    for i, box in enumerate(boxes):
        paster.paste(canvas, box, mirror=bool(i % 2))
    return canvas


def team_boxes() -> list[tuple[int, int, int, int]]:
    """25 faces of 34-44 px in three rows, as a team photo of 1000x644 holds them."""
    boxes = []
    for row, (y, n) in enumerate(((170, 8), (290, 9), (410, 8))):
        side = 36 + 4 * row
        step = 1000 // (n + 1)
        boxes += [(step * (i + 1) - side // 2, y, side, side) for i in range(n)]
    return boxes


def talking_clip(paster: FacePaster, path: Path) -> None:
    """The portrait swaying and zooming a little, one face in every frame."""
    w, h = CLIP["size"]
    frames = []
    base = background(w, h, seed=7)
    grain = np.random.default_rng(11)
    for k in range(CLIP["frames"]):
        t = k / CLIP["fps"]
        frame = base.copy()
        side = 150 + 12 * np.sin(2 * np.pi * t / 5)
        cx = w / 2 + 40 * np.sin(2 * np.pi * t / 7)
        cy = h / 2 + 15 * np.cos(2 * np.pi * t / 6)
        paster.paste(frame, (cx - side / 2, cy - side / 2, side, side))
        noise = grain.normal(0, 4, frame.shape)  # camera grain: a real clip's bit rate
        frames.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    if shutil.which("ffmpeg"):  # H.264, as the shared clip is
        proc = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
             f"{w}x{h}", "-r", str(CLIP["fps"]), "-i", "-", "-c:v", "libx264", "-pix_fmt",
             "yuv420p", "-preset", "veryfast", "-b:v", f"{CLIP['kbit_s']}k", "-minrate",
             f"{CLIP['kbit_s']}k", "-maxrate", f"{CLIP['kbit_s']}k", "-bufsize", "2M",
             "-x264-params", "nal-hrd=cbr", str(path)], stdin=subprocess.PIPE)
        for frame in frames:
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
        if proc.wait() == 0:
            return
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), CLIP["fps"], (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


def build_media(folder: Path) -> Path:
    """Writes the stand-ins into `folder` (made if needed) and returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    paster = FacePaster()
    for name, boxes in DLIB_BOXES.items():
        cv2.imwrite(str(folder / name), group_photo(paster, SIZES[name], boxes, seed=len(boxes)))
    cv2.imwrite(str(folder / "retinaface_img3.jpg"),
                group_photo(paster, SIZES["retinaface_img3.jpg"], team_boxes(), seed=3))
    cv2.imwrite(str(folder / "mtcnn_ivan.jpg"),
                group_photo(paster, SIZES["mtcnn_ivan.jpg"], [(260, 140, 40, 40)], seed=5))
    w, h = SIZES["fer_justin.jpg"]
    cv2.imwrite(str(folder / "fer_justin.jpg"),
                group_photo(paster, (w, h), [(100, 90, 180, 180)], seed=1))
    cv2.imwrite(str(folder / "mtcnn_no-faces.jpg"), background(*SIZES["mtcnn_no-faces.jpg"], 9))
    for seed, (name, (size, boxes)) in enumerate(sorted(PHOTOS.items())):
        cv2.imwrite(str(folder / name), group_photo(paster, size, boxes, seed=20 + seed))
    talking_clip(paster, folder / "fer_woman2.mp4")
    return folder
