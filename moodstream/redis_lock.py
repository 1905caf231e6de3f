"""Keys held by one owner at a time: an aggregator's lease on a camera, the history flush
lock. The holder's token is the value; only the holder renews or releases (Lua, so that a
holder whose key lapsed and was taken over never deletes the new holder's)."""

from __future__ import annotations

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class HeldKeys:
    def __init__(self, r):
        self.redis = r
        self._renew = r.register_script(RENEW)
        self._release = r.register_script(RELEASE)

    def take(self, key: str, token: str, ttl_ms: int) -> bool:
        """True if the key was free and is ours now."""
        return bool(self.redis.set(key, token, nx=True, px=ttl_ms))

    def renew(self, key: str, token: str, ttl_ms: int) -> bool:
        """True if we still held it (its time is extended)."""
        return bool(self._renew(keys=[key], args=[token, ttl_ms]))

    def release(self, key: str, token: str) -> bool:
        """True if we held it (it is free now)."""
        return bool(self._release(keys=[key], args=[token]))
