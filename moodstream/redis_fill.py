"""Loads the system of record (accounts, cameras) from the database into Redis.

Redis holds only a runtime copy. keys.RECORDS_LOADED holds the newest audit id that Redis
has seen: absent in a new or restarted Redis, behind the database after a change made while
Redis was out of reach (`moodstream user` beside a running `up`), ahead of it after a
restore of an older backup. Any of these, and the next check fills Redis again.

Callers: `moodstream up` at start (before its services), and the camera supervisor's loop
(`moodstream cameras`, inside `up` as well), which every deployment runs once and which
must see the cameras before it syncs ingest.
"""

from __future__ import annotations

import logging

from moodstream import keys
from moodstream.history.records import Records
from moodstream.redis_client import text

log = logging.getLogger("moodstream.records")


def loaded_version(r) -> int | None:
    value = r.get(keys.RECORDS_LOADED)
    try:
        return None if value is None else int(text(value))
    except ValueError:
        return None


def fill_redis(r, records: Records) -> bool:
    """Make Redis's accounts and cameras those of the database, unless Redis holds this
    version already. Returns True when it filled. Raises the database's or Redis's errors.

    Any difference counts, not only a newer database: a restored backup is older."""
    from moodstream.camera_settings import CameraSettings

    version = records.version()
    seen = loaded_version(r)
    if seen == version:
        return False
    if seen is None:  # a Redis this database has not filled: keep what only it holds
        version = adopt(r, records)
    # Redis first: whatever is added meanwhile is in the database's answer below, so it is
    # never taken for something the database has dropped.
    in_redis_users = {text(n) for n in r.smembers(keys.USERS)}
    in_redis_cams = {cam for cam, c in CameraSettings.load_all(r).items() if c.source}
    users, cams = records.users(), records.cameras()
    removed = set(records.cameras(removed=True))
    # Registered in Redis, unknown to the database: dropped by a restore of an older backup.
    dropped = in_redis_cams - set(cams) - removed
    pipe = r.pipeline(transaction=True)
    for name in in_redis_users - set(users):
        pipe.delete(keys.user(name))  # removed while Redis was away, or by a restore
        pipe.srem(keys.USERS, name)
    for name, user in users.items():
        pipe.delete(keys.user(name))
        pipe.hset(keys.user(name), mapping={k: v for k, v in user.items() if k != "name"})
        pipe.sadd(keys.USERS, name)
    for cam, settings in cams.items():
        pipe.delete(keys.camera(cam))
        pipe.hset(keys.camera(cam), mapping=settings)
        pipe.sadd(keys.CAMERAS, cam)
        pipe.srem(keys.REMOVED_CAMERAS, cam)
    for cam in removed | dropped:
        pipe.srem(keys.CAMERAS, cam)
        pipe.sadd(keys.REMOVED_CAMERAS, cam)
        pipe.delete(keys.camera(cam))
    pipe.set(keys.RECORDS_LOADED, str(version))
    for cam in sorted(set(cams) | removed | dropped):
        pipe.publish(keys.CAMERAS_CHANGED, cam)
    pipe.execute()
    log.info("loaded %d account(s) and %d camera(s) from the database into Redis",
             len(users), len(cams))
    return True


def adopt(r, records: Records) -> int:
    """Accounts and registered cameras that a Redis holds and the database does not (a
    deployment from before the system of record) are taken over by the database. A new or
    restarted Redis holds none, so this costs two reads. Returns the new version."""
    from moodstream.camera_settings import CameraSettings

    known_users, known_cams = records.users(), records.cameras()
    gone = records.cameras(removed=True)
    for name in sorted({text(n) for n in r.smembers(keys.USERS)} - set(known_users)):
        user = {text(k): text(v) for k, v in r.hgetall(keys.user(name)).items()}
        if user.get("password"):
            records.put_user(name, user, actor="redis-import", action="user.add",
                             detail={"role": user.get("role", "viewer")})
    for cam, camera in CameraSettings.load_all(r).items():
        if camera.source and cam not in known_cams and cam not in gone:
            records.put_camera(cam, camera.to_hash(), actor="redis-import",
                               action="camera.add", detail={"mode": camera.mode})
    return records.version()
