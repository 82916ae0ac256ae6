"""The quickstart example runs end to end on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "quickstart.py"
ENV_FILE = ROOT / "examples" / "app.env"


def env_pairs() -> list[tuple[str, str]]:
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        from quickstart import parse_env
    finally:
        sys.path.pop(0)
    return parse_env(ENV_FILE.read_text(encoding="utf-8"))


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_quickstart_round_trips(tmp_path: Path) -> None:
    result = run_example("--db", str(tmp_path / "vault.db"))
    assert result.returncode == 0, result.stderr
    assert "read back unchanged" in result.stdout


def test_quickstart_prints_tokens_only(tmp_path: Path) -> None:
    result = run_example("--db", str(tmp_path / "vault.db"))
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    printed = dict(line.split("=", 1) for line in lines)
    for name, value in env_pairs():
        assert printed[name].startswith("tk_")
        if len(value) > 3:
            assert value not in result.stdout


def test_quickstart_parses_quotes() -> None:
    pairs = dict(env_pairs())
    assert pairs["AWS_SECRET_ACCESS_KEY"] == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYInventedKEY"
    assert pairs["EMPTY_OPTIONAL_TOKEN"] == ""


def test_quickstart_fails_on_missing_file(tmp_path: Path) -> None:
    result = run_example(str(tmp_path / "absent.env"), "--db", str(tmp_path / "v.db"))
    assert result.returncode != 0
