"""A notebook-friendly client over the same engine as the dashboard, the CLI and the API.

>>> import nano_export
>>> nx = nano_export.connect("sqlite:///data/nano-export.db", user="ann")
>>> nx.count("evaluation-results", provider=["openai"], success=False)
>>> df = nx.preview("evaluation-results", where="cost_usd > 0.01", limit=10)
>>> record = nx.export("performance-metrics", out="metrics.parquet", format="parquet")
>>> df = nx.select("evaluation-results", provider="openai").to_pandas()  # redacted, no file
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from pydantic import ValidationError
from sqlalchemy import Engine

from nano_export import audit, jobs, privacy
from nano_export.auth import load_users, role_of
from nano_export.db import get_engine, read_connection, require_database
from nano_export.errors import BadInput, PermissionDenied
from nano_export.exporter import (
    count_rows,
    or_read_sql,
    plan_export,
    preview_on,
    read_ahead,
    transform,
)
from nano_export.models import (
    ALLOWED_LEVELS,
    AuditEvent,
    ExportFormat,
    ExportRecord,
    ExportRequest,
    FilterSpec,
    Privacy,
    Role,
)
from nano_export.settings import Settings, get_settings
from nano_export.typedcells import arrow_schema, typed_table


class Client:
    """One user's view of nano-export: counts, masked previews and exports, with their role."""

    def __init__(self, settings: Settings, *, user: str, role: Role) -> None:
        self.settings = settings
        self.user = user
        self.role = role
        self.engine: Engine = get_engine(settings.db_url)

    def __repr__(self) -> str:
        return f"<nano_export.Client user={self.user!r} role={self.role!r}>"

    @property
    def default_privacy(self) -> Privacy:
        """The most detailed privacy level this user's role may see."""
        allowed = ALLOWED_LEVELS[self.role]
        return "standard" if "standard" in allowed else allowed[-1]

    def _request(
        self,
        dataset: str,
        *,
        columns: Sequence[str] | None = None,
        rename: dict[str, str] | None = None,
        privacy: Privacy | None = None,
        format: ExportFormat | None = None,
        gzip: bool = False,
        excel: bool = False,
        **filters: Any,
    ) -> ExportRequest:
        fmt: str = format or ("csv.gz" if gzip else "csv")
        if gzip and fmt in ("csv", "jsonl"):
            fmt = f"{fmt}.gz"
        elif gzip and not fmt.endswith(".gz"):
            raise BadInput(f"gzip applies to csv and jsonl; format {fmt!r} is compressed already")
        try:
            return ExportRequest(
                dataset=dataset,
                filters=_filter_spec(filters),
                columns=list(columns) if columns else None,
                rename=rename or {},
                privacy=privacy or self.default_privacy,
                format=fmt,  # type: ignore[arg-type]
                excel=excel,
            )
        except ValidationError as exc:
            raise BadInput(_readable(exc)) from None

    def count(self, dataset: str = "evaluation-results", **filters: Any) -> int:
        """How many rows of ``dataset`` match the filters (provider, model, test, since, …)."""
        plan = plan_export(self._request(dataset, **filters))
        with read_connection(self.engine, self.settings.query_timeout_s) as conn:
            return count_rows(conn, plan)

    def preview(
        self,
        dataset: str = "evaluation-results",
        *,
        limit: int = 20,
        columns: Sequence[str] | None = None,
        privacy: Privacy | None = None,
        **filters: Any,
    ) -> pd.DataFrame:
        """The first rows as the export file would carry them, at the user's privacy level."""
        request = self._request(dataset, columns=columns, privacy=privacy, **filters)
        jobs.check_privacy(
            self.engine, user=self.user, role=self.role, request=request, interface="notebook"
        )
        plan = plan_export(request)
        with read_connection(self.engine, self.settings.query_timeout_s) as conn:
            return preview_on(conn, plan, secret=self.settings.resolved_secret(), limit=limit)

    def export(
        self,
        dataset: str = "evaluation-results",
        *,
        out: str | Path | None = None,
        columns: Sequence[str] | None = None,
        rename: dict[str, str] | None = None,
        privacy: Privacy | None = None,
        format: ExportFormat | None = None,
        gzip: bool = False,
        excel: bool = False,
        **filters: Any,
    ) -> ExportRecord:
        """Export to a file (the export folder, or ``out``); returns the finished record.

        ``format`` is csv (default), csv.gz, xlsx, parquet, jsonl or jsonl.gz; ``gzip=True``
        is csv.gz (or jsonl.gz with ``format="jsonl"``), ``excel=True`` a BOM on CSV.
        """
        request = self._request(
            dataset,
            columns=columns,
            rename=rename,
            privacy=privacy,
            format=format,
            gzip=gzip,
            excel=excel,
            **filters,
        )
        return jobs.submit_export(
            self.engine,
            self.settings,
            user=self.user,
            role=self.role,
            request=request,
            interface="notebook",
            wait=True,
            out_path=Path(out) if out is not None else None,
        )

    def select(
        self,
        dataset: str = "evaluation-results",
        *,
        columns: Sequence[str] | None = None,
        rename: dict[str, str] | None = None,
        privacy: Privacy | None = None,
        **filters: Any,
    ) -> Selection:
        """The matching rows as a ``Selection``: ``to_pandas()``/``to_arrow()`` without a file."""
        request = self._request(dataset, columns=columns, rename=rename, privacy=privacy, **filters)
        plan_export(request)  # a bad column, rename or filter is refused here
        return Selection(self, request)

    def exports(self) -> list[ExportRecord]:
        """This user's exports, newest first."""
        return jobs.list_exports(self.engine, user=self.user, settings=self.settings)

    def audit(self, *, since: datetime | None = None) -> list[AuditEvent]:
        """The audit log (admins only)."""
        if self.role != "admin":
            raise PermissionDenied("only admins may read the audit log")
        with self.engine.connect() as conn:
            return audit.list_events(conn, since=since)


class Selection:
    """Rows of one dataset under one filter, columns, renames and privacy level.

    ``to_arrow()`` and ``to_pandas()`` give the rows exactly as an export file would carry them
    (the same redaction, columns and names, typed as in Parquet), in memory and without a file.
    Reading is audited as ``export.succeeded`` from the notebook, without an export id.
    """

    def __init__(self, client: Client, request: ExportRequest) -> None:
        self.client = client
        self.request = request

    def __repr__(self) -> str:
        return f"<nano_export.Selection {self.request.dataset} {self.request.filters.to_json()}>"

    def count(self) -> int:
        """How many rows the selection holds."""
        return self.client.count(self.request.dataset, **_filter_kwargs(self.request.filters))

    def to_arrow(self) -> pa.Table:
        """The redacted rows as an Arrow table with typed columns (timestamps in UTC)."""
        client = self.client
        jobs.check_privacy(
            client.engine,
            user=client.user,
            role=client.role,
            request=self.request,
            interface="notebook",
        )
        plan = plan_export(self.request)
        secret = client.settings.resolved_secret()

        def read(native: bool | None = None) -> list[pa.Table]:
            chunks = read_ahead(client.engine, plan, client.settings.chunk_rows, native=native)
            memo = privacy.Redactions()
            try:
                return [
                    typed_table(
                        transform(chunk, plan, secret=secret, flags=flags, memo=memo),
                        plan.output_kinds,
                    )
                    for chunk, flags in chunks
                ]
            finally:
                chunks.close()

        batches = or_read_sql(read, plan)
        schema = arrow_schema(plan.output_names, plan.output_kinds)
        table = pa.concat_tables(batches) if batches else schema.empty_table()
        with client.engine.begin() as conn:
            audit.record(
                conn,
                event="export.succeeded",
                actor=client.user,
                interface="notebook",
                dataset=plan.dataset.name,
                privacy=plan.privacy,
                rows=table.num_rows,
                details={"in_memory": True},
            )
        return table

    def to_pandas(self) -> pd.DataFrame:
        """The redacted rows as a DataFrame (see ``to_arrow``)."""
        frame: pd.DataFrame = self.to_arrow().to_pandas()
        return frame

    def export(
        self, out: str | Path | None = None, *, format: ExportFormat | None = None
    ) -> ExportRecord:
        """Export the selection to a file; see ``Client.export``."""
        r = self.request
        return self.client.export(
            r.dataset,
            out=out,
            columns=r.columns,
            rename=r.rename,
            privacy=r.privacy,
            format=format,
            **_filter_kwargs(r.filters),
        )


def _filter_kwargs(spec: FilterSpec) -> dict[str, Any]:
    return {k: v for k, v in spec.model_dump(exclude_defaults=True).items()}


#: Filters that take several names; a single string is one name.
_LIST_FILTERS = frozenset({"provider", "model", "test"})


def _filter_spec(filters: dict[str, Any]) -> FilterSpec:
    """The FilterSpec of a call's filter keywords; BadInput for one that is not a filter."""
    known = list(FilterSpec.model_fields)
    for name in filters:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise BadInput(f"unknown filter {name!r}; {hint}the filters are: {', '.join(known)}")
    values: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name in _LIST_FILTERS:
            value = (value,) if isinstance(value, str) else value
            value = tuple(value) if isinstance(value, Sequence) else value
        values[name] = value
    return FilterSpec(**values)


def _readable(exc: ValidationError) -> str:
    """One line naming each invalid field (once, even in a union), its value and what it needs."""
    parts: dict[str, str] = {}
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "request"
        parts.setdefault(field, f"{field} {err['input']!r}: {err['msg']}")
    return "invalid " + "; ".join(parts.values())


def connect(url: str | None = None, *, user: str, role: Role | None = None) -> Client:
    """A client for ``user`` on the database at ``url`` (default: the configured one).

    The role comes from the users table. Only where the database has no users yet (a personal
    database) may ``role`` be passed for a name it does not hold. A database that does
    not exist or lacks the schema raises BadInput here, before any query, and creates nothing.
    """
    settings = get_settings(**({"database_url": url} if url else {}))
    engine = require_database(settings.db_url, pointer="the url given to connect()")
    found = role_of(engine, user.lower())
    if found is None and load_users(engine):
        raise PermissionDenied(
            f"unknown user {user!r} in the database: add it with `nano-export users add`"
        )
    if found is None and role is None:
        raise PermissionDenied(
            "the database has no users yet: pass role=... or add users with `nano-export users add`"
        )
    if found is not None and role is not None and role != found:
        raise PermissionDenied(f"user {user!r} has role {found!r}, not {role!r}")
    resolved = found if found is not None else role
    assert resolved is not None
    return Client(settings, user=user.lower(), role=resolved)
