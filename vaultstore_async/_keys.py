"""Derived keys: an LRU cache, in-flight sharing and opt-in reuse for writes.

Cache entries are keyed by salt, KDF parameters and an HMAC of the
password under a random key made for this process, so no password is kept
in memory as a dictionary key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from ._kdf import SALT_BYTES, AnyKdf, KdfExecutor, KdfProfile
from ._stats import Stats

_PROCESS_KEY = os.urandom(32)

_CacheKey = tuple[bytes, AnyKdf, bytes]


def _password_tag(password: bytes) -> bytes:
    return hmac.new(_PROCESS_KEY, password, hashlib.sha256).digest()


@dataclass(slots=True)
class _Reusable:
    salt: bytes
    key: bytes = field(repr=False)
    uses_left: int = 0
    expires: float = 0.0


@dataclass(slots=True)
class _Pending:
    """A derivation in progress and how many callers wait for it."""

    task: asyncio.Task[bytes]
    waiters: int = 0


class KeyRing:
    """Turns (password, salt, profile) into a key, deriving as little as it can."""

    def __init__(
        self,
        executor: KdfExecutor,
        stats: Stats,
        cache_size: int,
        cache_ttl: float | None,
        reuse_writes: int,
        reuse_seconds: float,
    ) -> None:
        self._executor = executor
        self._stats = stats
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._cache: OrderedDict[_CacheKey, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[_CacheKey, _Pending] = {}
        self._reuse_writes = reuse_writes
        self._reuse_seconds = reuse_seconds
        self._reusable: dict[tuple[bytes, int, int], _Reusable] = {}
        self._reuse_locks: dict[tuple[bytes, int, int], asyncio.Lock] = {}

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._reusable.clear()
            self._reuse_locks.clear()

    def _get(self, ckey: _CacheKey) -> bytes | None:
        if self._cache_size <= 0:
            return None
        with self._lock:
            entry = self._cache.get(ckey)
            if entry is None:
                return None
            key, stored_at = entry
            ttl = self._cache_ttl
            if ttl is not None and time.monotonic() - stored_at > ttl:
                del self._cache[ckey]
                return None
            self._cache.move_to_end(ckey)
            return key

    def _put(self, ckey: _CacheKey, key: bytes) -> None:
        if self._cache_size <= 0:
            return
        with self._lock:
            self._cache[ckey] = (key, time.monotonic())
            self._cache.move_to_end(ckey)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    async def derive(self, password: bytes, salt: bytes, profile: AnyKdf) -> bytes:
        """Return the Argon2id key for these inputs, from cache when possible.

        Concurrent requests for one key share a single derivation, which
        runs in its own task so a cancelled caller does not waste it.
        """
        ckey = (salt, profile, _password_tag(password))
        cached = self._get(ckey)
        if cached is not None:
            self._stats.key_cache_hits += 1
            return cached
        pending = self._inflight.get(ckey)
        if pending is None:
            self._stats.key_cache_misses += 1
            task = asyncio.ensure_future(self._run(ckey, password, salt, profile))
            pending = _Pending(task)
            self._inflight[ckey] = pending
            task.add_done_callback(lambda done: self._finish(ckey, done))
        else:
            self._stats.key_cache_hits += 1
        pending.waiters += 1
        try:
            return await asyncio.shield(pending.task)
        finally:
            pending.waiters -= 1
            if pending.waiters == 0 and not pending.task.done():
                # Every caller gave up: drop the derivation if it has not
                # started in a worker thread yet. Later callers start anew.
                if self._inflight.get(ckey) is pending:
                    del self._inflight[ckey]
                pending.task.cancel()

    def _finish(self, ckey: _CacheKey, done: asyncio.Future[bytes]) -> None:
        pending = self._inflight.get(ckey)
        if pending is not None and pending.task is done:
            del self._inflight[ckey]
        if not done.cancelled():
            # Marks a failure as seen even when every caller was cancelled.
            done.exception()

    async def _run(
        self, ckey: _CacheKey, password: bytes, salt: bytes, profile: AnyKdf
    ) -> bytes:
        key = await self._executor.derive(password, salt, profile)
        self._stats.key_derivations += 1
        self._put(ckey, key)
        return key

    async def for_write(
        self, password: bytes, profile: KdfProfile
    ) -> tuple[bytes, bytes]:
        """Return (salt, key) for a new value: a fresh salt, unless key reuse
        is on and this password has a reusable salt with uses left."""
        if self._reuse_writes <= 0:
            salt = os.urandom(SALT_BYTES)
            return salt, await self.derive(password, salt, profile)
        rkey = (_password_tag(password), profile.opslimit, profile.memlimit)
        reused = self._take_reusable(rkey)
        if reused is not None:
            return reused
        # Concurrent writers under one password wait for a single fresh salt
        # instead of each deriving its own.
        lock = self._reuse_locks.setdefault(rkey, asyncio.Lock())
        async with lock:
            reused = self._take_reusable(rkey)
            if reused is not None:
                return reused
            salt = os.urandom(SALT_BYTES)
            key = await self.derive(password, salt, profile)
            now = time.monotonic()
            with self._lock:
                # Drop spent entries so keys of passwords no longer in use
                # do not stay in memory.
                for stale in [k for k, e in self._reusable.items() if e.expires <= now]:
                    del self._reusable[stale]
                self._reusable[rkey] = _Reusable(
                    salt=salt,
                    key=key,
                    uses_left=self._reuse_writes - 1,
                    expires=now + self._reuse_seconds,
                )
        if self._reuse_locks.get(rkey) is lock and not lock.locked():
            del self._reuse_locks[rkey]
        return salt, key

    def _take_reusable(
        self, rkey: tuple[bytes, int, int]
    ) -> tuple[bytes, bytes] | None:
        with self._lock:
            entry = self._reusable.get(rkey)
            if entry is None or entry.uses_left <= 0:
                return None
            if entry.expires <= time.monotonic():
                del self._reusable[rkey]
                return None
            entry.uses_left -= 1
            return entry.salt, entry.key
