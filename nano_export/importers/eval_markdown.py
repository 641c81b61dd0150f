"""nano-agent evaluation-result markdown: one run of a test across models, as three tables.

The "Agent Responses", "Results Summary" (grades) and "Performance Metrics" tables are joined per
model (aliases normalised to full ids); "Final Ranking" gives each model's rank (ties share it).

Choices, since the files carry no ids or times:

- ``test_id`` is the slug of the file name ``eval_results_<n>_<slug>.md`` (``dummy_test``), or
  the slug of the test name when the file is named otherwise; ``test_name`` is the heading's title.
- ``started_at`` is nano-agent's commit date (2025-08-10T00:00:00Z) plus the problem number in
  minutes, the same for every model of the run.
- The run's ``source_key`` is a hash of the file's content: importing it again (under any name)
  adds nothing, while a re-generated evaluation with new numbers is a new run.
- A model whose response is ``N/A``, whose execution time is ``N/A``, or whose tokens and cost are
  all ``N/A`` (even with a time given) is a failed run: ``success = false``, null metrics, the time
  kept when given. ``error`` holds the model's own response when that response says it failed,
  otherwise a short reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from nano_export.importers.records import (
    NANO_AGENT_EPOCH,
    ExecutionRecord,
    ParsedFile,
    RunRecord,
    build_interactions,
    build_metrics,
    content_hash,
    import_error,
)
from nano_export.normalize import normalize

FORMAT = "eval-markdown"
GRADES = frozenset("SABCDEF")
_MISSING = frozenset({"", "n/a", "na", "-", "—", "none", "null"})
_TITLE = re.compile(
    r"^#\s+(?:Evaluation Results\s*:\s*)?(?:Problem\s*#?(\d+)\s*[-–—:]\s*)?(.+?)\s*$"
)
_FILE_NAME = re.compile(r"^eval_results_(\d+)_(.+)$")
_RANK = re.compile(r"\*\*\s*(\d+)(?:st|nd|rd|th)?\s+Place\s*\*\*\s*:?\s*`?([^\s`(]+)", re.I)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SEPARATOR_CELL = re.compile(r"^:?-{3,}:?$")
_NOT_USAGE = frozenset({"model", "execution time", "time"})
_SAYS_FAILED = re.compile(
    r"\b(?:fail(?:s|ed|ure)?|errors?|exceptions?|timed?[\s-]*out|abort(?:ed)?|crash(?:ed)?"
    r"|could\s+not|cannot|(?:can|couldn)['’]t|unable\s+to)\b",
    re.IGNORECASE,
)
NO_RESPONSE = "no response in the evaluation table (N/A)"
NO_METRICS = "no performance metrics in the evaluation table (N/A)"
NO_USAGE = "no token usage or cost reported (N/A)"

RESPONSES = "Agent Responses"
SUMMARY = "Results Summary"
METRICS = "Performance Metrics"


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    cells: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Section:
    line: int
    lines: list[tuple[int, str]]


def split_row(line: str) -> list[str]:
    """The cells of a markdown table row; ``\\|`` is a literal pipe, not a cell border."""
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    cells: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "|":
            current.append("|")
            i += 2
            continue
        if ch == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    cells.append("".join(current).strip())
    return cells


def cell_text(value: str) -> str:
    """A response cell as text: ``<br>`` becomes a newline."""
    return _BR.sub("\n", value).strip()


def slugify(text: str) -> str:
    """``The Dummy Test`` → ``the_dummy_test``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "test"


def _sections(lines: list[str]) -> dict[str, _Section]:
    out: dict[str, _Section] = {}
    current: _Section | None = None
    for number, line in enumerate(lines, start=1):
        if line.startswith("## "):
            current = _Section(line=number, lines=[])
            out.setdefault(line[3:].strip().lower(), current)
        elif current is not None:
            current.lines.append((number, line))
    return out


def _table(path: str, sections: dict[str, _Section], name: str, nlines: int) -> list[_Row]:
    section = sections.get(name.lower())
    if section is None:
        raise import_error(path, nlines, f"no '## {name}' section (a required table)")
    rows = [(n, line) for n, line in section.lines if line.strip().startswith("|")]
    if len(rows) < 2:
        raise import_error(path, section.line, f"section '## {name}' has no table")
    header_line, header = rows[0]
    names = [c.lower() for c in split_row(header)]
    sep_line, sep = rows[1]
    if not all(_SEPARATOR_CELL.match(c.replace(" ", "")) for c in split_row(sep)):
        raise import_error(path, sep_line, f"table '{name}' has no separator row under its header")
    if not names or names[0] != "model":
        raise import_error(path, header_line, f"table '{name}' must start with a 'Model' column")
    out: list[_Row] = []
    for number, line in rows[2:]:
        cells = split_row(line)
        if len(cells) != len(names):
            raise import_error(
                path, number, f"table '{name}' row has {len(cells)} cells, expected {len(names)}"
            )
        out.append(_Row(line=number, cells=dict(zip(names, cells, strict=True))))
    if not out:
        raise import_error(path, header_line, f"table '{name}' has no rows")
    return out


def _column(row: _Row, *names: str) -> str | None:
    for name in names:
        if name in row.cells:
            return row.cells[name]
    return None


def _is_missing(value: str | None) -> bool:
    return value is None or value.strip().lower() in _MISSING


def _number(path: str, row: _Row, value: str | None, what: str) -> float | None:
    if _is_missing(value):
        return None
    assert value is not None
    text = value.strip().replace("$", "").replace(",", "").replace("`", "").strip()
    text = re.sub(r"\s*(?:s|sec|secs|seconds)$", "", text, flags=re.IGNORECASE)
    try:
        return float(text)
    except ValueError:
        raise import_error(path, row.line, f"{what} {value!r} is not a number") from None


def _tokens(path: str, row: _Row, value: str | None, what: str) -> int | None:
    number = _number(path, row, value, what)
    if number is None:
        return None
    if number != int(number) or number < 0:
        raise import_error(path, row.line, f"{what} {value!r} is not a whole token count")
    return int(number)


def says_it_failed(response: str) -> bool:
    """Whether a response reads as the model's own report of a failure (an error, a time-out…)."""
    return _SAYS_FAILED.search(response) is not None


def _failure(response: str | None, seconds: float | None, metrics: _Row) -> str | None:
    """Why the table shows a failed run, or ``None`` for a run that succeeded."""
    if response is None:
        return NO_RESPONSE
    usage = [v for k, v in metrics.cells.items() if k not in _NOT_USAGE]
    if seconds is None:
        reason = NO_METRICS
    elif usage and all(_is_missing(v) for v in usage):
        reason = NO_USAGE
    else:
        return None
    return response if says_it_failed(response) else reason


def _grade(path: str, row: _Row, value: str | None, what: str) -> str | None:
    if _is_missing(value):
        return None
    assert value is not None
    grade = value.strip().strip("*").strip().upper()
    if grade not in GRADES:
        raise import_error(path, row.line, f"{what} {value!r} is not one of S, A, B, C, D, E, F")
    return grade


def _by_model(path: str, rows: list[_Row], table: str) -> dict[str, _Row]:
    out: dict[str, _Row] = {}
    for row in rows:
        _, model = normalize(row.cells["model"].strip("`* "))
        if not model:
            raise import_error(path, row.line, f"table '{table}' row has no model")
        if model in out:
            raise import_error(path, row.line, f"model {model!r} appears twice in '{table}'")
        out[model] = row
    return out


def _ranks(path: str, sections: dict[str, _Section], models: set[str]) -> dict[str, int]:
    section = sections.get("final ranking")
    if section is None:
        return {}
    ranks: dict[str, int] = {}
    for number, line in section.lines:
        match = _RANK.search(line)
        if not match:
            continue
        _, model = normalize(match.group(2))
        if model not in models:
            raise import_error(path, number, f"ranked model {model!r} has no row in '{RESPONSES}'")
        ranks[model] = int(match.group(1))
    return ranks


def _run(text: str, path: str, lines: list[str]) -> RunRecord:
    heading = next(((n, ln) for n, ln in enumerate(lines, 1) if ln.startswith("# ")), None)
    if heading is None:
        raise import_error(path, 1, "no '# Evaluation Results: …' heading")
    title = _TITLE.match(heading[1])
    assert title is not None  # the pattern accepts any heading text
    test_name = title.group(2).strip()
    file_match = _FILE_NAME.match(Path(path).stem)
    problem = title.group(1) or (file_match.group(1) if file_match else None)
    return RunRecord(
        source_key=f"eval-md:{content_hash(text)}",
        source=f"{FORMAT}:{Path(path).name}"[:255],
        test_id=(file_match.group(2) if file_match else slugify(test_name))[:128],
        test_name=test_name[:255],
        started_at=NANO_AGENT_EPOCH + timedelta(minutes=int(problem) if problem else 0),
    )


def _execution(
    path: str,
    run: RunRecord,
    prompt: str | None,
    model: str,
    rows: tuple[_Row, _Row, _Row],
    rank: int | None,
) -> ExecutionRecord:
    resp_row, g, m = rows
    provider, _ = normalize(model)
    raw_response = _column(resp_row, "response", "result", "answer")
    response = None if _is_missing(raw_response) else cell_text(raw_response or "")
    seconds = _number(path, m, _column(m, "execution time", "time"), "execution time")
    failed_reason = _failure(response, seconds, m)
    assert run.started_at is not None
    return ExecutionRecord(
        source_key=f"{run.source_key}:{model}"[:255],
        source=run.source,
        provider=provider,
        model=model,
        started_at=run.started_at,
        success=failed_reason is None,
        error=failed_reason,
        execution_time_s=seconds,
        prompt=prompt,
        response=response,
        test_id=run.test_id,
        test_name=run.test_name,
        perf_grade=_grade(path, g, _column(g, "performance grade"), "grade"),
        speed_grade=_grade(path, g, _column(g, "speed grade"), "grade"),
        cost_grade=_grade(path, g, _column(g, "cost grade"), "grade"),
        overall_grade=_grade(path, g, _column(g, "overall grade"), "grade"),
        rank=rank,
        metrics=build_metrics(
            model,
            input_tokens=_tokens(path, m, _column(m, "input tokens"), "input tokens"),
            output_tokens=_tokens(path, m, _column(m, "output tokens"), "output tokens"),
            total_tokens=_tokens(path, m, _column(m, "total tokens"), "total tokens"),
            cached_tokens=_tokens(path, m, _column(m, "cached tokens"), "cached tokens"),
            reasoning_tokens=_tokens(path, m, _column(m, "reasoning tokens"), "reasoning tokens"),
            cost_usd=_number(path, m, _column(m, "total cost", "cost"), "total cost"),
        ),
        interactions=build_interactions(
            started_at=run.started_at,
            prompt=prompt,
            response=response,
            error=failed_reason,
            success=failed_reason is None,
            execution_time_s=seconds,
        ),
    )


def parse(text: str, path: str) -> ParsedFile:
    """Read one evaluation-result file; raises ``ImportFailed`` naming the line that is wrong."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    run = _run(text, path, lines)
    sections = _sections(lines)
    description = sections.get("test description")
    prompt = None
    if description is not None:
        prompt = "\n".join(ln.strip() for _, ln in description.lines if ln.strip()) or None

    responses = _by_model(path, _table(path, sections, RESPONSES, len(lines)), RESPONSES)
    grades = _by_model(path, _table(path, sections, SUMMARY, len(lines)), SUMMARY)
    metrics = _by_model(path, _table(path, sections, METRICS, len(lines)), METRICS)
    for rows in (grades, metrics):
        for model, row in rows.items():
            if model not in responses:
                raise import_error(path, row.line, f"model {model!r} has no row in '{RESPONSES}'")
    for model, row in responses.items():
        for table, rows in ((SUMMARY, grades), (METRICS, metrics)):
            if model not in rows:
                raise import_error(path, row.line, f"model {model!r} has no row in '{table}'")
    ranks = _ranks(path, sections, set(responses))
    executions = tuple(
        _execution(path, run, prompt, model, (row, grades[model], metrics[model]), ranks.get(model))
        for model, row in responses.items()
    )
    return ParsedFile(format=FORMAT, run=run, executions=executions)
