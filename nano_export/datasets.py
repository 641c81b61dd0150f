"""The three exportable datasets: their columns, kinds and the SQL that reads them.

A dataset is a fixed SELECT over the schema. Filters (``filters.py``) and exports (``exporter.py``)
refer to columns by their exported names, so the expression language, the CSV header and the
documentation all use one vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Float, Select, case, cast, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.types import NullType

from nano_export.errors import UnknownDataset
from nano_export.schema import execution_metrics as m
from nano_export.schema import executions as e
from nano_export.schema import interactions as i

Kind = Literal["int", "float", "text", "bool", "datetime"]

#: Columns that may hold prompts, model output, errors or tool payloads.
FREE_TEXT = frozenset({"prompt", "response", "error", "arguments", "result"})
#: Columns that identify a person or a session.
IDENTITY = frozenset({"user", "session_id"})


@dataclass(frozen=True)
class Column:
    """One exported column: its name, kind, SQL expression and its data-dictionary entry."""

    name: str
    kind: Kind
    expr: ColumnElement[object]
    #: What the column holds (the data dictionary, shown in the dashboard, CLI, API and README).
    description: str = ""
    #: The unit of its values ("seconds", "USD", "tokens"), or "" when it has none.
    unit: str = ""
    #: For codes such as grades and rank: what each value means.
    meaning: str = ""

    @property
    def help(self) -> str:
        """The dictionary entry in one line: description, unit and meaning."""
        parts = [self.description]
        if self.unit:
            parts.append(f"Unit: {self.unit}.")
        if self.meaning:
            parts.append(self.meaning)
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Dataset:
    """An exportable dataset: ordered columns over a FROM clause, plus filter-only fields."""

    name: str
    description: str
    columns: tuple[Column, ...]
    from_: FromClause
    order_by: tuple[ColumnElement[object], ...]
    # The spec's fixed filter fields (provider, model, test_id, test_name, started_at, success).
    filter_fields: Mapping[str, ColumnElement[object]] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Exported column names in their default order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The column called ``name``; KeyError when the dataset has none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def kinds(self) -> dict[str, Kind]:
        """Column name → kind."""
        return {c.name: c.kind for c in self.columns}

    def select(
        self, names: Sequence[str] | None = None, *, raw: bool = False
    ) -> Select[*tuple[Any, ...]]:
        """SELECT of the named columns (all by default) in that order, without filters.

        ``raw=True`` returns values as the driver gives them, skipping SQLAlchemy's per-row result
        conversion (on SQLite, timestamps stay text and booleans 0/1): the CSV formatter handles
        both, and bulk exports read noticeably faster. Filters still bind through the typed columns.
        """
        cols = self.columns if names is None else tuple(self.column(n) for n in names)
        exprs = [type_coerce(c.expr, NullType()) if raw else c.expr for c in cols]
        return (
            select(*(e.label(c.name) for e, c in zip(exprs, cols, strict=True)))
            .select_from(self.from_)
            .order_by(*self.order_by)
        )


_GRADE_SCALE = "Grades run S (best), A, B, C, D, E to F (worst); empty when the run was not graded."
#: The data dictionary: description, unit and meaning of each column name. A name means the
#: same in every dataset, except in agent-interactions: ``_INTERACTION_DOCS`` holds all of its
#: columns, worded for a request, response or tool call.
DICTIONARY: dict[str, tuple[str, str, str]] = {
    "execution_id": ("Id of the agent execution (one model's run of one test).", "", ""),
    "eval_run_id": (
        "Id of the evaluation run the execution belongs to; empty for an ad-hoc run.",
        "",
        "",
    ),
    "test_id": ("Id of the evaluation test (the HOP/LOP test case).", "", ""),
    "test_name": ("Name of the evaluation test.", "", ""),
    "provider": ("LLM provider, normalised: openai, anthropic, ollama, or as given.", "", ""),
    "model": ("Full model id (aliases such as claude-opus-4-1 are expanded).", "", ""),
    "started_at": ("When the execution started.", "UTC timestamp (ISO 8601)", ""),
    "success": ("Whether the execution succeeded.", "", "true or false."),
    "error": ("Error message of a failed execution (free text, masked).", "", ""),
    "execution_time_s": ("Wall-clock time of the whole execution.", "seconds", ""),
    "input_tokens": ("Tokens sent to the model (prompt and context).", "tokens", ""),
    "output_tokens": ("Tokens the model generated.", "tokens", ""),
    "total_tokens": ("Input plus output tokens.", "tokens", ""),
    "cached_tokens": ("Input tokens served from the provider's prompt cache.", "tokens", ""),
    "reasoning_tokens": ("Output tokens spent on hidden reasoning.", "tokens", ""),
    "cost_usd": (
        "Cost of the execution, from the source or the versioned pricing table.",
        "USD",
        "",
    ),
    "input_cost_usd": ("Cost of the input tokens.", "USD", ""),
    "output_cost_usd": ("Cost of the output tokens.", "USD", ""),
    "cached_savings_usd": ("Saved by cached input tokens compared to full price.", "USD", ""),
    "tokens_per_second": ("Output tokens per second of execution time.", "tokens per second", ""),
    "perf_grade": (
        "Performance grade: accuracy and conciseness of the response.",
        "",
        _GRADE_SCALE,
    ),
    "speed_grade": (
        "Speed grade, relative within the test: fastest is S.",
        "",
        _GRADE_SCALE,
    ),
    "cost_grade": ("Cost grade, relative within the test: cheapest is S.", "", _GRADE_SCALE),
    "overall_grade": (
        "Overall grade: a weighted average of performance, speed and cost.",
        "",
        _GRADE_SCALE,
    ),
    "rank": (
        "Place of the model in the evaluation run's final ranking.",
        "",
        "1 is best; tied models share a place (1, 1, 3, …); empty without a ranking.",
    ),
    "prompt": ("The prompt given to the agent (free text, masked by privacy level).", "", ""),
    "response": ("The agent's final response (free text, masked by privacy level).", "", ""),
    "user": (
        "Who ran the execution; hashed at public (and kept at standard and full).",
        "",
        "",
    ),
    "session_id": ("Session of the run; hashed at public and standard.", "", ""),
    "source": ("Where the row was imported from (format and file name).", "", ""),
}
_INTERACTION_DOCS: dict[str, tuple[str, str, str]] = {
    "interaction_id": ("Id of the interaction (request, response or tool call).", "", ""),
    "execution_id": ("Id of the agent execution the interaction belongs to.", "", ""),
    "seq": ("Position of the interaction within its execution; lower comes first.", "", ""),
    "kind": (
        "What the interaction is.",
        "",
        "request: the prompt sent; response: the model's answer; tool_call: a tool the agent ran.",
    ),
    "tool_name": ("Name of the tool of a tool call; empty otherwise.", "", ""),
    "arguments": ("Arguments of the tool call, usually JSON (free text, masked).", "", ""),
    "result": ("What the tool or model returned (free text, masked).", "", ""),
    "is_error": ("Whether the tool call failed.", "", "true or false."),
    "duration_s": ("How long the interaction took.", "seconds", ""),
    "started_at": ("When the interaction started.", "UTC timestamp (ISO 8601)", ""),
    "provider": ("Provider of the execution the interaction belongs to.", "", ""),
    "model": ("Model of the execution the interaction belongs to.", "", ""),
}


def _col(
    name: str, kind: Kind, expr: ColumnElement[object], *, interaction: bool = False
) -> Column:
    docs = (_INTERACTION_DOCS if interaction else DICTIONARY)[name]
    return Column(name, kind, expr, *docs)


def _icol(name: str, kind: Kind, expr: ColumnElement[object]) -> Column:
    return _col(name, kind, expr, interaction=True)


_exec_join = e.outerjoin(m, m.c.execution_id == e.c.id)

_tokens_per_second = case(
    (e.c.execution_time_s > 0, cast(m.c.output_tokens, Float) / e.c.execution_time_s),
    else_=None,
)

_exec_filters: dict[str, ColumnElement[object]] = {
    "provider": e.c.provider,
    "model": e.c.model,
    "test_id": e.c.test_id,
    "test_name": e.c.test_name,
    "started_at": e.c.started_at,
    "success": e.c.success,
}

EVALUATION_RESULTS = Dataset(
    name="evaluation-results",
    description="One row per agent execution: grades, metrics, prompt and response.",
    columns=(
        _col("execution_id", "int", e.c.id),
        _col("eval_run_id", "int", e.c.eval_run_id),
        _col("test_id", "text", e.c.test_id),
        _col("test_name", "text", e.c.test_name),
        _col("provider", "text", e.c.provider),
        _col("model", "text", e.c.model),
        _col("started_at", "datetime", e.c.started_at),
        _col("success", "bool", e.c.success),
        _col("error", "text", e.c.error),
        _col("execution_time_s", "float", e.c.execution_time_s),
        _col("input_tokens", "int", m.c.input_tokens),
        _col("output_tokens", "int", m.c.output_tokens),
        _col("total_tokens", "int", m.c.total_tokens),
        _col("cached_tokens", "int", m.c.cached_tokens),
        _col("reasoning_tokens", "int", m.c.reasoning_tokens),
        _col("cost_usd", "float", m.c.cost_usd),
        _col("perf_grade", "text", e.c.perf_grade),
        _col("speed_grade", "text", e.c.speed_grade),
        _col("cost_grade", "text", e.c.cost_grade),
        _col("overall_grade", "text", e.c.overall_grade),
        _col("rank", "int", e.c.rank),
        _col("prompt", "text", e.c.prompt),
        _col("response", "text", e.c.response),
        _col("user", "text", e.c.user),
        _col("session_id", "text", e.c.session_id),
        _col("source", "text", e.c.source),
    ),
    from_=_exec_join,
    order_by=(e.c.id,),
    filter_fields=_exec_filters,
)

PERFORMANCE_METRICS = Dataset(
    name="performance-metrics",
    description="One row per agent execution: timing, tokens and costs.",
    columns=(
        _col("execution_id", "int", e.c.id),
        _col("provider", "text", e.c.provider),
        _col("model", "text", e.c.model),
        _col("started_at", "datetime", e.c.started_at),
        _col("success", "bool", e.c.success),
        _col("execution_time_s", "float", e.c.execution_time_s),
        _col("input_tokens", "int", m.c.input_tokens),
        _col("output_tokens", "int", m.c.output_tokens),
        _col("cached_tokens", "int", m.c.cached_tokens),
        _col("reasoning_tokens", "int", m.c.reasoning_tokens),
        _col("total_tokens", "int", m.c.total_tokens),
        _col("input_cost_usd", "float", m.c.input_cost_usd),
        _col("output_cost_usd", "float", m.c.output_cost_usd),
        _col("cached_savings_usd", "float", m.c.cached_savings_usd),
        _col("cost_usd", "float", m.c.cost_usd),
        _col("tokens_per_second", "float", _tokens_per_second),
    ),
    from_=_exec_join,
    order_by=(e.c.id,),
    filter_fields=_exec_filters,
)

AGENT_INTERACTIONS = Dataset(
    name="agent-interactions",
    description="One row per request, response or tool call inside an execution.",
    columns=(
        _icol("interaction_id", "int", i.c.id),
        _icol("execution_id", "int", i.c.execution_id),
        _icol("seq", "int", i.c.seq),
        _icol("kind", "text", i.c.kind),
        _icol("tool_name", "text", i.c.tool_name),
        _icol("arguments", "text", i.c.arguments),
        _icol("result", "text", i.c.result),
        _icol("is_error", "bool", i.c.is_error),
        _icol("duration_s", "float", i.c.duration_s),
        _icol("started_at", "datetime", i.c.started_at),
        _icol("provider", "text", e.c.provider),
        _icol("model", "text", e.c.model),
    ),
    from_=i.join(e, e.c.id == i.c.execution_id),
    order_by=(i.c.id,),
    filter_fields={**_exec_filters, "started_at": i.c.started_at},
)

DATASETS: dict[str, Dataset] = {
    d.name: d for d in (EVALUATION_RESULTS, PERFORMANCE_METRICS, AGENT_INTERACTIONS)
}


def get_dataset(name: str) -> Dataset:
    """The dataset called ``name``; UnknownDataset names the valid choices otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDataset(
            f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}"
        ) from None


def dictionary_markdown() -> str:
    """The data dictionary as Markdown tables, one per dataset (README, API description)."""
    out: list[str] = []
    for ds in DATASETS.values():
        out += [f"### `{ds.name}`", "", ds.description, ""]
        out += ["| column | kind | unit | description |", "|---|---|---|---|"]
        for col in ds.columns:
            text = " ".join(p for p in (col.description, col.meaning) if p).replace("|", "\\|")
            out.append(f"| `{col.name}` | {col.kind} | {col.unit} | {text} |")
        out.append("")
    return "\n".join(out)


def dictionary_text() -> str:
    """The data dictionary as plain text for ``--help`` (one block per dataset, kept unwrapped)."""
    blocks = ["Columns of each dataset (the data dictionary):"]
    for ds in DATASETS.values():
        lines = ["\b", f"{ds.name}: {ds.description}"]
        for col in ds.columns:
            unit = f" [{col.unit}]" if col.unit else ""
            lines.append(f"  {col.name}{unit}: {col.help.replace(f' Unit: {col.unit}.', '')}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
