"""A background worker that purges expired tokens on an interval.

    VAULT_URL=postgresql://host/db python examples/worker.py --interval 300

It stops cleanly on SIGTERM or SIGINT (finishing the sweep in progress) and
when its task is cancelled, and always closes the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from vaultstore_async import AsyncStore, BackendError

logger = logging.getLogger("vault_worker")


async def purge_forever(
    store: AsyncStore, interval: float, stop: asyncio.Event, soft: bool = False
) -> None:
    """Sweep expired tokens every `interval` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            if soft:
                count = await store.soft_delete_expired_tokens()
            else:
                count = await store.delete_expired_tokens()
            logger.info("purged %d expired tokens", count)
        except BackendError as exc:
            # A database outage should not end the worker; try next round.
            logger.warning("purge failed, retrying in %.0f s: %s", interval, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run(url: str, interval: float, soft: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncStore(url) as store:
        logger.info("worker started, purging every %.0f s", interval)
        await purge_forever(store, interval, stop, soft)
    logger.info("worker stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("VAULT_URL", "sqlite:///vault.db"),
        help="database URL (default: $VAULT_URL or sqlite:///vault.db)",
    )
    parser.add_argument(
        "--interval", type=float, default=300.0, help="seconds between sweeps"
    )
    parser.add_argument(
        "--soft", action="store_true", help="soft-delete instead of deleting"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(args.url, args.interval, args.soft))
    return 0


if __name__ == "__main__":
    sys.exit(main())
