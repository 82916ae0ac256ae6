"""`vaultstore import-go` and `vaultstore upgrade-format`, run as an
operator would, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from _go_helpers import (
    create_go_tables,
    drop_go_tables,
    go_row,
    go_table_names,
    insert_go_rows,
    insert_go_setting,
    legacy_encode,
    vectors,
)
from _helpers import stored_value
from conftest import FAST_KDF
from test_cli import vaultstore

from vaultstore_async import AsyncStore

PW = "pw-sixteen-chars"
LIGHT_HELLO = next(
    str(v["stored"])
    for v in vectors()
    if v["preset"] == "lightweight"
    and v["password"] == PW
    and v["plaintext"] == "hello"
)


@pytest_asyncio.fixture
async def go_tables(cli_url: str) -> AsyncIterator[list[str]]:
    vault, meta = go_table_names()
    await create_go_tables(cli_url, vault, meta)
    await insert_go_rows(
        cli_url,
        vault,
        [
            go_row("1", "tk_light", LIGHT_HELLO),
            go_row("2", "tk_legacy", legacy_encode("old secret", PW)),
            go_row("3", "tk_bad", "not a go value!"),
        ],
    )
    await insert_go_setting(cli_url, meta, "owner", "ops")
    try:
        yield ["--source-table", vault, "--source-meta-table", meta]
    finally:
        await drop_go_tables(cli_url, vault, meta)


async def test_import_go_cli_idempotent(
    cli_url: str, cli_tables: list[str], go_tables: list[str]
) -> None:
    dry = vaultstore(
        "import-go", cli_url, cli_url, *go_tables, *cli_tables, "--dry-run"
    )
    assert dry.returncode == 1, dry.stderr
    assert "rejected row 3: vault_value is not in a Go VaultStore format" in dry.stdout
    assert "would import 2 rows" in dry.stdout

    first = vaultstore("import-go", cli_url, cli_url, *go_tables, *cli_tables)
    assert first.returncode == 1, first.stderr
    assert (
        "imported 2 rows, updated 0, skipped 0 already imported, rejected 1"
        in first.stdout
    )
    assert "settings: imported 1" in first.stdout
    again = vaultstore("import-go", cli_url, cli_url, *go_tables, *cli_tables)
    assert (
        "imported 0 rows, updated 0, skipped 2 already imported, rejected 1"
        in again.stdout
    )

    names = {"table_name": cli_tables[1], "meta_table_name": cli_tables[3]}
    async with AsyncStore(
        cli_url, kdf=FAST_KDF, go_presets=("lightweight",), **names
    ) as store:
        assert await store.read_token("tk_light", PW) == "hello"
        assert await store.read_token("tk_legacy", PW) == "old secret"
        assert await store.get_setting("owner") == "ops"

    upgraded = vaultstore(
        "upgrade-format",
        cli_url,
        *cli_tables,
        "--kdf",
        "insecure_fast_for_tests",
        "--password-env",
        "GO_PW",
        "--go-preset",
        "lightweight",
        "--quiet",
        env={"GO_PW": PW},
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "none of the" not in upgraded.stderr
    assert "re-encrypted 2 Go-format tokens" in upgraded.stdout
    assert PW not in upgraded.stdout + upgraded.stderr
    for token in ("tk_light", "tk_legacy"):
        value = await stored_value(cli_url, cli_tables[1], token)
        assert value.startswith("vs1:")


async def test_upgrade_wrong_password_hint(
    cli_url: str, cli_tables: list[str], go_tables: list[str]
) -> None:
    vaultstore("import-go", cli_url, cli_url, *go_tables, *cli_tables)
    result = vaultstore(
        "upgrade-format",
        cli_url,
        *cli_tables,
        "--password-env",
        "GO_PW",
        "--quiet",
        env={"GO_PW": "not the password at all"},
    )
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 0 Go-format tokens" in result.stdout
    assert "none of the 2 Go-format rows opened" in result.stderr
    assert "not the password" not in result.stdout + result.stderr


async def test_import_go_usage_errors(cli_url: str, cli_tables: list[str]) -> None:
    missing = vaultstore(
        "import-go", cli_url, cli_url, "--source-table", "nope", *cli_tables
    )
    assert missing.returncode == 2
    assert "source_table 'nope' does not exist" in missing.stderr
    bad_preset = vaultstore(
        "upgrade-format",
        cli_url,
        *cli_tables,
        "--password-env",
        "GO_PW",
        "--go-preset",
        "3,64",
        env={"GO_PW": PW},
    )
    assert bad_preset.returncode == 2
    assert "--go-preset takes a preset name" in bad_preset.stderr
    superscript = vaultstore(
        "upgrade-format",
        cli_url,
        *cli_tables,
        "--password-env",
        "GO_PW",
        "--go-preset",
        "1,\u00b2,3",
        env={"GO_PW": PW},
    )
    assert superscript.returncode == 2
    assert "Traceback" not in superscript.stderr
