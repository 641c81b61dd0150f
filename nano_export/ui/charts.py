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


#: Plotly options for ``st.plotly_chart``: no mode bar (it covered the legends).
CONFIG: dict[str, Any] = {"displayModeBar": False}


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


def _bar_by_model(
    df: pd.DataFrame, value: str, label: str, hover: str, **bar: Any
) -> tuple[go.Figure, int]:
    """A horizontal bar per model of ``value``, coloured by provider, models in ``model_order``.

    Returns the figure and its height (a row per model).
    """
    data = df.sort_values("model")
    fig = px.bar(
        data,
        x=value,
        y="model",
        color="provider",
        orientation="h",
        color_discrete_map=color_map(list(df["provider"])),
        labels={value: label, "model": ""},
        **bar,
    )
    fig.update_traces(hovertemplate=hover)
    # A category axis draws its first category at the bottom: reversed, the list reads top-down.
    order = model_order(list(data["model"]))
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1])
    return fig, max(260, 34 * len(data) + 90)


def model_order(models: list[str]) -> list[str]:
    """The order of models, top to bottom, in every chart: by name."""
    return sorted(set(models))


def usd_text(value: float) -> str:
    """A cost without trailing zeros: 0 → "0", 0.0123 → "0.0123", 1.5 → "1.50"."""
    if value == 0:
        return "0"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.6f}".rstrip("0")


def success_rate(df: pd.DataFrame) -> go.Figure:
    """Success rate by model, coloured by provider."""
    fig, height = _bar_by_model(
        df,
        "success_rate",
        "Success rate",
        "%{y}: %{x:.1%} of %{customdata[0]} runs<extra></extra>",
        custom_data=["runs"],
    )
    fig.update_xaxes(tickformat=".0%", range=[0, 1.04], dtick=0.25)
    return _style(fig, height=height)


def cost_per_run(df: pd.DataFrame) -> go.Figure:
    """Mean cost per run by provider and model."""
    fig, height = _bar_by_model(
        df,
        "cost_per_run_usd",
        "Cost per run (USD)",
        "%{y}: $%{customdata[0]} per run<extra></extra>",
        custom_data=[df.sort_values("model")["cost_per_run_usd"].map(usd_text)],
    )
    fig.update_xaxes(tickprefix="$")
    return _style(fig, height=height)


def latency_distribution(df: pd.DataFrame) -> go.Figure:
    """Latency by model: a heatmap of each model's share of runs per latency bucket.

    ``df`` has model, bucket (index into ``data.LATENCY_EDGES`` buckets) and runs. The buckets
    are roughly logarithmic with short labels, and the colour is the share of the model's own
    runs, so a model with few runs is as readable as one with many.
    """
    from nano_export.ui.data import latency_label, latency_tick

    if df.empty:
        return _style(go.Figure())
    first, last = int(df["bucket"].min()), int(df["bucket"].max())
    buckets = list(range(first, last + 1))
    pivot = df.pivot_table(
        index="model", columns="bucket", values="runs", aggfunc="sum", fill_value=0
    ).reindex(columns=buckets, fill_value=0)
    pivot = pivot.loc[model_order(list(pivot.index))[::-1]]  # first row at the bottom
    runs = pivot.to_numpy()
    share = runs / runs.sum(axis=1, keepdims=True).clip(min=1)
    fig = go.Figure(
        go.Heatmap(
            z=share.round(4).tolist(),
            x=[latency_tick(b) for b in buckets],
            y=list(pivot.index),
            customdata=runs.tolist(),
            text=[[latency_label(b) for b in buckets] for _ in pivot.index],
            colorscale="Blues",
            zmin=0,
            showscale=False,  # the hover gives runs and share; the width goes to the buckets
            hovertemplate="%{y}<br>%{text}: %{customdata} runs (%{z:.0%} of the model's)"
            "<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_xaxes(
        title="Latency",
        type="category",
        tickangle=0,
        tickfont={"size": 10},
    )
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
