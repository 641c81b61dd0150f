"""A versioned model-pricing table (USD per 1M tokens) and the cost arithmetic built on it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from nano_export import schema

PRICING_VERSION = "2025-08-10"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Prices of one model in USD per 1M tokens."""

    provider: str
    model: str
    input_per_m: float
    output_per_m: float
    cached_input_per_m: float
    reasoning_per_m: float


@dataclass(frozen=True, slots=True)
class Costs:
    """The cost of one execution in USD."""

    input_cost_usd: float
    output_cost_usd: float
    cached_savings_usd: float
    cost_usd: float


# The models nano-agent offers (its constants, August 2025), at the providers' list prices.
# Reasoning tokens are billed as output tokens; local Ollama models cost nothing.
PRICES: tuple[ModelPrice, ...] = (
    ModelPrice("openai", "gpt-5", 1.25, 10.00, 0.125, 10.00),
    ModelPrice("openai", "gpt-5-mini", 0.25, 2.00, 0.025, 2.00),
    ModelPrice("openai", "gpt-5-nano", 0.05, 0.40, 0.005, 0.40),
    ModelPrice("openai", "gpt-4o", 2.50, 10.00, 1.25, 10.00),
    ModelPrice("anthropic", "claude-opus-4-1-20250805", 15.00, 75.00, 1.50, 75.00),
    ModelPrice("anthropic", "claude-opus-4-20250514", 15.00, 75.00, 1.50, 75.00),
    ModelPrice("anthropic", "claude-sonnet-4-20250514", 3.00, 15.00, 0.30, 15.00),
    ModelPrice("anthropic", "claude-3-haiku-20240307", 0.25, 1.25, 0.03, 1.25),
    ModelPrice("ollama", "gpt-oss:20b", 0.0, 0.0, 0.0, 0.0),
    ModelPrice("ollama", "gpt-oss:120b", 0.0, 0.0, 0.0, 0.0),
)

_BY_MODEL = {p.model: p for p in PRICES}


def price_for(model: str) -> ModelPrice | None:
    """The current price of a model by its full id, or None when the table does not know it."""
    return _BY_MODEL.get(model)


def compute_costs(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> Costs | None:
    """Costs of one execution from its token counts, or None for a model without a price.

    ``input_tokens`` includes the cached ones (as the providers report them); cached tokens are
    billed at the cached rate and the difference is the saving. ``output_tokens`` includes
    reasoning tokens.
    """
    price = price_for(model)
    if price is None:
        return None
    m = 1_000_000
    fresh = max(input_tokens - cached_tokens, 0)
    input_cost = (fresh * price.input_per_m + cached_tokens * price.cached_input_per_m) / m
    visible_output = max(output_tokens - reasoning_tokens, 0)
    output_cost = (
        visible_output * price.output_per_m + reasoning_tokens * price.reasoning_per_m
    ) / m
    savings = cached_tokens * (price.input_per_m - price.cached_input_per_m) / m
    return Costs(
        input_cost_usd=round(input_cost, 6),
        output_cost_usd=round(output_cost, 6),
        cached_savings_usd=round(savings, 6),
        cost_usd=round(input_cost + output_cost, 6),
    )


def sync_pricing(conn: Connection) -> int:
    """Store this version of the pricing table if it is not stored yet; returns rows added."""
    have = set(
        conn.execute(
            select(schema.model_pricing.c.model).where(
                schema.model_pricing.c.version == PRICING_VERSION
            )
        ).scalars()
    )
    rows = [
        {
            "version": PRICING_VERSION,
            "provider": p.provider,
            "model": p.model,
            "input_per_m": p.input_per_m,
            "output_per_m": p.output_per_m,
            "cached_input_per_m": p.cached_input_per_m,
            "reasoning_per_m": p.reasoning_per_m,
        }
        for p in PRICES
        if p.model not in have
    ]
    if rows:
        conn.execute(schema.model_pricing.insert(), rows)
    return len(rows)
