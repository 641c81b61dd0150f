"""The Rows page's execution detail: the record, its grades and metrics, and its trace in order."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from nano_export.rows import ExecutionDetail
from nano_export.ui import widgets

GRADES = ("perf_grade", "speed_grade", "cost_grade", "overall_grade")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value == ""


def _num(value: Any) -> float | None:
    return None if _blank(value) else float(value)


def _text(value: Any) -> str:
    return "" if _blank(value) else str(value)


def _md(value: Any) -> str:
    """Text for a markdown line, shown as typed (no markup, no links)."""
    out = _text(value)
    for ch in "\\`*_[]<>#|~$":
        out = out.replace(ch, "\\" + ch)
    return out


def show_execution(detail: ExecutionDetail) -> None:
    """Render one execution: headline numbers, grades, prompt, response and the trace."""
    rec = detail.record
    st.markdown(
        f"**Execution {_md(rec.get('execution_id'))}** · {_md(rec.get('provider'))} / "
        f"{_md(rec.get('model'))} · test {_md(rec.get('test_name') or rec.get('test_id'))} · "
        f"started {_md(rec.get('started_at'))} UTC"
    )
    cols = st.columns(5)
    success = rec.get("success")
    cols[0].metric("Outcome", "—" if _blank(success) else "Succeeded" if success else "Failed")
    seconds, tokens, rank = (_num(rec.get(k)) for k in ("execution_time_s", "total_tokens", "rank"))
    cols[1].metric("Time", "—" if seconds is None else f"{seconds:.2f} s")
    cols[2].metric("Cost", widgets.fmt_usd(_num(rec.get("cost_usd"))))
    cols[3].metric("Tokens", "—" if tokens is None else f"{int(tokens):,}")
    cols[4].metric("Rank", "—" if rank is None else str(int(rank)))
    grades = " · ".join(
        f"{name.removesuffix('_grade')} **{_md(rec.get(name))}**"
        for name in GRADES
        if not _blank(rec.get(name))
    )
    st.markdown(f"Grades: {grades}" if grades else "Grades: none recorded for this run.")
    if "prompt" in rec:
        st.caption("Prompt")
        st.code(_text(rec.get("prompt")) or "(empty)", language=None, wrap_lines=True)
        st.caption("Response")
        st.code(_text(rec.get("response")) or "(empty)", language=None, wrap_lines=True)
        if not _blank(rec.get("error")):
            st.caption("Error")
            st.code(_text(rec.get("error")), language=None, wrap_lines=True)
    else:
        st.caption("Prompt and response are left out at the public privacy level.")
    show_trace(detail.trace)


def show_trace(trace: pd.DataFrame) -> None:
    """The agent interactions of one execution, in order, one numbered step each."""
    st.markdown(f"**Trace** — {len(trace)} interaction(s), in order")
    if trace.empty:
        st.caption("No agent interactions were recorded for this execution.")
        return
    for step, row in enumerate(trace.to_dict("records"), start=1):
        name = _text(row.get("tool_name")).replace("`", "'")  # a code span shows it as is
        tool = f" `{name}`" if name else ""
        took = _num(row.get("duration_s"))
        timing = "" if took is None else f" · {took:.2f} s"
        failed = " · **error**" if row.get("is_error") else ""
        st.markdown(f"{step}. {_md(row.get('kind'))}{tool}{timing}{failed}")
        if "arguments" in row and not _blank(row.get("arguments")):
            st.code(_text(row.get("arguments")), language="json", wrap_lines=True)
        if "result" in row and not _blank(row.get("result")):
            st.code(_text(row.get("result")), language=None, wrap_lines=True)
