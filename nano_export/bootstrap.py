"""First-run and every-run setup shared by the CLI, the dashboard and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from nano_export.db import get_engine, upgrade
from nano_export.pricing import sync_pricing
from nano_export.settings import Settings


@dataclass(frozen=True)
class InitReport:
    """What ``initialize`` did."""

    database: str
    pricing_rows: int


def initialize(settings: Settings) -> InitReport:
    """Upgrade the schema to head, store the pricing table and make sure a secret key exists."""
    engine: Engine = get_engine(settings.db_url)
    upgrade(engine)
    with engine.begin() as conn:
        added = sync_pricing(conn)
    settings.resolved_secret()
    settings.export_dir.mkdir(parents=True, exist_ok=True)
    return InitReport(database=engine.url.render_as_string(hide_password=True), pricing_rows=added)
