"""Argon2id cost profiles and the bounded worker pool that runs derivations."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Protocol

import nacl.exceptions
from nacl.pwhash import argon2id

from ._errors import ValidationError, VaultStoreError

KEY_BYTES = 32
SALT_BYTES = argon2id.SALTBYTES

OPSLIMIT_MIN = argon2id.OPSLIMIT_MIN
OPSLIMIT_MAX = 2**32 - 1
MEMLIMIT_MIN = argon2id.MEMLIMIT_MIN
# A stored value names its own memlimit; the cap keeps a hostile row from
# making a reader allocate more than this.
MEMLIMIT_MAX = 4 * 1024**3

# OWASP's floor for Argon2id is 19 MiB with 2 passes.
_WEAK_OPSLIMIT = 2
_WEAK_MEMLIMIT = 19 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KdfProfile:
    """Argon2id cost: `opslimit` passes over `memlimit` bytes.

    libsodium works in whole KiB, so `memlimit` is rounded down to a
    multiple of 1024. Every stored value records the profile that wrote it,
    so changing the store's profile never makes old rows unreadable.
    """

    opslimit: int
    memlimit: int

    PRESETS: ClassVar[dict[str, tuple[int, int]]] = {
        "default": (3, 64 * 1024 * 1024),
        "moderate": (3, 256 * 1024 * 1024),
        "sensitive": (4, 1024 * 1024 * 1024),
        "insecure_fast_for_tests": (OPSLIMIT_MIN, MEMLIMIT_MIN),
    }

    def __post_init__(self) -> None:
        for name, low, high in (
            ("opslimit", OPSLIMIT_MIN, OPSLIMIT_MAX),
            ("memlimit", MEMLIMIT_MIN, MEMLIMIT_MAX),
        ):
            value = getattr(self, name)
            if type(value) is not int:
                raise ValidationError(
                    f"{name} must be an int, got {type(value).__name__}"
                )
            if not low <= value <= high:
                raise ValidationError(
                    f"{name} must be between {low} and {high}, got {value}"
                )
        object.__setattr__(self, "memlimit", self.memlimit - self.memlimit % 1024)

    @classmethod
    def preset(cls, name: str) -> KdfProfile:
        """Return a named preset: default, moderate, sensitive or
        insecure_fast_for_tests (for test suites only: it offers no
        protection against password guessing)."""
        if not isinstance(name, str) or name not in cls.PRESETS:
            names = ", ".join(sorted(cls.PRESETS))
            shown = repr(name) if isinstance(name, str) else type(name).__name__
            raise ValidationError(f"kdf preset must be one of {names}, got {shown}")
        opslimit, memlimit = cls.PRESETS[name]
        return cls(opslimit=opslimit, memlimit=memlimit)

    @property
    def is_weak(self) -> bool:
        """True when the profile is below OWASP's minimum for Argon2id."""
        return self.opslimit < _WEAK_OPSLIMIT or self.memlimit < _WEAK_MEMLIMIT


DEFAULT_KDF = KdfProfile.preset("default")


class OtherKdf(Protocol):
    """A key derivation other than libsodium's, such as Go's multi-lane
    Argon2id: hashable, with its memory cost in bytes."""

    @property
    def memlimit(self) -> int: ...

    def derive(self, password: bytes, salt: bytes) -> bytes: ...

    def __hash__(self) -> int: ...


AnyKdf = KdfProfile | OtherKdf


@dataclass(frozen=True, slots=True)
class ReadLimit:
    """The largest Argon2id cost a store agrees to pay to open a value."""

    opslimit: int
    memlimit: int

    def admits(self, profile: KdfProfile) -> bool:
        return profile.opslimit <= self.opslimit and profile.memlimit <= self.memlimit


def read_limit(profile: KdfProfile, maximum: object = None) -> ReadLimit:
    """Return the costliest profile a store derives to read a value.

    That is `maximum` if given, else the sensitive preset's memory with twice
    its passes, and never less than the store's own profile.
    """
    if maximum is None:
        strongest = KdfProfile.preset("sensitive")
        maximum = KdfProfile(
            opslimit=strongest.opslimit * 2, memlimit=strongest.memlimit
        )
    if not isinstance(maximum, KdfProfile):
        raise ValidationError(
            f"max_read_kdf must be a KdfProfile or None, got {type(maximum).__name__}"
        )
    return ReadLimit(
        opslimit=max(profile.opslimit, maximum.opslimit),
        memlimit=max(profile.memlimit, maximum.memlimit),
    )


def resolve_profile(kdf: KdfProfile | str | None) -> KdfProfile:
    if kdf is None:
        return DEFAULT_KDF
    if isinstance(kdf, KdfProfile):
        return kdf
    if isinstance(kdf, str):
        return KdfProfile.preset(kdf)
    raise ValidationError(
        f"kdf must be a KdfProfile or a preset name, got {type(kdf).__name__}"
    )


class _MemoryBudget:
    """Blocks a worker thread until its derivation fits the memory budget."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def acquire(self, amount: int) -> int:
        # A single run larger than the whole budget still runs, alone.
        amount = min(amount, self._limit)
        with self._cond:
            while self._used + amount > self._limit:
                self._cond.wait()
            self._used += amount
        return amount

    def release(self, amount: int) -> None:
        with self._cond:
            self._used -= amount
            self._cond.notify_all()


class KdfExecutor:
    """Runs Argon2id in worker threads: at most `workers` at once, and only
    as many as fit in `memory_budget` bytes of Argon2 memory. A derivation
    larger than the whole budget runs alone.

    One instance is shared by every store in the process, so many stores
    or many concurrent operations cannot exhaust memory between them.
    """

    def __init__(self, workers: int, memory_budget: int) -> None:
        if type(workers) is not int or workers < 1:
            raise ValidationError(f"workers must be an int >= 1, got {workers!r}")
        if type(memory_budget) is not int or memory_budget < MEMLIMIT_MIN:
            raise ValidationError(
                f"memory_budget must be an int >= {MEMLIMIT_MIN} bytes,"
                f" got {memory_budget!r}"
            )
        self.workers = workers
        self.memory_budget = memory_budget
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="vaultstore-kdf"
        )
        self._budget = _MemoryBudget(memory_budget)
        self._lock = threading.Lock()
        self.runs = 0

    def _derive(self, password: bytes, salt: bytes, profile: AnyKdf) -> bytes:
        reserved = self._budget.acquire(profile.memlimit)
        try:
            if isinstance(profile, KdfProfile):
                key: bytes = argon2id.kdf(
                    KEY_BYTES,
                    password,
                    salt,
                    opslimit=profile.opslimit,
                    memlimit=profile.memlimit,
                )
            else:
                key = profile.derive(password, salt)
        except nacl.exceptions.CryptoError as exc:
            # The parameters are checked already, so libsodium fails here
            # when it cannot allocate memlimit bytes.
            raise VaultStoreError(
                f"key derivation failed: could not allocate {profile.memlimit}"
                " bytes for Argon2id"
            ) from exc
        finally:
            self._budget.release(reserved)
        with self._lock:
            self.runs += 1
        return key

    async def derive(self, password: bytes, salt: bytes, profile: AnyKdf) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self._derive, password, salt, profile
        )


def _default_executor() -> KdfExecutor:
    workers = max(1, os.cpu_count() or 1)
    return KdfExecutor(workers=workers, memory_budget=1024**3)


_shared: KdfExecutor | None = None
_shared_lock = threading.Lock()


def shared_executor() -> KdfExecutor:
    """Return the process-wide executor, creating it on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = _default_executor()
        return _shared
