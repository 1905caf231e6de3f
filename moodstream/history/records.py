"""The system of record: accounts, cameras and the audit trail, in the history database.

Every change to an account or a camera is written here first, in one transaction with its
audit row, and only then to Redis, which holds a runtime copy (moodstream.redis_fill loads
it into an empty Redis). Records use the Redis shapes: an account is the hash of
moodstream.dashboard.users (password, role, created, cameras, groups), a camera the hash of
CameraSettings.to_hash().
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from moodstream.history.schema import accounts, audit_log, cameras
from moodstream.history.store import HistoryStore

ACCOUNT_FIELDS = {"password": "password_hash", "role": "role", "cameras": "cameras",
                  "groups": "camera_groups", "created": "created"}


class Records:
    def __init__(self, store: HistoryStore):
        self.store = store

    def close(self) -> None:
        self.store.close()

    def _audit(self, conn, actor: str, action: str, target: str, detail: dict) -> None:
        conn.execute(audit_log.insert().values(
            ts=time.time(), actor=(actor or "unknown")[:80], action=action, target=target,
            detail=json.dumps(detail, sort_keys=True)))

    # -- accounts -------------------------------------------------------------------------

    def users(self) -> dict[str, dict]:
        with self.store._read() as conn:
            rows = conn.execute(sa.select(accounts)).mappings().all()
        return {row["name"]: _account(row) for row in rows}

    def user(self, name: str) -> dict | None:
        with self.store._read() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.name == name)
                               ).mappings().first()
        return None if row is None else _account(row)

    def put_user(self, name: str, record: dict, *, actor: str, action: str,
                 detail: dict) -> None:
        """Create or replace an account (a Redis-shaped dict), with its audit row."""
        now = time.time()
        values = {column: record.get(field, "") for field, column in ACCOUNT_FIELDS.items()}
        values["created"] = float(values["created"] or now)
        values.update(name=name, updated=now)
        self.store.migrate()
        with self.store._write() as conn:
            insert = self.store._insert(accounts)
            conn.execute(insert.values(**values).on_conflict_do_update(
                index_elements=["name"],
                set_={k: v for k, v in values.items() if k != "name"}))
            self._audit(conn, actor, action, name, detail)

    def delete_user(self, name: str, *, actor: str) -> bool:
        self.store.migrate()
        with self.store._write() as conn:
            deleted = conn.execute(accounts.delete().where(accounts.c.name == name)).rowcount
            if deleted:
                self._audit(conn, actor, "user.remove", name, {})
        return bool(deleted)

    # -- cameras --------------------------------------------------------------------------

    def cameras(self, *, removed: bool = False) -> dict[str, dict[str, str]]:
        """Registered cameras' settings by id (removed=True: the removed ones instead)."""
        with self.store._read() as conn:
            rows = conn.execute(sa.select(cameras.c.id, cameras.c.settings)
                                .where(cameras.c.removed == removed)).all()
        return {row.id: json.loads(row.settings) for row in rows}

    def camera(self, cam: str) -> dict[str, str] | None:
        with self.store._read() as conn:
            row = conn.execute(sa.select(cameras.c.settings).where(
                cameras.c.id == cam, cameras.c.removed.is_(False))).first()
        return None if row is None else json.loads(row.settings)

    def put_camera(self, cam: str, settings: dict[str, str], *, actor: str, action: str,
                   detail: dict, new: bool = False) -> None:
        """Store a camera's whole settings, with its audit row. new=True refuses an id that
        is registered already (FileExistsError): two admins adding the same camera."""
        values = {"settings": json.dumps(settings, sort_keys=True), "removed": False,
                  "updated": time.time()}
        self.store.migrate()
        with self.store._write() as conn:
            if new and conn.execute(sa.select(cameras.c.id).where(
                    cameras.c.id == cam, cameras.c.removed.is_(False))).first():
                raise FileExistsError(cam)
            insert = self.store._insert(cameras)
            conn.execute(insert.values(id=cam, **values).on_conflict_do_update(
                index_elements=["id"], set_=values))
            self._audit(conn, actor, action, cam, detail)

    def remove_camera(self, cam: str, *, actor: str, history_erased: bool = False) -> None:
        """Mark a camera removed (kept as a row so that a refill does not bring it back)."""
        values = {"removed": True, "updated": time.time()}
        self.store.migrate()
        with self.store._write() as conn:
            insert = self.store._insert(cameras)
            conn.execute(insert.values(id=cam, settings="{}", **values)
                         .on_conflict_do_update(index_elements=["id"], set_=values))
            self._audit(conn, actor, "camera.remove", cam, {"history_erased": history_erased})

    # -- audit ----------------------------------------------------------------------------

    def version(self) -> int:
        """The newest audit id: it grows with every change (0: nothing recorded yet)."""
        with self.store._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(audit_log.c.id))).scalar() or 0)

    def audit(self, limit: int = 200) -> list[dict]:
        """The newest changes first: {ts, actor, action, target, detail}."""
        query = (sa.select(audit_log.c.ts, audit_log.c.actor, audit_log.c.action,
                           audit_log.c.target, audit_log.c.detail)
                 .order_by(audit_log.c.id.desc()).limit(limit))
        with self.store._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "detail": json.loads(row["detail"])} for row in rows]


def _account(row) -> dict:
    out = {field: row[column] for field, column in ACCOUNT_FIELDS.items()}
    out["created"] = f"{row['created']:.0f}"
    out["name"] = row["name"]
    return out


def open_records(h) -> Records:
    """The records in the database that settings.history names."""
    from moodstream.history import open_store

    return Records(open_store(h))
