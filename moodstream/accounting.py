"""Pipeline accounting: every frame published is processed, dropped for a reason, or pending.

Counters live in the keys.STATS hash, written in the same transactions as the work they count:
  frames:in                    ingest published a frame (XADD and HINCRBY in one MULTI)
  frames:delivered             a detector read it for the first time (Lua, with XREADGROUP)
  frames:done                  a detector finished it and published its faces
  frames:dropped:stale|dead|superseded|future
                               acknowledged without processing, for that reason
  frames:dropped:oversize      refused by ingest before the stream (frame above the byte cap)
The same names exist for the faces and labels stages. Entries trimmed by the stream cap
before any worker read them are `in - delivered - undelivered`, where undelivered are the
entries still in the stream past the group's last-delivered id.

History rows for the database (moodstream.history.writer) have their own counters:
  history:in = history:written + history:dropped:full + rows pending in Redis.
"""

from __future__ import annotations

import sys

import redis

from moodstream import keys, registry
from moodstream.redis_client import text

# (undelivered, unacknowledged) for a group, exactly, for the accounting (`stats`, /api/stats).
# If the group's last id is older than the stream's first entry (the cap trimmed entries it
# never read), every entry is undelivered: XLEN. Otherwise the entries after the last id are
# counted inside Redis, 256 ids at a time; nothing goes to the client. (Redis 7's group lag
# cannot replace this: after the cap trimmed unread entries it keeps counting them.)
UNDELIVERED = """
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if name == ARGV[1] then
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1])[1]
    local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
    if first == nil then return {0, pending} end
    local a = {string.match(first[1], '(%d+)-(%d+)')}
    local b = {string.match(last, '(%d+)-(%d+)')}
    local fa, fb, la, lb = tonumber(a[1]), tonumber(a[2]), tonumber(b[1]), tonumber(b[2])
    if fa > la or (fa == la and fb > lb) then
      return {redis.call('XLEN', KEYS[1]), pending}
    end
    local n = 0
    local from = '(' .. last
    while true do
      local ids = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 256)
      n = n + #ids
      if #ids < 256 then break end
      from = '(' .. ids[#ids][1]
    end
    return {n, pending}
  end
end
return {redis.call('XLEN', KEYS[1]), 0}
"""

# A worker's lag for its heartbeat, every few seconds: entries not yet read, bounded by the
# stream's length, plus those read and not yet acknowledged, from counters and lengths only
# (no entry is read, so frames' JPEGs stay where they are). Exact unless the cap trimmed
# unread entries, where it stays an upper bound.
LAG = """
local stats = redis.call('HMGET', KEYS[2], ARGV[2] .. ':in', ARGV[2] .. ':delivered')
local unread = (tonumber(stats[1]) or 0) - (tonumber(stats[2]) or 0)
local length = redis.call('XLEN', KEYS[1])
if unread > length then unread = length end
if unread < 0 then unread = 0 end
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
return unread + (ok and pending[1] or 0)
"""


def _snapshot(r: redis.Redis) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Counters and per-stage (undelivered, unacked) read in one MULTI: a consistent view."""
    pipe = r.pipeline(transaction=True)
    pipe.hgetall(keys.STATS)
    for stream, group in keys.STAGES.values():
        pipe.eval(UNDELIVERED, 1, stream, group)
    raw, *queues = pipe.execute(raise_on_error=False)
    counters = {text(k): int(v) for k, v in raw.items()}
    waiting = {}
    for stage, result in zip(keys.STAGES, queues, strict=True):
        # A stream that does not exist yet has nothing waiting.
        waiting[stage] = (0, 0) if isinstance(result, Exception) else tuple(map(int, result))
    return counters, waiting


def stage_stats(stage: str, counters: dict[str, int], waiting: tuple[int, int]) -> dict:
    undelivered, unacked = waiting
    c = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith(stage + ":")}
    entered, delivered = c.get("in", 0), c.get("delivered", 0)
    dropped = {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("dropped:")}
    # Frames refused at ingest (too large) are counted in but never reached the stream.
    dropped["cap"] = max(0, entered - delivered - undelivered - dropped.get("oversize", 0))
    return {"in": entered, "processed": c.get("done", 0), "dropped": dropped,
            "pending": undelivered + unacked, "delivered": delivered}


def latency_percentiles(r: redis.Redis) -> dict:
    values = sorted(float(v) for v in r.lrange(keys.LATENCY, 0, -1))
    if not values:
        return {"p50": None, "p99": None, "samples": 0}

    def pick(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {"p50": pick(0.50), "p99": pick(0.99), "samples": len(values)}


EDGE_FIELDS = ("kind", "state", "sent", "queued", "spilled", "dropped", "updated")


def edge_stats(r: redis.Redis, counters: dict[str, int]) -> dict[str, dict]:
    """Per edge camera: labels sent, waiting on the node (in memory, spilled to its file),
    dropped past its spill cap (from the node's status), and late: arrived after the
    staleness bound, so counted in history but not live (from the aggregators)."""
    cams = sorted(text(c) for c in r.smembers(keys.CAMERAS))
    pipe = r.pipeline(transaction=False)
    for cam in cams:
        pipe.hmget(keys.camera_status(cam), *EDGE_FIELDS)
    out = {}
    for cam, values in zip(cams, pipe.execute(), strict=True):
        status = dict(zip(EDGE_FIELDS, (text(v) if v is not None else "" for v in values),
                          strict=True))
        if status["kind"] != "edge":
            continue
        numbers = {}
        for name in ("sent", "queued", "spilled", "dropped"):
            try:
                numbers[name] = int(status[name] or 0)
            except ValueError:
                numbers[name] = 0
        out[cam] = {"state": status["state"], **numbers,
                    "late": counters.get(keys.late_labels(cam), 0),
                    "updated": float(status["updated"] or 0) or None}
    return out


def pipeline_stats(r: redis.Redis) -> dict:
    from moodstream.history.writer import history_stats

    counters, waiting = _snapshot(r)
    edges = edge_stats(r, counters)
    # Edge nodes add labels entries themselves (they may not write the counters): their
    # own count of what they sent stands for them.
    counters["labels:in"] = counters.get("labels:in", 0) + sum(e["sent"] for e in
                                                               edges.values())
    workers: dict[str, int] = {}
    for info in registry.live_workers(r):
        workers[info["kind"]] = workers.get(info["kind"], 0) + 1
    dead = sum(v for k, v in counters.items() if k.endswith(":dropped:dead"))
    return {
        "frames": stage_stats("frames", counters, waiting["frames"]),
        "faces": counters.get("faces:found", 0),
        "labels": counters.get("labels:faces", 0),
        # Of those, faces classified on their frame, and faces that carried their track's
        # last probabilities (detection/label_reuse.py): labels == classified + reused.
        "classified": counters.get("labels:classified", 0),
        "reused": counters.get("labels:reused", 0),
        "stages": {s: stage_stats(s, counters, waiting[s]) for s in ("faces", "labels")},
        "dead_letters": dead,
        "latency_ms": latency_percentiles(r),
        "workers": workers,
        # Rows for the history database: written, dropped by a full buffer, or pending.
        "history": history_stats(r),
        "edge": edges,
    }


# -- `moodstream stats` ----------------------------------------------------------------------


def configure(parser) -> None:
    """`moodstream stats` takes only the shared --redis-url."""


def run(args, settings) -> int:
    """`moodstream stats`: the pipeline accounting as JSON, straight from Redis."""
    import json

    from moodstream.redis_client import connect

    try:
        figures = pipeline_stats(connect(settings.redis_url))
    except redis.RedisError as error:
        from moodstream.redaction import redact_url

        print(f"moodstream stats: Redis at {redact_url(settings.redis_url)} cannot be read: "
              f"{error}", file=sys.stderr)
        return 2
    print(json.dumps(figures, indent=2))
    return 0
