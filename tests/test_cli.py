"""The vaultstore command line, run as a subprocess like an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import FAST_KDF

from vaultstore_async import AsyncStore

ROOT = Path(__file__).resolve().parent.parent
OLD = "an operator password 1234"
NEW = "a rotated operator password 5678"


def vaultstore(*args: str, env: dict[str, str] | None = None):
    environ = {**os.environ, "OLD_PW": OLD, "NEW_PW": NEW, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vaultstore_async", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=environ,
        stdin=subprocess.DEVNULL,
    )


def write_env(path: Path) -> dict[str, str]:
    values = {"API_KEY": "sk_test_123", "DB_PASSWORD": "p@ss 'quoted'", "EMPTY": ""}
    path.write_text(
        "API_KEY=sk_test_123\nDB_PASSWORD=\"p@ss 'quoted'\"\nEMPTY=\n",
        encoding="utf-8",
    )
    return values


async def test_migrate_prints_version(cli_url: str, cli_tables: list[str]) -> None:
    result = vaultstore("migrate", cli_url, *cli_tables)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "schema version 1"


async def test_status_counts_tokens(cli_url: str, cli_tables: list[str]) -> None:
    store = AsyncStore(
        cli_url, kdf=FAST_KDF, table_name=cli_tables[1], meta_table_name=cli_tables[3]
    )
    async with store:
        await store.create_token("a", OLD)
        past = datetime.now(UTC) - timedelta(minutes=1)
        await store.create_token("b", OLD, expires_at=past)
        gone = await store.create_token("c", OLD)
        await store.soft_delete_token(gone)
    result = vaultstore("status", cli_url, *cli_tables)
    assert result.returncode == 0, result.stderr
    assert "live tokens 1" in result.stdout
    assert "expired tokens 1" in result.stdout
    assert "soft-deleted tokens 1" in result.stdout


async def test_purge_expired_counts(cli_url: str, cli_tables: list[str]) -> None:
    store = AsyncStore(
        cli_url, kdf=FAST_KDF, table_name=cli_tables[1], meta_table_name=cli_tables[3]
    )
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with store:
        for _ in range(3):
            await store.create_token("x", OLD, expires_at=past)
    soft = vaultstore("purge-expired", cli_url, *cli_tables, "--soft")
    hard = vaultstore("purge-expired", cli_url, *cli_tables)
    assert soft.stdout.strip() == "soft-deleted 3 expired tokens"
    assert hard.stdout.strip() == "deleted 3 expired tokens"


async def test_import_resolve_round_trip(
    cli_url: str, cli_tables: list[str], tmp_path: Path
) -> None:
    source = tmp_path / "app.env"
    values = write_env(source)
    output = tmp_path / "app.tokens"
    imported = vaultstore(
        "import-env",
        cli_url,
        str(source),
        *cli_tables,
        "--kdf",
        "insecure_fast_for_tests",
        "--password-env",
        "OLD_PW",
        "--output",
        str(output),
    )
    assert imported.returncode == 0, imported.stderr
    tokenized = output.read_text(encoding="utf-8")
    assert "sk_test_123" not in tokenized
    resolved = vaultstore(
        "resolve-env", cli_url, str(output), *cli_tables, "--password-env", "OLD_PW"
    )
    assert resolved.returncode == 0, resolved.stderr
    assert "API_KEY=sk_test_123" in resolved.stdout
    assert "DB_PASSWORD='p@ss '\"'\"'quoted'\"'\"''" in resolved.stdout
    assert "EMPTY=''" in resolved.stdout
    assert len(values) == 3


async def test_change_password_rotates(
    cli_url: str, cli_tables: list[str], tmp_path: Path
) -> None:
    source = tmp_path / "app.env"
    write_env(source)
    output = tmp_path / "app.tokens"
    vaultstore(
        "import-env",
        cli_url,
        str(source),
        *cli_tables,
        "--kdf",
        "insecure_fast_for_tests",
        "--password-env",
        "OLD_PW",
        "--output",
        str(output),
    )
    changed = vaultstore(
        "change-password",
        cli_url,
        *cli_tables,
        "--kdf",
        "insecure_fast_for_tests",
        "--password-env",
        "OLD_PW",
        "--new-password-env",
        "NEW_PW",
    )
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "re-encrypted 3 tokens"
    assert "3/3" in changed.stderr
    old = vaultstore(
        "resolve-env", cli_url, str(output), *cli_tables, "--password-env", "OLD_PW"
    )
    new = vaultstore(
        "resolve-env", cli_url, str(output), *cli_tables, "--password-env", "NEW_PW"
    )
    assert old.returncode == 1
    assert new.returncode == 0


async def test_wrong_password_one_line(
    cli_url: str, cli_tables: list[str], tmp_path: Path
) -> None:
    source = tmp_path / "app.env"
    write_env(source)
    output = tmp_path / "app.tokens"
    vaultstore(
        "import-env",
        cli_url,
        str(source),
        *cli_tables,
        "--kdf",
        "insecure_fast_for_tests",
        "--password-env",
        "OLD_PW",
        "--output",
        str(output),
    )
    result = vaultstore(
        "resolve-env", cli_url, str(output), *cli_tables, "--password-env", "NEW_PW"
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert NEW not in result.stderr


def test_missing_password_env_is_usage() -> None:
    result = vaultstore(
        "resolve-env", "sqlite:///unused.db", "absent.env", "--password-env", "NOPE_PW"
    )
    assert result.returncode == 2


def test_no_prompt_without_terminal(tmp_path: Path) -> None:
    source = tmp_path / "app.env"
    write_env(source)
    result = vaultstore("import-env", f"sqlite:///{tmp_path / 'v.db'}", str(source))
    assert result.returncode == 2
    assert "--password-env" in result.stderr


def test_bad_url_is_usage() -> None:
    result = vaultstore("status", "bogus://nowhere")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_server_fails() -> None:
    result = vaultstore("status", "postgresql://postgres@127.0.0.1:1/test")
    assert result.returncode == 1
    assert "database is reachable" in result.stderr


def test_unknown_command_is_usage() -> None:
    result = vaultstore("nope")
    assert result.returncode == 2


def test_module_and_script_agree() -> None:
    result = vaultstore("--help")
    assert result.returncode == 0
    assert "change-password" in result.stdout
