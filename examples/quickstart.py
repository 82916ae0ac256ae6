"""Store the secrets of a .env file in a vault and read them back.

    python examples/quickstart.py [ENV_FILE] [--db PATH]

Prints a tokenized copy of the file (each value replaced by its token),
then resolves every token back and checks it against the original. Exits
with status 1 if any value does not come back unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from vaultstore_async import AsyncStore, KdfProfile

HERE = Path(__file__).resolve().parent
PASSWORD_ENV = "VAULTSTORE_PASSWORD"
DEMO_PASSWORD = "quickstart demo password, use your own"


def parse_env(text: str) -> list[tuple[str, str]]:
    """Return (name, value) pairs of a dotenv file, in file order."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pairs.append((name, value))
    return pairs


async def run(env_file: Path, db_path: Path, kdf: KdfProfile | str) -> int:
    pairs = parse_env(env_file.read_text(encoding="utf-8"))
    password = os.environ.get(PASSWORD_ENV, DEMO_PASSWORD)
    async with AsyncStore(f"sqlite:///{db_path}", kdf=kdf) as store:
        tokens = {}
        for name, value in pairs:
            tokens[name] = await store.create_token(value, password)

        print(f"# tokenized copy of {env_file.name} (vault: {db_path})")
        for name, _ in pairs:
            print(f"{name}={tokens[name]}")

        resolved = await store.resolve_tokens(tokens, password)
    mismatched = [name for name, value in pairs if resolved.get(name) != value]
    if mismatched:
        print(
            f"values that did not round-trip: {', '.join(mismatched)}", file=sys.stderr
        )
        return 1
    print(f"# all {len(pairs)} values read back unchanged")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "env_file",
        nargs="?",
        type=Path,
        default=HERE / "app.env",
        help="dotenv file to store (default: examples/app.env)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="SQLite file for the vault (default: a new file in a temporary folder)",
    )
    parser.add_argument(
        "--kdf",
        default="default",
        help="KDF preset: default, moderate, sensitive or insecure_fast_for_tests",
    )
    args = parser.parse_args(argv)
    if not args.env_file.is_file():
        print(f"env file not found: {args.env_file}", file=sys.stderr)
        return 2
    if args.db is not None:
        return asyncio.run(run(args.env_file, args.db, args.kdf))
    with tempfile.TemporaryDirectory(prefix="vaultstore-") as folder:
        return asyncio.run(run(args.env_file, Path(folder) / "vault.db", args.kdf))


if __name__ == "__main__":
    sys.exit(main())
