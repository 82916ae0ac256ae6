"""Counters of what a store has done since it connected."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Stats:
    """Operation counters; `AsyncStore.stats()` returns a copy as a dict."""

    key_derivations: int = 0
    key_cache_hits: int = 0
    key_cache_misses: int = 0
    statements: int = 0
    rows_read: int = 0
    rows_written: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)
