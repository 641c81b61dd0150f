"""First-run and every-run setup shared by the CLI, the dashboard and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from nano_export import auth, keystore
from nano_export.db import get_engine, upgrade
from nano_export.pricing import sync_pricing
from nano_export.settings import Settings


@dataclass(frozen=True)
class InitReport:
    """What ``initialize`` did."""

    database: str
    pricing_rows: int
    imported_users: tuple[str, ...] = ()


def initialize(settings: Settings) -> InitReport:
    """Upgrade the schema, store the pricing table, the signing secret and an older users file.

    Without ``NANO_EXPORT_SECRET_KEY`` the signing secret is generated once into the database (an
    older ``secret.key`` file's value is moved there, so identifier hashes stay the same). The
    users of an older YAML users file (``NANO_EXPORT_AUTH_FILE``) are imported once.
    """
    engine: Engine = get_engine(settings.db_url)
    upgrade(engine)
    with engine.begin() as conn:
        added = sync_pricing(conn)
    if not settings.secret_key:
        keystore.ensure_secret(engine, legacy_file=settings.secret_file)
    imported = auth.import_users_file(engine, settings.auth_file)
    settings.export_dir.mkdir(parents=True, exist_ok=True)
    return InitReport(
        database=engine.url.render_as_string(hide_password=True),
        pricing_rows=added,
        imported_users=tuple(imported),
    )
