"""A database server stopped and started under a connected store.

Stopping a server disturbs everything else that uses it, so these tests
run only when VAULTSTORE_TEST_RESTART_SERVERS=1 is set (as `.ci/run` does,
where nothing else runs), and only as root on a machine whose servers are
managed with Debian's tools.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PASSWORD, MakeStore

from vaultstore_async import BackendError

pytestmark = pytest.mark.skipif(
    os.environ.get("VAULTSTORE_TEST_RESTART_SERVERS") != "1",
    reason="set VAULTSTORE_TEST_RESTART_SERVERS=1 to let tests stop the servers",
)

READY_SECONDS = 60


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=READY_SECONDS)


def _ready(*command: str) -> bool:
    return subprocess.run(command, capture_output=True, timeout=10).returncode == 0


def _wait(*command: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not _ready(*command):
        if time.monotonic() > deadline:
            raise TimeoutError(f"server not ready after {READY_SECONDS} s")
        time.sleep(0.5)


def stop_server(backend: str) -> None:
    if backend == "postgresql":
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop")
    else:
        _run(
            "mysqladmin", "--protocol=tcp", "-h", "127.0.0.1", "-u", "root", "shutdown"
        )
        deadline = time.monotonic() + READY_SECONDS
        while Path("/run/mysqld/mysqld.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)


def start_server(backend: str) -> None:
    """Start the server unless it is running, and wait until it accepts
    connections."""
    if backend == "postgresql":
        if _ready("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"):
            return
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")
        _wait("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432")
    else:
        _run(
            "start-stop-daemon",
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            "/usr/sbin/mariadbd",
        )
        _wait("mysqladmin", "--protocol=tcp", "-h", "127.0.0.1", "-u", "root", "status")


@pytest.fixture
def server(backend: str) -> str:
    if backend == "sqlite":
        pytest.skip("SQLite has no server to stop")
    return backend


async def test_store_survives_server_restart(
    server: str, make_store: MakeStore
) -> None:
    store = await make_store()
    token = await store.create_token("kept", PASSWORD)
    try:
        stop_server(server)
        with pytest.raises(BackendError):
            await store.create_token("lost", PASSWORD)
        with pytest.raises(BackendError):
            await store.read_token(token, PASSWORD)
    finally:
        start_server(server)
    assert await store.read_token(token, PASSWORD) == "kept"
    assert await store.count_records() == 1
    assert await store.create_token("after", PASSWORD)
