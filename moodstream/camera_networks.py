"""Which network addresses camera sources may reach (MOODSTREAM_CAMERA_NETWORKS_ALLOW / _DENY).

An admin adds cameras by URL, and the ingest connects wherever the URL points: without a
policy, the camera form can reach any port on the dashboard's network. Deployments that want
to fence it list the camera networks (allow) or the networks cameras must never be (deny),
as comma-separated CIDRs. The dashboard checks a URL when it is saved, the ingest again each
time it connects (the name may resolve elsewhere by then).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from moodstream.config import CameraNetworkSettings


class SourceNotAllowed(ValueError):
    """A camera URL whose host is outside the allowed networks; the message says which."""


def _networks(spec: str) -> list:
    return [ipaddress.ip_network(part.strip(), strict=False)
            for part in (spec or "").split(",") if part.strip()]


def check_source(source: str, networks: CameraNetworkSettings, *,
                 resolve_required: bool = True) -> None:
    """SourceNotAllowed when a network source's address breaks the policy. Files and webcams
    pass. resolve_required=False lets a name that does not resolve now pass (it is checked
    again when the ingest connects)."""
    allow = _networks(networks.allow)
    deny = _networks(networks.deny)
    if (not allow and not deny) or "://" not in source:
        return
    try:
        host = urlsplit(source).hostname
    except ValueError:
        host = None
    if not host:
        if source.lower().startswith("file:"):
            return
        raise SourceNotAllowed("the camera URL has no host")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        if resolve_required:
            raise SourceNotAllowed(f"{host} does not resolve") from None
        return
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if any(ip in net for net in deny) or (allow and not any(ip in net for net in allow)):
            raise SourceNotAllowed(f"{host} ({ip}) is not in the allowed camera networks "
                                   "(MOODSTREAM_CAMERA_NETWORKS_ALLOW / _DENY)")
