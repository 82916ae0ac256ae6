"""Running many coroutines at once, and calling progress callbacks."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._errors import ValidationError

T = TypeVar("T")
Progress = Callable[[int, int], Any]


async def run_all(coroutines: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run coroutines concurrently; on the first failure cancel the rest and
    raise that failure itself (not an ExceptionGroup)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        raise first from first.__cause__
    return [task.result() for task in tasks]


def check_progress(progress: object) -> None:
    """Raise ValidationError unless `progress` is callable or None."""
    if progress is not None and not callable(progress):
        raise ValidationError("progress must be callable or None")


async def report_progress(progress: Progress | None, first: int, second: int) -> None:
    """Call `progress(first, second)` if given, awaiting it if it is async."""
    if progress is None:
        return
    outcome = progress(first, second)
    if inspect.isawaitable(outcome):
        await outcome
