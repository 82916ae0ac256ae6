"""The public names: sorted, importable and documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import vaultstore_async

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_all_is_sorted() -> None:
    assert vaultstore_async.__all__ == sorted(vaultstore_async.__all__)


def test_all_names_import() -> None:
    for name in vaultstore_async.__all__:
        assert hasattr(vaultstore_async, name), name


def test_all_names_have_docstrings() -> None:
    for name in vaultstore_async.__all__:
        obj = getattr(vaultstore_async, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name


def test_all_names_in_readme() -> None:
    for name in vaultstore_async.__all__:
        assert f"`{name}" in README, name


def test_public_methods_documented() -> None:
    for name, member in inspect.getmembers(vaultstore_async.AsyncStore):
        if name.startswith("_") or not callable(member):
            continue
        assert inspect.getdoc(member), name
        assert f"`{name}" in README, name
