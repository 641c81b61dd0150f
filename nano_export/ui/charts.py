"""Plotly figures for the Explore page, from the aggregate frames of ``queries``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

#: One colour per provider, the same in every chart.
PROVIDER_COLORS: dict[str, str] = {
    "openai": "#10A37F",
    "anthropic": "#D97757",
    "ollama": "#4C6EF5",
}
_FALLBACK = ["#845EF7", "#F59F00", "#12B886", "#E64980", "#868E96"]
FONT = "Inter, system-ui, -apple-system, Segoe UI, sans-serif"


def color_map(providers: list[str]) -> dict[str, str]:
    """A stable colour for each provider (known ones fixed, others from a palette)."""
    out: dict[str, str] = {}
    extra = iter(_FALLBACK * 4)
    for name in sorted(set(providers)):
        out[name] = PROVIDER_COLORS.get(name) or next(extra)
    return out


def _style(fig: go.Figure, *, height: int = 340, **layout: Any) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        font={"family": FONT, "size": 12},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "title": None},
        plot_bgcolor="rgba(0,0,0,0)",
        paper_bgcolor="rgba(0,0,0,0)",
        **layout,
    )
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(gridcolor="rgba(128,128,128,0.15)")
    return fig


def success_rate(df: pd.DataFrame) -> go.Figure:
    """Success rate by model, coloured by provider."""
    data = df.sort_values("success_rate")
    fig = px.bar(
        data,
        x="success_rate",
        y="model",
        color="provider",
        orientation="h",
        color_discrete_map=color_map(list(df["provider"])),
        custom_data=["runs"],
        labels={"success_rate": "Success rate", "model": ""},
    )
    fig.update_traces(hovertemplate="%{y}: %{x:.1%} of %{customdata[0]} runs<extra></extra>")
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    return _style(fig, height=max(260, 34 * len(data) + 90))


def cost_per_run(df: pd.DataFrame) -> go.Figure:
    """Mean cost per run by provider and model."""
    data = df.sort_values("cost_per_run_usd")
    fig = px.bar(
        data,
        x="cost_per_run_usd",
        y="model",
        color="provider",
        orientation="h",
        color_discrete_map=color_map(list(df["provider"])),
        labels={"cost_per_run_usd": "Cost per run (USD)", "model": ""},
    )
    fig.update_traces(hovertemplate="%{y}: $%{x:.4f} per run<extra></extra>")
    fig.update_xaxes(tickprefix="$")
    return _style(fig, height=max(260, 34 * len(data) + 90))


def latency_distribution(df: pd.DataFrame) -> go.Figure:
    """Latency distribution by model: a heatmap of runs per latency bucket."""
    pivot = df.pivot_table(
        index="model", columns="bucket_start", values="runs", aggfunc="sum", fill_value=0
    )
    width = float((df["bucket_end"] - df["bucket_start"]).iloc[0]) if len(df) else 1.0
    labels = [f"{float(s):.1f}–{float(s) + width:.1f}s" for s in pivot.columns]
    fig = go.Figure(
        go.Heatmap(
            z=pivot.to_numpy(),
            x=labels,
            y=list(pivot.index),
            colorscale="Blues",
            colorbar={"title": "runs", "thickness": 10},
            hovertemplate="%{y}<br>%{x}: %{z} runs<extra></extra>",
        )
    )
    fig.update_xaxes(title="Latency (s)", tickangle=-30)
    return _style(fig, height=max(260, 30 * len(pivot.index) + 120))


def runs_over_time(df: pd.DataFrame) -> go.Figure:
    """Runs per period, stacked by provider."""
    fig = px.bar(
        df,
        x="period",
        y="runs",
        color="provider",
        color_discrete_map=color_map(list(df["provider"])),
        labels={"period": "", "runs": "Runs"},
    )
    fig.update_layout(bargap=0.15)
    return _style(fig)
