"""Dashboard accounts, and `moodstream user add|list|remove`.

An account lasts in the database (moodstream.history.records, written first); Redis holds
its runtime copy, the hash ms:user:<name> (password: a werkzeug scrypt/pbkdf2 hash, role,
created, cameras and groups: the viewer's per-camera access) plus a member of the set
ms:users. Passwords are never stored or logged in clear.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import secrets
import sys
import time
from typing import TYPE_CHECKING

from moodstream import keys
from moodstream.camera_settings import CameraError, names_list
from moodstream.redis_client import text as _text

if TYPE_CHECKING:
    from moodstream.history.records import Records

log = logging.getLogger("moodstream.dashboard")

ROLES = ("viewer", "admin")
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8


def start_session(r, owner: str, name: str | None, ttl_s: int) -> str:
    """Record a new login on the server; returns its id (kept in the signed cookie)."""
    sid = secrets.token_urlsafe(24)
    pipe = r.pipeline()
    pipe.set(keys.session(sid), owner, ex=ttl_s)
    if name:
        pipe.sadd(keys.session(user=name), sid)
        pipe.expire(keys.session(user=name), ttl_s)
    pipe.execute()
    return sid


def session_owner(r, sid: str) -> str | None:
    value = r.get(keys.session(sid))
    return _text(value) if value is not None else None


def end_session(r, sid: str) -> None:
    r.delete(keys.session(sid))


def end_user_sessions(r, name: str) -> int:
    """Log a user out everywhere (their open Socket.IO connections close within a second)."""
    sids = [_text(s) for s in r.smembers(keys.session(user=name))]
    pipe = r.pipeline()
    for sid in sids:
        pipe.delete(keys.session(sid))
    pipe.delete(keys.session(user=name))
    pipe.execute()
    return len(sids)


class UserError(ValueError):
    """A user name, role or password that is not acceptable."""



def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name or ""))


def get_user(r, name: str) -> dict | None:
    """{'name', 'role', 'password' (hash), 'created'} or None."""
    if not valid_name(name):
        return None
    raw = r.hgetall(keys.user(name))
    if not raw:
        return None
    data = {_text(k): _text(v) for k, v in raw.items()}
    data["name"] = name
    return data


def session_tag(user: dict) -> str:
    """Short fingerprint of the password hash: a password change ends the old sessions."""
    return hashlib.sha256(user.get("password", "").encode()).hexdigest()[:16]


def access_list(value, what: str) -> str:
    """Camera ids or group names (a list or "a,b") as stored: sorted, comma-separated."""
    try:
        return ",".join(names_list(value, what))
    except CameraError as error:
        raise UserError(str(error)) from None


def set_user(r, name: str, password: str | None, role: str, *, cameras=None, groups=None,
             records: Records | None = None, actor: str = "") -> str:
    """Create or update a user. Returns 'created', 'updated' or 'unchanged'.

    cameras, groups: the cameras (ids) and camera groups a viewer may see (a list or "a,b";
    None keeps what the user has; both empty: every camera). With records (the system of
    record) the database is written first, with an audit row, then Redis (r may be None
    when Redis is not running: it loads the account at its next start)."""
    from werkzeug.security import check_password_hash, generate_password_hash

    if not valid_name(name):
        raise UserError("user names are 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    existing = records.user(name) if records is not None else None
    if existing is None and r is not None:  # an account only Redis has: the database adopts it
        existing = get_user(r, name)
    if existing is None and not password:
        raise UserError("a new user needs a password")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"passwords need at least {MIN_PASSWORD} characters")
    mapping = {"role": role}
    if cameras is not None:
        mapping["cameras"] = access_list(cameras, "cameras")
    if groups is not None:
        mapping["groups"] = access_list(groups, "groups")
    if password is not None and not (
        existing and check_password_hash(existing.get("password", ""), password)
    ):
        mapping["password"] = generate_password_hash(password)
    if existing is None:
        mapping["created"] = f"{time.time():.0f}"
    changed = {k: v for k, v in mapping.items()
               if existing is None or existing.get(k, "") != v}
    if not changed:
        return "unchanged"
    if records is not None:
        record = {"cameras": "", "groups": "", **(existing or {}), **mapping}
        record.pop("name", None)
        detail = {k: ("(changed)" if k == "password" else v) for k, v in changed.items()
                  if k != "created"}
        records.put_user(name, record, actor=actor,
                         action="user.add" if existing is None else "user.update",
                         detail=detail)
        mapping = record  # Redis gets the whole account, as the database has it
    if r is not None:
        pipe = r.pipeline()
        pipe.hset(keys.user(name), mapping=mapping)
        pipe.sadd(keys.USERS, name)
        pipe.execute()
        if existing is not None:  # a new role, password or access: the old sessions end
            end_user_sessions(r, name)
    return "created" if existing is None else "updated"


def remove_user(r, name: str, *, records: Records | None = None, actor: str = "") -> bool:
    """Delete a user (from the database first, with records); r may be None as above."""
    gone = records.delete_user(name, actor=actor) if records is not None else False
    if r is None:
        return gone
    pipe = r.pipeline()
    pipe.delete(keys.user(name))
    pipe.srem(keys.USERS, name)
    deleted, _ = pipe.execute()
    end_user_sessions(r, name)
    return bool(deleted) or gone


def list_users(r) -> list[dict]:
    out = []
    for name in sorted(_text(n) for n in r.smembers(keys.USERS)):
        user = get_user(r, name)
        if user:
            out.append({"name": name, "role": user.get("role", "viewer"),
                        "created": user.get("created", ""),
                        "cameras": _names(user.get("cameras")),
                        "groups": _names(user.get("groups"))})
    return out


def _names(value: str | None) -> list[str]:
    return [n for n in (value or "").split(",") if n]


def authenticate(r, name: str, password: str) -> dict | None:
    """The user if the password matches, else None (same work either way)."""
    from werkzeug.security import check_password_hash

    user = get_user(r, name)
    if user is None:
        # Spend the same time as a real check, so that timing does not reveal names.
        check_password_hash(_DUMMY_HASH(), password or "")
        return None
    if check_password_hash(user.get("password", ""), password or ""):
        return user
    return None


_dummy: list[str] = []


def _DUMMY_HASH() -> str:  # noqa: N802
    if not _dummy:
        from werkzeug.security import generate_password_hash

        _dummy.append(generate_password_hash(os.urandom(16).hex()))
    return _dummy[0]


def ensure_admin(r, name: str, password: str, records: Records | None = None) -> str | None:
    """Create or update the first admin from settings.dashboard.admin_user/admin_password
    (MOODSTREAM_ADMIN_USER / MOODSTREAM_ADMIN_PASSWORD).

    Returns the admin's name when both are set, else None. The password hash is only
    rewritten when the password changed, so restarts do not end anyone's session.
    """
    name = name.strip()
    if not name or not password:
        return None
    from sqlalchemy.exc import SQLAlchemyError

    try:
        set_user(r, name, password, "admin", records=records, actor="settings")
    except (UserError, SQLAlchemyError) as error:
        log.error("MOODSTREAM_ADMIN_USER %s not created: %s", name,
                  str(error).splitlines()[0][:200])
        return None
    return name


# --- `moodstream user ...` ---------------------------------------------------------------------


def configure_user(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="create a user, or update its role/password/access")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default=None,
                     help="viewer or admin (new users: viewer; default: keep)")
    add.add_argument("--password", help="the password (prompted for when absent)")
    add.add_argument("--cameras", default=None, metavar="IDS",
                     help="cameras a viewer may see, comma-separated ('' clears; "
                          "no cameras and no groups: every camera)")
    add.add_argument("--groups", default=None, metavar="NAMES",
                     help="camera groups a viewer may see, comma-separated ('' clears)")
    sub.add_parser("list", help="list users, their roles and camera access")
    remove = sub.add_parser("remove", help="delete a user")
    remove.add_argument("name")


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def run_user(args: argparse.Namespace, settings) -> int:
    """Accounts live in the database; Redis gets the change too when it is reachable (else
    the camera supervisor of a running `up` copies it within seconds: moodstream.redis_fill)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _user_command(args, settings)
    except SQLAlchemyError as error:
        print(f"error: the database cannot be used: {str(error).splitlines()[0][:300]}",
              file=sys.stderr)
        return 2


def _user_command(args: argparse.Namespace, settings) -> int:
    from moodstream.history.records import open_records
    from moodstream.redis_client import OUTAGE_ERRORS, connect

    records = open_records(settings.history)
    r = connect(settings.redis_url, decode_responses=True)
    try:
        r.ping()
    except OUTAGE_ERRORS:
        r = None
    if args.user_command == "list":
        found = records.users()
        if not found:
            print("no users")
        for name, user in sorted(found.items()):
            access = ", ".join(filter(None, (
                user.get("cameras") and f"cameras {user['cameras']}",
                user.get("groups") and f"groups {user['groups']}"))) or "every camera"
            print(f"{name}\t{user['role']}\t{access}")
        return 0
    actor = _actor()
    if args.user_command == "remove":
        if remove_user(r, args.name, records=records, actor=actor):
            print(f"removed {args.name}")
            return 0
        print(f"no such user: {args.name}", file=sys.stderr)
        return 1
    existing = records.user(args.name)
    role = args.role or (existing or {}).get("role") or "viewer"
    password = args.password
    if password is None and existing is None:
        import getpass

        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 1
    try:
        outcome = set_user(r, args.name, password, role, cameras=args.cameras,
                           groups=args.groups, records=records, actor=actor)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{outcome} {args.name} ({role})")
    if r is None:
        print("Redis is out of reach: saved in the database; a running `moodstream up` loads "
              "it within seconds, otherwise its next start does", file=sys.stderr)
    return 0
