"""Smoke tests of the FastAPI and worker examples."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from conftest import FAST_KDF, PASSWORD

from vaultstore_async import AsyncStore, RecordQuery

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "a user's long passphrase 42"


def load_example(name: str) -> ModuleType:
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    testclient = pytest.importorskip("fastapi.testclient")
    monkeypatch.setenv("VAULT_URL", f"sqlite:///{tmp_path / 'api.db'}")
    monkeypatch.setenv("VAULT_KDF", "insecure_fast_for_tests")
    app = load_example("fastapi_app").app
    with testclient.TestClient(app) as test_client:
        yield test_client


def test_api_saves_and_uses_key(client) -> None:
    saved = client.put(
        "/users/42/api-key",
        json={"api_key": "sk_live_abcd1234", "passphrase": PASSPHRASE},
    )
    used = client.post("/users/42/api-key/use", json={"passphrase": PASSPHRASE})
    assert saved.status_code == 204
    assert used.status_code == 200
    assert used.json() == {"status": "called", "key_ending": "1234"}


def test_api_replaces_key(client) -> None:
    for key in ("sk_first_0001", "sk_second_0002"):
        client.put("/users/7/api-key", json={"api_key": key, "passphrase": PASSPHRASE})
    used = client.post("/users/7/api-key/use", json={"passphrase": PASSPHRASE})
    assert used.json()["key_ending"] == "0002"


def test_api_hides_failure_reason(client) -> None:
    client.put(
        "/users/1/api-key", json={"api_key": "sk_live_9999", "passphrase": PASSPHRASE}
    )
    wrong = client.post(
        "/users/1/api-key/use", json={"passphrase": "not the one at all"}
    )
    missing = client.post("/users/2/api-key/use", json={"passphrase": PASSPHRASE})
    assert wrong.status_code == missing.status_code == 404
    assert wrong.json() == missing.json()


def test_api_rejects_weak_passphrase(client) -> None:
    response = client.put(
        "/users/3/api-key", json={"api_key": "sk_x", "passphrase": "short"}
    )
    assert response.status_code == 422
    assert "short" not in response.text.replace("at least", "")


def test_api_forgets_key(client) -> None:
    client.put(
        "/users/5/api-key", json={"api_key": "sk_live_5555", "passphrase": PASSPHRASE}
    )
    first = client.delete("/users/5/api-key")
    second = client.delete("/users/5/api-key")
    assert first.status_code == 204
    assert second.status_code == 404


async def seed_expired(url: str, count: int) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    async with AsyncStore(url, kdf=FAST_KDF) as store:
        for _ in range(count):
            await store.create_token("old", PASSWORD, expires_at=past)
        await store.create_token("current", PASSWORD)


async def count_rows(url: str) -> int:
    async with AsyncStore(url, kdf=FAST_KDF) as store:
        return await store.count_records(RecordQuery(include_soft_deleted=True))


async def test_worker_purges_then_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    await seed_expired(url, 3)
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "worker.py"),
            "--url",
            url,
            "--interval",
            "0.2",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and await count_rows(url) != 1:
        await asyncio.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "purged 3 expired tokens" in stderr
    assert "worker stopped" in stderr
    assert await count_rows(url) == 1


async def test_worker_task_cancels_cleanly(tmp_path: Path) -> None:
    worker = load_example("worker")
    url = f"sqlite:///{tmp_path / 'cancel.db'}"
    async with AsyncStore(url, kdf=FAST_KDF) as store:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.purge_forever(store, 60.0, stop))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.count_records() == 0
