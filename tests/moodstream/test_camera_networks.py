"""moodstream.camera_networks: addresses checked as the connection reaches them."""

from __future__ import annotations

import ipaddress

import pytest

from moodstream.camera_networks import SourceNotAllowed, check_source, effective_address
from moodstream.config import CameraNetworkSettings

DENY_LOOPBACK = CameraNetworkSettings(deny="127.0.0.1/32")


@pytest.mark.parametrize("raw,expected", [
    ("::ffff:127.0.0.1", "127.0.0.1"), ("::ffff:7f00:1", "127.0.0.1"),
    ("::127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "::"), ("10.1.2.3", "10.1.2.3"),
    ("2001:db8::1", "2001:db8::1")])
def test_ipv6_forms_of_ipv4_addresses_are_their_ipv4_address(raw, expected):
    assert effective_address(ipaddress.ip_address(raw)) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
                                  "[::127.0.0.1]", "2130706433", "0177.0.0.1", "0x7f.0.0.1",
                                  "127.1"])
def test_every_spelling_of_a_denied_address_is_refused(host):
    with pytest.raises(SourceNotAllowed, match="not in the allowed camera networks"):
        check_source(f"http://{host}:8080/x.jpg", DENY_LOOPBACK)


@pytest.mark.parametrize("host", ["0.0.0.0", "0", "0.1.2.3", "[::]"])
def test_this_host_is_refused_whenever_a_policy_is_set(host):
    with pytest.raises(SourceNotAllowed, match="means this host"):
        check_source(f"rtsp://{host}:8554/live", DENY_LOOPBACK)
    check_source(f"rtsp://{host}:8554/live", CameraNetworkSettings())  # no policy, no check


def test_other_addresses_pass():
    check_source("http://127.0.0.2:8080/x.jpg", DENY_LOOPBACK)
    check_source("rtsp://192.0.2.10/stream", CameraNetworkSettings(allow="192.0.2.0/24"))
