"""Every Redis key and stream name in one place, so that services agree on them."""

FRAMES = "ms:frames"
FACES = "ms:faces"
LABELS = "ms:labels"
DEAD_LETTERS = "ms:dead"

DETECTORS = "detectors"  # consumer group on FRAMES
CLASSIFIERS = "classifiers"  # consumer group on FACES
AGGREGATORS = "aggregators"  # consumer group on LABELS
# stage -> (stream, consumer group): the three hops of the live pipeline.
STAGES = {"frames": (FRAMES, DETECTORS), "faces": (FACES, CLASSIFIERS),
          "labels": (LABELS, AGGREGATORS)}

STATS = "ms:stats"  # hash of pipeline counters (see moodstream.accounting)
LATENCY = "ms:latency"  # list of recent capture-to-label latencies in ms
CAMERAS = "ms:cameras"  # set of known camera ids
REMOVED_CAMERAS = "ms:cameras:removed"  # ids an admin removed: nothing may re-add them
WORKERS = "ms:workers"  # sorted set: worker id -> last heartbeat (unix s)
# String: when accounts and cameras were loaded from the database (moodstream.redis_fill);
# absent in a new or restarted Redis, which tells the supervisor to load them.
RECORDS_LOADED = "ms:records:loaded"


def camera(cam: str) -> str:
    """Hash: registered camera settings (name, source, mode, fps, ...)."""
    return f"ms:camera:{cam}"


def camera_status(cam: str) -> str:
    """Hash: state (connected/retrying/ended/failed), reason, fps, updated."""
    return f"ms:camera:{cam}:status"


def mood(cam: str) -> str:
    """String: the latest aggregate snapshot as JSON."""
    return f"ms:mood:{cam}"


def live_points(cam: str) -> str:
    """Stream: the live points, one compact aggregate per second, capped to the last hour
    (the dashboard's live charts; the lasting history is the database)."""
    return f"ms:live:{cam}"


def wake(stream: str) -> str:
    """Stream of length 1 that producers bump with each write to `stream`. Idle consumers
    block on it, not on `stream` itself: a blocking XREAD there hands every idle worker the
    newest entry, a whole JPEG, only to say that something arrived."""
    return f"{stream}:wake"


def detect_state(cam: str) -> str:
    """Hash with a TTL: the detectors' state of a camera (ts, state: the last detected
    frame's faces and thumbnail), for motion gating and track-guided detection."""
    return f"ms:detect:{cam}"


def worker(worker_id: str) -> str:
    """Hash with TTL: a live worker's kind, host, pid, throughput and lag."""
    return f"ms:worker:{worker_id}"


def alerts(cam: str) -> str:
    """Stream: the driver alert log (ts, kind, message, state raised|cleared)."""
    return f"ms:alerts:{cam}"


def preview(cam: str) -> str:
    """String with a short TTL: the latest JPEG with face boxes, only while preview is on."""
    return f"ms:preview:{cam}"


# -- cameras ---------------------------------------------------------------------------------

CAMERAS_CHANGED = "ms:cameras:changed"  # pub/sub channel: a camera's id after any change
# Socket.IO room of a camera's browsers: the aggregator emits its snapshots there (the
# dashboard's Socket.IO servers share Redis as their message queue).
CAMERA_ROOM_PREFIX = "camera:"


def camera_room(cam: str) -> str:
    return CAMERA_ROOM_PREFIX + cam


# -- aggregator ------------------------------------------------------------------------------


def lease(cam: str) -> str:
    """String with a TTL: the id of the aggregator that owns this camera's state."""
    return f"ms:lease:{cam}"


def handoff(cam: str) -> str:
    """List: labels of this camera that another aggregator read, for the owner to apply."""
    return f"ms:handoff:{cam}"


def late_labels(cam: str) -> str:
    """Field of keys.STATS: labels of this camera that arrived later than the staleness
    bound (an edge node's backlog after an outage)."""
    return f"labels:late:{cam}"


# -- dashboard -------------------------------------------------------------------------------

DASHBOARD_SECRET = "ms:dashboard:secret"  # shared Flask secret when none is configured
USERS = "ms:users"  # set of user names


def user(name: str) -> str:
    """Hash: a dashboard user (password hash, role, created, cameras, groups)."""
    return f"ms:user:{name}"


def session(sid: str = "", *, user: str | None = None) -> str:
    """String with a TTL: a login session's id -> the login's user id; with `user`, the set
    of that user's session ids (so that all of them can be ended)."""
    return f"ms:session:{sid}" if user is None else f"ms:user-sessions:{user}"


def login_failures(kind: str, who: str) -> str:
    """Counter with a TTL: failed logins per user name (kind 'user') or address ('addr')."""
    return f"ms:login:fail:{kind}:{who}"


# -- bulk ------------------------------------------------------------------------------------

BULK_UPLOADS = "ms:bulk:uploads"  # list of upload ids, newest first


BULK_KINDS = (
    "upload",  # string: an upload's JSON record (files, plan, job ids, state), by upload id
    "lock",  # string with a TTL: one dashboard writes an upload's results, by upload id
    "staged",  # string with a TTL: an input file shipped through Redis, by content hash
)


def bulk(kind: str, ident: str) -> str:
    if kind not in BULK_KINDS:
        raise ValueError(f"unknown bulk key kind {kind!r}")
    return f"ms:bulk:{kind}:{ident}"


# -- history (moodstream.history) ----------------------------------------------------------

HISTORY_PENDING = "ms:history:pending"  # list: '<seq>|<json>' rows waiting for the database
HISTORY_SEQ = "ms:history:seq"  # counter numbering HISTORY_PENDING's rows
HISTORY_FLUSH = "ms:history:flush"  # short lock: one writer drains HISTORY_PENDING at a time
HISTORY_ERASED = "ms:history:erased"  # hash: camera -> when its history was erased
