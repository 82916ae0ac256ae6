"""The `vaultstore` command line for operators.

Passwords come from an environment variable named with --password-env
(and --new-password-env), or from a prompt. They never come from the
arguments, because other users of the machine can read the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shlex
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ._errors import BackendError, ValidationError, VaultStoreError
from ._query import RecordQuery
from ._store import AsyncStore, import_go

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command line input; reported with exit status 2."""


def _password(env_name: str | None, prompt: str, confirm: bool = False) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise UsageError(f"environment variable {env_name} is not set")
        return value
    if not sys.stdin.isatty():
        raise UsageError(
            "no terminal to prompt for the password; name an environment"
            " variable with --password-env"
        )
    try:
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat: ") != value:
            raise UsageError("the two passwords differ")
    except EOFError:
        raise UsageError("no password given") from None
    return value


def _read_passwords(args: argparse.Namespace) -> None:
    """Ask for passwords before the event loop starts, so Ctrl-C at a prompt
    ends the program at once."""
    if args.command == "change-password":
        args.old_password = _password(args.password_env, "Current password: ")
        args.new_password = _password(
            args.new_password_env, "New password: ", confirm=True
        )
    elif args.command == "import-env":
        args.password = _password(args.password_env, "Password: ", confirm=True)
    elif args.command in ("resolve-env", "upgrade-format"):
        args.password = _password(args.password_env, "Password: ")


def _go_presets(names: list[str] | None) -> tuple[str | tuple[int, int, int], ...]:
    if not names:
        return ("default",)
    presets: list[str | tuple[int, int, int]] = []
    for name in names:
        if "," not in name:
            presets.append(name)
            continue
        parts = [part.strip() for part in name.split(",")]
        if len(parts) != 3 or not all(
            part.isascii() and part.isdigit() for part in parts
        ):
            raise UsageError(
                "--go-preset takes a preset name or TIME,MEMORY_KIB,LANES,"
                f" got {name!r}"
            )
        time, memory_kib, lanes = (int(part) for part in parts)
        presets.append((time, memory_kib, lanes))
    return tuple(presets)


def _store(args: argparse.Namespace) -> AsyncStore:
    return AsyncStore(
        args.url,
        table_name=args.table,
        meta_table_name=args.meta_table,
        kdf=args.kdf,
        go_presets=_go_presets(getattr(args, "go_preset", None)),
    )


async def _migrate(args: argparse.Namespace) -> int:
    async with _store(args) as store:
        version = await store.migrate()
    print(f"schema version {version}")
    return EXIT_OK


async def _status(args: argparse.Namespace) -> int:
    store = AsyncStore(
        args.url,
        table_name=args.table,
        meta_table_name=args.meta_table,
        automigrate=False,
    )
    async with store:
        version = await store.schema_version()
        if version == 0:
            print("schema version 0 (not migrated; run 'vaultstore migrate')")
            return EXIT_OK
        live = await store.count_records(RecordQuery(expired=False))
        expired = await store.count_records(RecordQuery(expired=True))
        deleted = await store.count_records(RecordQuery(only_soft_deleted=True))
    print(f"schema version {version}")
    print(f"live tokens {live}")
    print(f"expired tokens {expired}")
    print(f"soft-deleted tokens {deleted}")
    return EXIT_OK


async def _purge(args: argparse.Namespace) -> int:
    async with _store(args) as store:
        if args.soft:
            count = await store.soft_delete_expired_tokens()
            print(f"soft-deleted {count} expired tokens")
        else:
            count = await store.delete_expired_tokens()
            print(f"deleted {count} expired tokens")
    return EXIT_OK


async def _change_password(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]

    old, new = args.old_password, args.new_password
    async with _store(args) as store:
        total = await store.count_records(RecordQuery(include_soft_deleted=True))
        with tqdm(total=total, unit="row", disable=args.quiet, file=sys.stderr) as bar:

            def progress(examined: int, changed: int) -> None:
                bar.update(examined - bar.n)
                bar.set_postfix(changed=changed)

            changed = await store.change_password(old, new, progress=progress)
    print(f"re-encrypted {changed} tokens")
    return EXIT_OK


def _read_env(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    if not path.is_file():
        raise UsageError(f"env file not found: {path}")
    values = dotenv_values(path)
    return {name: value or "" for name, value in values.items()}


async def _import_env(args: argparse.Namespace) -> int:
    values = _read_env(args.file)
    output: Path = args.output or args.file.with_name(args.file.name + ".tokens")
    folder = output.resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {output}: folder missing or not writable")
    async with _store(args) as store:
        lines = []
        for name, value in values.items():
            token = await store.create_token(value, args.password)
            lines.append(f"{name}={token}\n")
    # Written beside the target and renamed over it, so a failure never
    # leaves a truncated tokens file behind.
    partial = output.with_name(output.name + ".partial")
    partial.write_text("".join(lines), encoding="utf-8")
    os.replace(partial, output)
    print(f"stored {len(lines)} values; tokenized copy written to {output}")
    return EXIT_OK


async def _resolve_env(args: argparse.Namespace) -> int:
    tokens = _read_env(args.file)
    empty = [name for name, token in tokens.items() if not token]
    if empty:
        raise UsageError(f"{args.file} has no token for: {', '.join(empty)}")
    async with _store(args) as store:
        values = await store.resolve_tokens(tokens, args.password)
    missing = [name for name in tokens if name not in values]
    if missing:
        raise VaultStoreError(f"expired tokens for: {', '.join(missing)}")
    for name, value in values.items():
        print(f"{name}={shlex.quote(value)}")
    return EXIT_OK


async def _upgrade_format(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    seen = [0]
    async with _store(args) as store:
        with tqdm(unit="row", disable=args.quiet, file=sys.stderr) as bar:

            def progress(examined: int, changed: int) -> None:
                seen[0] = examined
                bar.update(examined - bar.n)
                bar.set_postfix(changed=changed)

            changed = await store.upgrade_format(args.password, progress=progress)
    examined = seen[0]
    print(f"re-encrypted {changed} Go-format tokens")
    if examined and not changed:
        print(
            f"none of the {examined} Go-format rows opened with this password;"
            " check the password and --go-preset",
            file=sys.stderr,
        )
    return EXIT_OK


async def _import_go(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with tqdm(unit="row", disable=args.quiet, file=sys.stderr) as bar:

        def progress(examined: int, total: int) -> None:
            bar.total = total
            bar.update(examined - bar.n)

        report = await import_go(
            args.source_url,
            args.target_url,
            source_table=args.source_table,
            source_meta_table=args.source_meta_table,
            table_name=args.table,
            meta_table_name=args.meta_table,
            dry_run=args.dry_run,
            progress=progress,
        )
    for rejection in report.rejected:
        print(f"rejected {rejection.source}: {rejection.reason}")
    print(report.summary())
    return EXIT_FAILED if report.rejected else EXIT_OK


_Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaultstore", description="Operate a vaultstore_async vault."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "url", help="database URL, e.g. sqlite:///vault.db or postgresql://host/db"
    )
    common.add_argument("--table", default="vault", help="vault table name")
    common.add_argument("--meta-table", default="vault_meta", help="meta table name")
    common.add_argument(
        "--kdf",
        default="default",
        help="KDF preset for values written: default, moderate, sensitive",
    )
    secret = argparse.ArgumentParser(add_help=False)
    secret.add_argument(
        "--password-env",
        metavar="NAME",
        help="environment variable holding the password (else a prompt)",
    )
    secret.add_argument(
        "--go-preset",
        action="append",
        metavar="PRESET",
        help="Argon2 setting of Go v2 values to try: default, lightweight, high"
        " or TIME,MEMORY_KIB,LANES. Repeat it to try several (default: default)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, handler: _Command, help: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, parents=[common, *parents])
        sub.set_defaults(handler=handler)
        return sub

    add("migrate", _migrate, "apply migrations and print the schema version")
    add("status", _status, "print schema version and token counts")
    purge = add("purge-expired", _purge, "delete expired tokens and print the count")
    purge.add_argument(
        "--soft", action="store_true", help="soft-delete instead of deleting"
    )
    change = add(
        "change-password",
        _change_password,
        "re-encrypt tokens under a new password",
        secret,
    )
    change.add_argument(
        "--new-password-env",
        metavar="NAME",
        help="environment variable holding the new password (else a prompt)",
    )
    change.add_argument("--quiet", action="store_true", help="hide the progress bar")
    imp = add(
        "import-env",
        _import_env,
        "store a dotenv file's values and write tokens",
        secret,
    )
    imp.add_argument("file", type=Path, help="dotenv file to import")
    imp.add_argument(
        "--output",
        type=Path,
        help="where to write the tokenized copy (default: FILE.tokens)",
    )
    res = add(
        "resolve-env",
        _resolve_env,
        "print a tokenized dotenv file's values",
        secret,
    )
    res.add_argument("file", type=Path, help="tokenized dotenv file")
    upgrade = add(
        "upgrade-format",
        _upgrade_format,
        "re-encrypt Go VaultStore values into this library's format",
        secret,
    )
    upgrade.add_argument("--quiet", action="store_true", help="hide the progress bar")
    go = commands.add_parser(
        "import-go",
        help="copy a Go VaultStore table into a vaultstore_async table",
        description="Copy every row and vault setting of a Go VaultStore table."
        " Rows imported before are skipped, or updated with deletions, earlier"
        " expiries and new values made in Go. Exit status 1 if any row or"
        " setting was rejected.",
    )
    go.set_defaults(handler=_import_go)
    go.add_argument("source_url", help="database URL of the Go tables")
    go.add_argument("target_url", help="database URL to import into")
    go.add_argument("--source-table", default="vault", help="Go vault table name")
    go.add_argument(
        "--source-meta-table", default="vault_meta", help="Go meta table name"
    )
    go.add_argument(
        "--table", "--target-table", default="vault", help="target vault table name"
    )
    go.add_argument(
        "--meta-table",
        "--target-meta-table",
        default="vault_meta",
        help="target meta table name",
    )
    go.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would be imported without writing any row or setting",
    )
    go.add_argument("--quiet", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: _Command = args.handler
    try:
        _read_passwords(args)
        return asyncio.run(handler(args))
    except (UsageError, ValidationError) as exc:
        print(f"vaultstore: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendError as exc:
        print(
            f"vaultstore: {args.command} failed: {exc}; check the URL and that"
            " the database is reachable",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except VaultStoreError as exc:
        print(f"vaultstore: {args.command} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(
            f"vaultstore: {args.command} failed: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vaultstore: interrupted", file=sys.stderr)
        return EXIT_FAILED


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
