"""Per-camera access: which cameras a logged-in user may see.

Admins (and the API token) see every camera, registered or not. A viewer sees registered
cameras only (never a removed or unknown id), and of those, when the account is limited,
the ones it names or that belong to one of its camera groups; an account limited to
nothing sees every registered camera. Every route that names a camera asks `may_see`
(the REST API and history through dashboard.api.require_login, the pages, Socket.IO's
`watch`); lists go through `visible`.
"""

from __future__ import annotations

from moodstream.camera_settings import CameraSettings, group_set
from moodstream.dashboard import cameras


def limited(user) -> bool:
    return not user.is_admin and bool(user.cameras or user.groups)


def allows(user, cam: str, groups: str) -> bool:
    """Whether the account's limits let it see a camera with these groups ("a,b")."""
    if not limited(user):
        return True
    return cam in user.cameras or bool(group_set(groups) & set(user.groups))


def may_see(r, user, cam: str) -> bool:
    if user.is_admin:
        return True
    if not cameras.registered(r, cam):
        return False
    if not limited(user):
        return True
    camera = CameraSettings.load(r, cam)
    return allows(user, cam, camera.groups if camera else "")


def visible(user, described: list[dict]) -> list[dict]:
    """The cameras of a list (from cameras.list_cameras) that the user may see."""
    return [info for info in described if allows(user, info["id"], info.get("groups", ""))]
