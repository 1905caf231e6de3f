"""Detection that does not redo work: motion gating, track-guided detection and track ids for
the live detector.

For each frame of a camera, `LeanDetector` picks one of four ways, from the camera's state
(the faces of its last detected frame, a small grey thumbnail of that frame and a patch
around each face):

- ``full``: the whole cascade on the whole frame. Always when there is no state, when the
  frame size or the camera's detector settings changed, when a full scan is due (every
  `full_every_frames` frames or `full_every_s` seconds of capture time: the bound on how late
  a person who enters without setting off the motion test is found; a camera's first period
  is shortened by its own phase, so cameras started together take turns), or when something
  moved outside the known faces.
- ``gate``: nothing moved since the last detected frame: its faces are reused.
- ``follow``: motion only where the known faces are, between O-Net refines: each small face
  follows its own neighbourhood (phase correlation of its patch); a face that cannot be
  followed, or a large one, goes the track way.
- ``track``: motion only where the known faces are: O-Net alone on the known boxes
  (MtcnnOnnx.refine); for the faces that loses, P-Net, R-Net and O-Net around them
  (MtcnnOnnx.detect_around); where that still loses one, a full scan after all, so that a
  face that moved too far is not lost.

Whatever the way, the crops are cut from the current frame, so expressions stay live, and
every face gets a track id: the id of the known face it overlaps most (the last frame's, or
one lost in the last TRACK_GAP_S), else a new one.

The state lives in Redis (keys.detect_state, a hash with a TTL), not in the process: the
detectors of a consumer group take a camera's consecutive frames in turn, on any machine.
A state is written only by a frame captured later than the one that wrote the stored state
(a Lua compare-and-set), so a slow detector never puts an older state back. Two detectors
that read the same state decide from the same reference: the worst outcome is one more full
scan, or tracking from a reference one frame older (the regions around faces allow for it).
"""
from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from moodstream import keys
from moodstream.detection.detectors.base import DetectedFace
from moodstream.detection.detectors.mtcnn_onnx import iou_matrix
from moodstream.detection.face_detector import Face
from moodstream.detection.registration import PATCH, face_patches, registered

THUMB_WIDTH = 80  # px: thumbnails of the last detected frame, kept per camera in Redis
# A thumbnail pixel (an 8x8 average at 640 px) that changed by more than this many grey
# levels counts as changed for the gate; JPEG noise on a still scene stays below it.
STILL_LEVEL = 6
# Motion outside faces: a pixel moved when it leaves the range of its 3x3 neighbourhood in
# the (shift-compensated) reference by more than this: a camera that sways a little, or a
# photo that jitters, is not motion; a new person is.
MOTION_LEVEL = 24
BLOCK = 16  # thumbnail pixels: blocks aligned each by its own shift
MAX_SHIFT = 4  # thumbnail pixels (32 at 640 px): a larger shift of a block is motion

WRITE_STATE = """
local stored = redis.call('HGET', KEYS[1], 'ts')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ts', ARGV[1], 'state', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass
class LeanOptions:
    gate: bool = True
    track: bool = True
    full_every_frames: int = 10
    full_every_s: float = 2.0
    gate_fraction: float = 0.002  # of thumbnail pixels that may change in a still frame
    state_ttl_s: float = 30.0
    refine_every_frames: int = 4  # tracked frames: O-Net on the faces every this many
    follow_max_face: int = 64  # px: larger faces get O-Net on every tracked frame

    @classmethod
    def from_settings(cls, d) -> LeanOptions:
        return cls(gate=d.gate, track=d.track, full_every_frames=d.full_every_frames,
                   full_every_s=d.full_every_s, gate_fraction=d.gate_fraction,
                   state_ttl_s=d.state_ttl_s, refine_every_frames=d.refine_every_frames,
                   follow_max_face=d.follow_max_face)


@dataclass
class DetectState:
    """What a camera's next frame is compared with: the last detected frame (full or
    tracked; a gated frame changes nothing but the count)."""

    ts: float  # capture time of the frame that wrote this state
    full_ts: float  # capture time of the last full scan
    since_full: int  # frames since the last full scan
    size: tuple[int, int]  # frame (width, height)
    settings: str  # the detector settings it was found with
    faces: list[dict] = field(default_factory=list)  # DetectedFace.to_json() + "track"
    thumb: np.ndarray | None = None
    # Tracks missing from the last frame, {"box", "track", "ts"}, kept for TRACK_GAP_S: a face
    # missed in a frame or two keeps its id when it is found again.
    lost: list[dict] = field(default_factory=list)
    since_refine: int = 0  # frames whose faces were followed by registration alone
    patches: np.ndarray | None = None  # face_patches of the faces, in their order

    def encode(self) -> bytes:
        head = {"ts": self.ts, "full_ts": self.full_ts, "since_full": self.since_full,
                "size": list(self.size), "settings": self.settings, "faces": self.faces,
                "thumb": list(self.thumb.shape), "lost": self.lost,
                "since_refine": self.since_refine,
                "patches": 0 if self.patches is None else len(self.patches)}
        patches = b"" if self.patches is None else self.patches.tobytes()
        return json.dumps(head).encode() + b"\n" + self.thumb.tobytes() + patches

    @classmethod
    def decode(cls, raw: bytes | None) -> DetectState | None:
        """None for a missing or unreadable state (the frame then gets a full scan)."""
        if not raw:
            return None
        try:
            head, pixels = raw.split(b"\n", 1)
            meta = json.loads(head)
            h, w = (int(v) for v in meta["thumb"])
            thumb = np.frombuffer(pixels[:h * w], np.uint8).reshape(h, w)
            n = int(meta.get("patches", 0))
            patches = (np.frombuffer(pixels[h * w:], np.uint8).reshape(n, PATCH, PATCH)
                       if n == len(meta["faces"]) and n else None)
            return cls(float(meta["ts"]), float(meta["full_ts"]), int(meta["since_full"]),
                       tuple(int(v) for v in meta["size"]), str(meta["settings"]),
                       list(meta["faces"]), thumb, list(meta.get("lost", [])),
                       int(meta.get("since_refine", 0)), patches)
        except (ValueError, KeyError, TypeError):
            return None

    def detected(self) -> list[DetectedFace]:
        return [DetectedFace(tuple(f["box"]), f["score"],
                             {k: tuple(v) for k, v in f["landmarks"].items()}
                             if f.get("landmarks") else None) for f in self.faces]


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey copy (THUMB_WIDTH wide, aspect kept), by area averaging of the frame's
    grey copy (a third of the work of shrinking the colour frame)."""
    gray = gray_of(image)
    h, w = gray.shape
    return cv2.resize(gray, (THUMB_WIDTH, max(1, round(THUMB_WIDTH * h / w))),
                      interpolation=cv2.INTER_AREA)


def still(reference: np.ndarray, current: np.ndarray, fraction: float) -> bool:
    """Nothing moved: at most `fraction` of the thumbnail's pixels changed by more than
    STILL_LEVEL grey levels."""
    changed = np.count_nonzero(cv2.absdiff(reference, current) > STILL_LEVEL)
    return changed <= fraction * current.size


def regions(boxes, scale: float, margin: float, shape) -> np.ndarray:
    """Mask (thumbnail shape) of the squares of `margin` x each face's side around the faces
    (the regions track-guided detection searches), boxes in frame pixels."""
    mask = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        half = max(w, h) * margin / 2 * scale
        cx, cy = (x + w / 2) * scale, (y + h / 2) * scale
        mask[max(0, math.floor(cy - half)):max(0, math.ceil(cy + half)),
             max(0, math.floor(cx - half)):max(0, math.ceil(cx + half))] = True
    return mask


def motion_outside(reference: np.ndarray, current: np.ndarray, known: np.ndarray) -> int:
    """Thumbnail pixels that moved outside the `known` mask. Each block of BLOCK pixels of
    the reference is first aligned on the current frame by its own shift (phase correlation;
    a sway, zoom or small turn of the whole scene is a shift in each block), and a pixel
    moved only when it leaves the range of its 3x3 neighbourhood in the aligned reference by
    MOTION_LEVEL: a scene that sways or jitters a little does not count; a new person does."""
    ref, cur = reference.astype(np.float32), current.astype(np.float32)
    h, w = ref.shape
    kernel = np.ones((3, 3), np.uint8)
    moved = np.zeros((h, w), bool)
    largest = 0.0
    for y in range(0, h, BLOCK):
        for x in range(0, w, BLOCK):
            y1, x1 = min(h, y + BLOCK), min(w, x + BLOCK)
            if y1 - y < 4 or x1 - x < 4:
                continue
            (dx, dy), _ = cv2.phaseCorrelate(ref[y:y1, x:x1], cur[y:y1, x:x1])
            if abs(dx) > MAX_SHIFT or abs(dy) > MAX_SHIFT:  # no sensible alignment
                dx = dy = 0.0
            largest = max(largest, abs(dx), abs(dy))
            # the block with a rim, so that the shift brings real pixels into it
            ry0, rx0 = max(0, y - MAX_SHIFT - 1), max(0, x - MAX_SHIFT - 1)
            ry1, rx1 = min(h, y1 + MAX_SHIFT + 1), min(w, x1 + MAX_SHIFT + 1)
            part = cv2.warpAffine(ref[ry0:ry1, rx0:rx1], np.float32([[1, 0, dx], [0, 1, dy]]),
                                  (rx1 - rx0, ry1 - ry0), borderMode=cv2.BORDER_REPLICATE)
            high, low = cv2.dilate(part, kernel), cv2.erode(part, kernel)
            sy, sx = slice(y - ry0, y1 - ry0), slice(x - rx0, x1 - rx0)
            block = cur[y:y1, x:x1]
            moved[y:y1, x:x1] = (block > high[sy, sx] + MOTION_LEVEL) | (
                block < low[sy, sx] - MOTION_LEVEL)
    rim = math.ceil(largest) + 1  # edges a shift uncovers
    moved[:rim], moved[-rim:], moved[:, :rim], moved[:, -rim:] = False, False, False, False
    moved &= ~known
    # A moving person is a blob; what the alignment leaves (aliasing of the 8x reduction at
    # sharp edges) is single pixels: an opening keeps only blobs of at least 2x2.
    moved = cv2.morphologyEx(moved.view(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    return int(np.count_nonzero(moved))


def gray_of(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def motion_area(min_face: float, scale: float) -> float:
    """Moved thumbnail pixels that call for a full scan: a quarter of the smallest face."""
    return max(3.0, (min_face * scale) ** 2 / 4)


TRACK_GAP_S = 2.0  # a face unseen this long gets a new track id when it is found again
TRACK_MIN_IOU = 0.3


def new_track_id(ts: float, index: int) -> int:
    """A track id no other frame of the camera gives out: its capture time in ms and the
    face's index (two detectors that find one new face in two frames give two ids, never one
    id to two faces)."""
    return int(ts * 1000) * 256 + index


def assign_tracks(known: list[dict], boxes: list, ts: float) -> list[int]:
    """Track ids for the faces (boxes) of a frame captured at ts: each takes the id of the
    known face ({"box", "track"}: the last frame's faces and the recently lost ones) it
    overlaps most, best overlaps first, or a new id."""
    ids: list[int | None] = [None] * len(boxes)
    if known and boxes:
        overlap = iou_matrix(corners([k["box"] for k in known]), corners(boxes), "union")
        # Only the pairs that overlap enough, best first (ties in row order): a classroom
        # has 25 faces and as many known ones, but only about one such pair per face.
        rows, cols = np.nonzero(overlap >= TRACK_MIN_IOU)
        taken = set()
        for j in np.argsort(-overlap[rows, cols], kind="stable"):
            ki, fi = int(rows[j]), int(cols[j])
            if ids[fi] is None and ki not in taken:
                ids[fi] = int(known[ki]["track"])
                taken.add(ki)  # that known face is taken
    return [new_track_id(ts, i) if t is None else t for i, t in enumerate(ids)]


def corners(boxes: list) -> np.ndarray:
    """(x, y, w, h) boxes as (x1, y1, x2, y2) rows."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def unmatched(known: list, found: list) -> list:
    """The known boxes that no found box overlaps by TRACK_MIN_IOU (one to one): each known
    box in turn takes the free found box it overlaps most."""
    if not known or not found:
        return list(known)
    overlap = np.nan_to_num(iou_matrix(corners(known), corners(found), "union"))
    out = []
    for i, box in enumerate(known):
        j = int(np.argmax(overlap[i]))
        if overlap[i, j] >= TRACK_MIN_IOU:
            overlap[:, j] = -1.0  # taken
        else:
            out.append(box)
    return out


def scan_phase(camera: str) -> float:
    """A camera's share, in [0, 0.5), of the full-scan period that its first period is
    shortened by: cameras started together then scan in turn, not all on the same tick."""
    return zlib.crc32(camera.encode()) % 1000 / 2000


@dataclass
class DetectPlan:
    """One frame's way (full, gate, follow, track) and what it needs."""

    way: str
    thumb: np.ndarray
    state: DetectState | None


class LeanDetector:
    """FaceDetector plus gating and tracking, with each camera's state in Redis, or in this
    process when `r` is None (an edge node: one process sees all of its camera's frames)."""

    def __init__(self, detector, r, options: LeanOptions):
        self.detector, self.redis, self.options = detector, r, options
        self.can_track = hasattr(detector.detector, "detect_around")
        self.held: dict[str, DetectState] = {}
        self._write = r.register_script(WRITE_STATE) if r is not None else None
        # frames by way; "searched": tracked frames that O-Net alone did not settle,
        # "retry": tracked frames that needed a full scan after all
        self.ways = {"full": 0, "gate": 0, "follow": 0, "track": 0, "searched": 0, "retry": 0}

    def plan(self, ts: float, image: np.ndarray, settings: str, min_face: float,
             state: DetectState | None, camera: str = "") -> DetectPlan:
        """`image`: the frame, grey or colour (its grey copy is cheaper to shrink)."""
        thumb = thumbnail(image)
        o = self.options
        size = (image.shape[1], image.shape[0])
        if (state is None or state.size != size or state.settings != settings
                or state.thumb is None or state.thumb.shape != thumb.shape
                or not (o.gate or o.track)):
            return DetectPlan("full", thumb, state)
        if (state.since_full + 1 >= o.full_every_frames
                or ts - state.full_ts >= o.full_every_s or ts < state.ts):
            return DetectPlan("full", thumb, state)
        if o.gate and still(state.thumb, thumb, o.gate_fraction):
            return DetectPlan("gate", thumb, state)
        if o.track and self.can_track:
            scale = thumb.shape[1] / size[0]
            boxes = [f["box"] for f in state.faces]
            known = regions(boxes, scale, self.detector.detector.track_margin, thumb.shape)
            if motion_outside(state.thumb, thumb, known) < motion_area(min_face, scale):
                if not boxes:
                    return DetectPlan("gate", thumb, state)
                if (state.since_refine + 1 < o.refine_every_frames
                        and state.patches is not None):
                    return DetectPlan("follow", thumb, state)
                return DetectPlan("track", thumb, state)
        return DetectPlan("full", thumb, state)

    def load(self, cameras) -> dict[str, DetectState | None]:
        cameras = sorted(set(cameras))
        if self.redis is None:
            return {cam: self.held.get(cam) for cam in cameras}
        pipe = self.redis.pipeline(transaction=False)
        for cam in cameras:
            pipe.hget(keys.detect_state(cam), "state")
        return {cam: DetectState.decode(raw)
                for cam, raw in zip(cameras, pipe.execute(), strict=True)}

    def save(self, states: dict[str, DetectState]) -> None:
        if self.redis is None:
            self.held.update(states)
            return
        ttl = max(1, math.ceil(self.options.state_ttl_s))
        pipe = self.redis.pipeline(transaction=False)
        for cam, state in states.items():
            self._write(keys=[keys.detect_state(cam)], args=[repr(state.ts), state.encode(), ttl],
                        client=pipe)
        pipe.execute()

    def detect(self, frames, min_face, scale_factor) -> list[list[Face]]:
        """frames: (camera, capture ts, BGR image); min_face / scale_factor: one per frame.
        Returns per frame what FaceDetector.detect returns. Frames of one camera are taken in
        capture order, one per round, so that each sees the state its predecessor left;
        the frames of a round share the network calls."""
        order = sorted(range(len(frames)), key=lambda k: (frames[k][0], frames[k][1]))
        rounds: list[list[int]] = []
        depth: dict[str, int] = {}
        for k in order:
            cam = frames[k][0]
            n = depth.get(cam, 0)
            depth[cam] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(k)
        states = self.load(depth)
        changed: dict[str, DetectState] = {}
        results: list = [None] * len(frames)
        for members in rounds:
            self._round(frames, members, min_face, scale_factor, states, changed, results)
        self.save(changed)
        return results

    def _round(self, frames, members, min_face, scale_factor, states, changed, results):
        plans = {}
        # One grey copy of a frame serves its thumbnail, crops (finish), following and patches.
        grays = {k: gray_of(frames[k][2]) for k in members}
        for k in members:
            cam, ts, _ = frames[k]
            plans[k] = self.plan(ts, grays[k], f"{min_face[k]}/{scale_factor[k]}", min_face[k],
                                 states.get(cam), cam)
        full = [k for k in members if plans[k].way == "full"]
        track = [k for k in members if plans[k].way == "track"]
        kept = {k: [] for k in track}
        missing = {k: [f["box"] for f in plans[k].state.faces] for k in track}
        for k in members:
            plan = plans[k]
            if plan.way == "gate":
                results[k] = self.detector.finish(grays[k], plan.state.detected())
            elif plan.way == "follow":  # registration; O-Net for the faces it cannot follow
                moved, lost = registered(plan.state.faces, plan.state.patches, grays[k],
                                         self.options.follow_max_face)
                kept[k] = self.detector.finish(grays[k], moved)
                missing[k] = [plan.state.faces[i]["box"] for i in lost]
                if missing[k]:
                    track.append(k)
                else:
                    results[k] = kept[k]
        # Tracking in steps, each only for the faces the cheaper one lost: O-Net alone on the
        # known boxes; P-Net, R-Net and O-Net around the lost ones; the full frame.
        for step in (self.detector.refine, self.detector.detect_around):
            if not track:
                break
            found = step([frames[k][2] for k in track], [missing[k] for k in track],
                         grays=[grays[k] for k in track])
            lost = []
            for k, faces in zip(track, found, strict=True):
                kept[k] += faces
                missing[k] = unmatched(missing[k], [f.box for f in faces])
                if missing[k]:  # lost one: look further, around it alone
                    lost.append(k)
                else:
                    results[k] = kept[k]
            self.ways["searched" if step == self.detector.refine else "retry"] += len(lost)
            track = lost
        for k in track:
            plans[k].way = "full"
            full.append(k)
        if full:
            found = self.detector.detect([frames[k][2] for k in full],
                                         min_face=[min_face[k] for k in full],
                                         scale_factor=[scale_factor[k] for k in full],
                                         grays=[grays[k] for k in full])
            for k, faces in zip(full, found, strict=True):
                results[k] = faces
        for k in members:
            cam, ts, image = frames[k]
            plan = plans[k]
            self.ways[plan.way] += 1
            old = plan.state
            known = [] if old is None or ts < old.ts else [
                f for f in old.faces + old.lost if "track" in f]
            for face, track in zip(results[k], assign_tracks(
                    known, [f.box for f in results[k]], ts), strict=True):
                face.track = track
            states[cam] = changed[cam] = self._next_state(plan, ts, grays[k], results[k],
                                                          f"{min_face[k]}/{scale_factor[k]}")
            if plan.state is None:  # a camera's first scan: its periods start at its phase
                phase = scan_phase(cam)
                changed[cam].full_ts -= phase * self.options.full_every_s
                changed[cam].since_full = int(phase * self.options.full_every_frames)

    def _next_state(self, plan: DetectPlan, ts, gray, faces, settings) -> DetectState:
        old = plan.state
        lost = lost_tracks(old, faces, ts)
        if plan.way == "gate":
            return DetectState(ts, old.full_ts, old.since_full + 1, old.size, old.settings,
                               old.faces, old.thumb, lost, old.since_refine, old.patches)
        stored = [{**f.detected().to_json(), "track": f.track} for f in faces]
        # Registration needs the faces' neighbourhoods of this frame; only kept when used.
        patches = (face_patches(gray, [f.box for f in faces])
                   if self.options.refine_every_frames > 1 else None)
        if plan.way in ("track", "follow"):
            return DetectState(ts, old.full_ts, old.since_full + 1, old.size, old.settings,
                               stored, plan.thumb, lost,
                               old.since_refine + 1 if plan.way == "follow" else 0, patches)
        return DetectState(ts, ts, 0, (gray.shape[1], gray.shape[0]), settings, stored,
                           plan.thumb, lost, 0, patches)


def lost_tracks(old: DetectState | None, faces: list[Face], ts: float) -> list[dict]:
    """The tracks of the previous state (its faces and its lost ones) that this frame did not
    see, while they were seen less than TRACK_GAP_S ago."""
    if old is None or ts < old.ts:
        return []
    seen = {f.track for f in faces}
    out = [{"box": f["box"], "track": f["track"], "ts": old.ts} for f in old.faces
           if "track" in f and f["track"] not in seen]
    out += [lost for lost in old.lost if lost["track"] not in seen]
    return [lost for lost in out if ts - lost["ts"] < TRACK_GAP_S]
