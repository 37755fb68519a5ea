"""A request-rate limit shared by every teacher worker (processes and threads, one machine or many).

Scheme: a shared "next free slot" time. Each caller atomically takes the slot max(now, next) and
moves it on by 1/rate, then sleeps until its slot. Redis holds the slot when the app has Redis
(REDIS_URL, or a redis:// broker) so workers on several hosts share it; otherwise a locked file
under VAR_DIR does, which covers every worker of the embedded single-machine setup.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

_REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', math.max(1000, math.ceil(interval * 2000)))
return tostring(slot - now)
"""


class RedisRateLimiter:
    def __init__(self, url: str, rate_per_s: float, key: str = "bb:teacher:next-slot"):
        import redis

        self.client = redis.Redis.from_url(url)
        self.interval = 1.0 / rate_per_s
        self.key = key
        self.script = self.client.register_script(_REDIS_SCRIPT)

    def reserve(self) -> float:
        return float(self.script(keys=[self.key], args=[self.interval]))

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)
        return wait


class FileRateLimiter:
    def __init__(self, path: Path, rate_per_s: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.interval = 1.0 / rate_per_s

    def reserve(self) -> float:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).decode() or "0"
            now = time.time()
            slot = max(now, float(raw or 0))
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, repr(slot + self.interval).encode())
            return slot - now
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)
        return wait


class NoLimit:
    def reserve(self) -> float:
        return 0.0

    def acquire(self) -> float:
        return 0.0
