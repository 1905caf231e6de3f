"""Which network addresses camera sources may reach (MOODSTREAM_CAMERA_NETWORKS_ALLOW / _DENY).

An admin adds cameras by URL, and the ingest connects wherever the URL points: without a
policy, the camera form can reach any port on the dashboard's network. Deployments that want
to fence it list the camera networks (allow) or the networks cameras must never be (deny),
as comma-separated CIDRs. The dashboard checks a URL when it is saved, the ingest again each
time it connects (the name may resolve elsewhere by then), and the HTTP source checks every
redirect it is sent.

Addresses are checked as the connection would use them: names (and the decimal, octal or
hexadecimal IPv4 forms that the resolver accepts) through the resolver, an IPv4-mapped or
IPv4-compatible IPv6 address as its IPv4 address, and an address of "this host" (0.0.0.0/8,
::) is refused whenever a policy is set: connecting there reaches the host itself.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from moodstream.config import CameraNetworkSettings


class SourceNotAllowed(ValueError):
    """A camera URL whose host is outside the allowed networks; the message says which."""


THIS_HOST_V4 = ipaddress.ip_network("0.0.0.0/8")
THIS_HOST_V6 = ipaddress.ip_address("::")


def effective_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """The address a connection reaches: IPv6 forms that carry an IPv4 address (mapped
    ::ffff:a.b.c.d, compatible ::a.b.c.d) as that IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.packed[:12] == bytes(12) and int(ip) > 1:  # not :: or ::1
            return ipaddress.IPv4Address(ip.packed[12:])
    return ip


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
        ip = effective_address(ipaddress.ip_address(address.split("%")[0]))
        if ip in THIS_HOST_V4 or ip == THIS_HOST_V6:
            raise SourceNotAllowed(f"{host} ({ip}) means this host, never a camera")
        if any(ip in net for net in deny) or (allow and not any(ip in net for net in allow)):
            raise SourceNotAllowed(f"{host} ({ip}) is not in the allowed camera networks "
                                   "(MOODSTREAM_CAMERA_NETWORKS_ALLOW / _DENY)")
