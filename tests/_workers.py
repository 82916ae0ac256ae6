"""Worker processes for the multi-process tests, and their shared helpers.

Run one worker as `python -m tests._workers MODE CONFIG` with the
repository root on PYTHONPATH (`run_workers` sets it up). CONFIG is a JSON
file naming the database, the tables, the KDF profile, the start barrier
and the JSON log that the worker writes when it ends. Each worker opens its
own store, so the processes share only the database.

Modes:
- mixed: create, read, update, soft delete, restore and renew.
- connect: connect() on a database that may not have the schema yet.
- rekey: change_password(old, new) once, after the writer has started.
- writer: update and create under the old password until rekey ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nacl.pwhash import argon2id

import vaultstore_async
from vaultstore_async import AsyncStore, KdfProfile, VaultStoreError, _envelope

ROOT = Path(__file__).resolve().parent.parent


def subprocess_env() -> dict[str, str]:
    """Return an environment in which a child interpreter imports the same
    vaultstore_async as this one, and tests._workers from this checkout.

    Run the child outside ROOT, because the working directory comes first
    on sys.path.
    """
    package_parent = str(Path(vaultstore_async.__file__).resolve().parent.parent)
    paths = [package_parent, str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


BARRIER_TIMEOUT = 90.0
WRITER_MAX_OPS = 3000
WRITER_MAX_SECONDS = 60.0

# Pieces of plaintext that exercise quoting and multibyte UTF-8.
VALUE_PIECES = ["plain", "é€😀", "'; DROP TABLE x; --", "%s :name ?", '\\n\t"q"']


# Helpers shared with the test modules


def open_stored(stored: str, token: str, password: str) -> str:
    """Decrypt a stored value outside any store; raise DecryptionError when
    `password` does not open it. Expiry and soft deletion are ignored."""
    envelope = _envelope.parse(stored)
    normalised = unicodedata.normalize("NFC", password).encode("utf-8")
    master = argon2id.kdf(
        32,
        normalised,
        envelope.salt,
        opslimit=envelope.profile.opslimit,
        memlimit=envelope.profile.memlimit,
    )
    return _envelope.open_box(master, token, envelope).decode("utf-8")


def run_workers(
    jobs: list[tuple[str, dict[str, Any]]],
    folder: Path,
    *,
    on_ready: Callable[[], None] | None = None,
    timeout: float = 180.0,
) -> list[list[dict[str, Any]]]:
    """Start one process per (mode, config), release them together, wait
    for all and return their logs in job order.

    Each process signals `ready` once its store is connected (in the
    connect mode, once it is built). When all are ready, `on_ready` runs
    and the start file appears, so the processes start their work together.
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = folder / "start"
    processes = []
    readies = []
    for index, (mode, config) in enumerate(jobs):
        ready = folder / f"{index}.ready"
        readies.append(ready)
        config = {
            **config,
            "start": str(start),
            "ready": str(ready),
            "log": str(folder / f"{index}.log.json"),
        }
        path = folder / f"{index}.config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests._workers", mode, str(path)],
                cwd=folder,
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not all(ready.exists() for ready in readies):
        if any(process.poll() is not None for process in processes):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    try:
        if on_ready is not None:
            on_ready()
    finally:
        start.touch()
    outputs = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        outputs.append((process.returncode, stderr))
    logs = []
    for index, (returncode, stderr) in enumerate(outputs):
        mode = jobs[index][0]
        assert returncode == 0, f"{mode} worker {index} exited {returncode}:\n{stderr}"
        log_path = folder / f"{index}.log.json"
        logs.append(json.loads(log_path.read_text(encoding="utf-8")))
    return logs


def documented_errors() -> set[str]:
    """Names of the exception classes the package exports."""
    names = set()
    for name in vaultstore_async.__all__:
        item = getattr(vaultstore_async, name)
        if isinstance(item, type) and issubclass(item, VaultStoreError):
            names.add(name)
    return names


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# Worker side


def make_store(config: dict[str, Any]) -> AsyncStore:
    opslimit, memlimit = config["kdf"]
    return AsyncStore(
        config["url"],
        table_name=config["table_name"],
        meta_table_name=config["meta_table_name"],
        kdf=KdfProfile(opslimit=opslimit, memlimit=memlimit),
    )


def wait_for_file(path: str | Path, timeout: float = BARRIER_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def barrier(config: dict[str, Any]) -> None:
    Path(config["ready"]).touch()
    if not wait_for_file(config["start"]):
        raise TimeoutError("start signal did not arrive")


class Recorder:
    """Outcome log of store calls: ok or the exception's name and message."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def run(self, entry: dict[str, Any], call: Awaitable[Any]) -> Any:
        entry["t0"] = time.time()
        result = None
        try:
            result = await call
        except VaultStoreError as exc:
            entry.update(ok=False, error=type(exc).__name__, message=str(exc))
        except Exception as exc:
            kind = type(exc)
            entry.update(
                ok=False,
                error=f"{kind.__module__}.{kind.__qualname__}",
                message=str(exc)[:300],
            )
        else:
            entry["ok"] = True
        entry["t1"] = time.time()
        self.entries.append(entry)
        return result


def random_value(rng: random.Random, label: str) -> str:
    filler = "".join(
        rng.choices("abcdefghijklmnopqrstuvwxyz0123456789 ", k=rng.randint(0, 120))
    )
    return f"{label}|{rng.choice(VALUE_PIECES)}|{filler}"


def random_expiry(rng: random.Random) -> datetime | None:
    """None, a time days ahead, or (one time in ten) a time in the past."""
    roll = rng.random()
    if roll < 0.3:
        return None
    now = datetime.now(UTC)
    if roll < 0.4:
        return now - timedelta(hours=rng.randint(1, 48))
    return now + timedelta(days=rng.randint(1, 30), microseconds=rng.randint(0, 999999))


def is_expired(expires: str | None) -> bool:
    return expires is not None and datetime.fromisoformat(expires) <= datetime.now(UTC)


class MixedWorker:
    """State of the mixed mode: the store, the log and the worker's own tokens.

    Calls on the worker's own tokens have an outcome known in advance: a
    value to read back, or an error recorded under `expect`. The shared
    tokens are read and updated by every worker at once.
    """

    KINDS = ("create", "read", "update", "soft_delete", "restore", "renew")
    WEIGHTS = (25, 25, 20, 9, 7, 14)

    def __init__(self, config: dict[str, Any], store: AsyncStore) -> None:
        self.rng = random.Random(config["seed"])
        self.worker = config["worker"]
        self.password = config["password"]
        self.shared: list[str] = config["shared_tokens"]
        self.own: dict[str, dict[str, Any]] = {}
        self.recorder = Recorder()
        self.store = store

    def live(self) -> list[str]:
        return [token for token, state in self.own.items() if state["live"]]

    def hidden(self) -> list[str]:
        return [token for token, state in self.own.items() if not state["live"]]

    def pick_kind(self) -> str:
        kind = self.rng.choices(self.KINDS, self.WEIGHTS)[0]
        if self.live() or (kind in ("read", "update") and self.shared):
            return kind
        return "create"

    async def step(self, index: int) -> None:
        kind = self.pick_kind()
        entry: dict[str, Any] = {"i": index, "op": kind, "worker": self.worker}
        await getattr(self, kind)(entry)

    async def create(self, entry: dict[str, Any]) -> None:
        value = random_value(self.rng, f"w{self.worker}/{entry['i']}")
        expires = random_expiry(self.rng)
        entry.update(value=value, expires=iso(expires))
        if self.rng.random() < 0.5:
            call = self.store.create_token(value, self.password, expires_at=expires)
            entry["token"] = await self.recorder.run(entry, call)
        else:
            suffix = f"{self.rng.getrandbits(32):08x}"
            token = f"cust-w{self.worker}-{entry['i']}-{suffix}"
            entry.update(op="create_custom", token=token)
            call = self.store.create_custom_token(
                entry["token"], value, self.password, expires_at=expires
            )
            await self.recorder.run(entry, call)
        if entry["ok"]:
            self.own[entry["token"]] = {
                "value": value,
                "live": True,
                "expires": iso(expires),
            }

    async def read(self, entry: dict[str, Any]) -> None:
        live = self.live()
        if live and (not self.shared or self.rng.random() < 0.7):
            token = self.rng.choice(live)
            entry.update(token=token, own=True)
            state = self.own[token]
            if is_expired(state["expires"]):
                entry["expect"] = "TokenExpiredError"
            else:
                entry["expected_value"] = state["value"]
        else:
            token = self.rng.choice(self.shared)
            entry.update(token=token, own=False)
        call = self.store.read_token(token, self.password)
        entry["value"] = await self.recorder.run(entry, call)

    async def update(self, entry: dict[str, Any]) -> None:
        value = random_value(self.rng, f"w{self.worker}/{entry['i']}")
        live = self.live()
        if live and (not self.shared or self.rng.random() < 0.6):
            token = self.rng.choice(live)
            entry.update(token=token, own=True, value=value)
        else:
            token = self.rng.choice(self.shared)
            entry.update(token=token, own=False, value=value)
        await self.recorder.run(
            entry, self.store.update_token(token, value, self.password)
        )
        if entry["ok"] and entry["own"]:
            self.own[token]["value"] = value

    async def soft_delete(self, entry: dict[str, Any]) -> None:
        token = self.rng.choice(self.live())
        entry.update(token=token, own=True)
        await self.recorder.run(entry, self.store.soft_delete_token(token))
        if entry["ok"]:
            self.own[token]["live"] = False

    async def restore(self, entry: dict[str, Any]) -> None:
        hidden = self.hidden()
        if hidden:
            token = self.rng.choice(hidden)
        else:
            token = self.rng.choice(self.live())
            entry["expect"] = "TokenNotFoundError"
        entry.update(token=token, own=True)
        await self.recorder.run(entry, self.store.restore_token(token))
        if entry["ok"]:
            self.own[token]["live"] = True

    async def renew(self, entry: dict[str, Any]) -> None:
        token = self.rng.choice(self.live())
        expires = random_expiry(self.rng)
        entry.update(token=token, own=True, expires=iso(expires))
        await self.recorder.run(entry, self.store.renew_token(token, expires))
        if entry["ok"]:
            self.own[token]["expires"] = iso(expires)


async def mixed(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `ops` random operations after the start signal."""
    store = make_store(config)
    await store.connect()
    worker = MixedWorker(config, store)
    barrier(config)
    try:
        for index in range(config["ops"]):
            await worker.step(index)
    finally:
        await store.close()
    return worker.recorder.entries


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"level": record.levelname, "message": record.getMessage()})


async def connect(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Connect once at the barrier and report the library's log lines."""
    handler = _ListHandler()
    logger = logging.getLogger("vaultstore_async")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    recorder = Recorder()
    store = make_store(config)
    barrier(config)
    entry: dict[str, Any] = {"op": "connect"}
    await recorder.run(entry, store.connect())
    if entry["ok"]:
        entry["version"] = await store.schema_version()
    await store.close()
    entry["logs"] = handler.records
    return recorder.entries


async def rekey(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Change the password once the writer has done its first write, then
    leave the done file that stops the writer."""
    recorder = Recorder()
    store = make_store(config)
    await store.connect()
    barrier(config)
    try:
        if not wait_for_file(config["warm"]):
            raise TimeoutError("the writer never started")
        pages: list[list[int]] = []

        async def progress(examined: int, changed: int) -> None:
            # A pause between pages lets the writer change rows that the
            # password change has read but not yet written, and rows ahead.
            pages.append([examined, changed])
            await asyncio.sleep(config["page_pause"])

        entry: dict[str, Any] = {"op": "change_password", "pages": pages}
        entry["changed"] = await recorder.run(
            entry,
            store.change_password(
                config["password"], config["new_password"], progress=progress
            ),
        )
    finally:
        Path(config["done"]).touch()
        await store.close()
    return recorder.entries


async def writer(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Update seeded tokens and create new ones under the old password
    until the done file appears (at most WRITER_MAX_OPS calls)."""
    rng = random.Random(config["seed"])
    tokens: list[str] = config["tokens"]
    password = config["password"]
    recorder = Recorder()
    store = make_store(config)
    await store.connect()
    barrier(config)

    deadline = time.monotonic() + WRITER_MAX_SECONDS
    try:
        for index in range(WRITER_MAX_OPS):
            if Path(config["done"]).exists() or time.monotonic() > deadline:
                break
            value = random_value(rng, f"writer/{index}")
            if index % 3 == 2:
                entry: dict[str, Any] = {"i": index, "op": "create", "value": value}
                call = store.create_token(value, password)
                entry["token"] = await recorder.run(entry, call)
            else:
                token = rng.choice(tokens)
                entry = {"i": index, "op": "update", "token": token, "value": value}
                await recorder.run(entry, store.update_token(token, value, password))
            # The rekey worker starts once this file exists.
            Path(config["warm"]).touch()
    finally:
        Path(config["warm"]).touch()
        await store.close()
    return recorder.entries


MODES = {"mixed": mixed, "connect": connect, "rekey": rekey, "writer": writer}


def main(arguments: Iterable[str]) -> int:
    mode, config_path = list(arguments)
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    entries = asyncio.run(MODES[mode](config))
    Path(config["log"]).write_text(json.dumps(entries), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
