"""Every Redis key and stream name in one place, so that services agree on them."""

FRAMES = "ms:frames"
FACES = "ms:faces"
LABELS = "ms:labels"
DEAD_LETTERS = "ms:dead"

DETECTORS = "detectors"  # consumer group on FRAMES
CLASSIFIERS = "classifiers"  # consumer group on FACES
AGGREGATORS = "aggregators"  # consumer group on LABELS

STATS = "ms:stats"  # hash of pipeline counters (see moodstream.accounting)
LATENCY = "ms:latency"  # list of recent capture-to-label latencies in ms
CAMERAS = "ms:cameras"  # set of known camera ids
REMOVED_CAMERAS = "ms:cameras:removed"  # ids an admin removed: nothing may re-add them
WORKERS = "ms:workers"  # sorted set: worker id -> last heartbeat (unix s)


def camera(cam: str) -> str:
    """Hash: registered camera settings (name, source, mode, fps, ...)."""
    return f"ms:camera:{cam}"


def camera_status(cam: str) -> str:
    """Hash: state (connected/retrying/ended/failed), reason, fps, updated."""
    return f"ms:camera:{cam}:status"


def mood(cam: str) -> str:
    """String: the latest aggregate snapshot as JSON."""
    return f"ms:mood:{cam}"


def history(cam: str) -> str:
    """Stream: one compact aggregate per second, capped to the last hour."""
    return f"ms:history:{cam}"


def buckets(cam: str) -> str:
    """Hash: per-second label counts, field '<second>:<label>' and '<second>:faces'."""
    return f"ms:buckets:{cam}"


def worker(worker_id: str) -> str:
    """Hash with TTL: a live worker's kind, host, pid, throughput and lag."""
    return f"ms:worker:{worker_id}"


def alerts(cam: str) -> str:
    """Stream: the driver alert log (ts, kind, message, state raised|cleared)."""
    return f"ms:alerts:{cam}"


def preview(cam: str) -> str:
    """String with a short TTL: the latest JPEG with face boxes, only while preview is on."""
    return f"ms:preview:{cam}"


HISTORY_PENDING = "ms:history:pending"  # list: '<seq>|<json>' rows waiting for the database
HISTORY_SEQ = "ms:history:seq"  # counter numbering HISTORY_PENDING's rows
HISTORY_FLUSH = "ms:history:flush"  # short lock: one writer drains HISTORY_PENDING at a time
HISTORY_ERASED = "ms:history:erased"  # hash: camera -> when its history was erased
