"""AsyncStore: the public class, composed from one mixin per concern."""

from __future__ import annotations

from ._settings import SettingsOps


class AsyncStore(SettingsOps):
    """An encrypted secret store on SQLite, PostgreSQL or MariaDB/MySQL.

    Pass a database URL (the store then owns and closes the connection
    pool) or a connected or unconnected `databases.Database` (left open
    on close). Use it as `async with AsyncStore(url) as store:`.
    """
