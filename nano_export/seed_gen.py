"""Vectorised generation of demo executions, metrics and interactions (numpy, no database).

Rows are laid out in *units* of ``UNIT`` consecutive indexes: the first ``len(PRICES)`` slots are
one eval run (one test over every model of the pricing table, started together), the last two are
ad-hoc executions. A batch is a fixed range of units with its own generator seeded by
``(seed, batch number)``, so row ``i`` depends only on the seed, the anchor and ``i`` — never on how
many rows were asked for, which is what lets a second seeding continue the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nano_export import seed_text as txt
from nano_export.pricing import PRICES

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

N_MODELS = len(PRICES)
ADHOC_SLOTS = 2
UNIT = N_MODELS + ADHOC_SLOTS
UNITS_PER_BATCH = 1680
ROWS_PER_BATCH = UNITS_PER_BATCH * UNIT
ADHOC_KIND = len(txt.KINDS) - 1
DAY_US = 86_400_000_000
WINDOW_DAYS = 90
SENSITIVE_SHARE = 0.025
# Planted snippets by category (credential, email, home_path, formula), credentials likeliest.
_CATEGORIES = ("credential", "email", "home_path", "formula")
_CATEGORY_WEIGHTS = np.array([0.4, 0.2, 0.2, 0.2])
_SNIPPET_SIZES = np.array([sum(c == k for c, _ in txt.sensitive_snippets()) for k in _CATEGORIES])
_SNIPPET_OFFSETS = np.concatenate(([0], np.cumsum(_SNIPPET_SIZES)[:-1]))

# Per-model behaviour, shaped like nano-agent's evaluation tables (times at complexity 1.0):
# success rate, seconds, input and output token factors, reasoning share of output, probability
# of cached input, mean performance grade (0 = S … 6 = F), weight among ad-hoc runs.
_PROFILE: dict[str, tuple[float, float, float, float, float, float, float, float]] = {
    "gpt-5": (0.95, 27.0, 1.2, 2.2, 0.75, 0.55, 1.3, 0.10),
    "gpt-5-mini": (0.94, 15.0, 0.75, 1.2, 0.6, 0.5, 1.6, 0.16),
    "gpt-5-nano": (0.90, 30.0, 1.6, 3.0, 0.65, 0.5, 2.2, 0.12),
    "gpt-4o": (0.93, 9.0, 0.9, 1.0, 0.0, 0.4, 2.0, 0.06),
    "claude-opus-4-1-20250805": (0.97, 24.0, 1.0, 1.1, 0.0, 0.25, 0.9, 0.06),
    "claude-opus-4-20250514": (0.96, 32.0, 1.0, 1.0, 0.0, 0.25, 1.1, 0.03),
    "claude-sonnet-4-20250514": (0.97, 13.0, 1.0, 1.0, 0.0, 0.25, 1.0, 0.18),
    "claude-3-haiku-20240307": (0.89, 5.0, 0.97, 0.7, 0.0, 0.2, 2.6, 0.14),
    "gpt-oss:20b": (0.82, 30.0, 0.75, 0.9, 0.35, 0.0, 2.6, 0.10),
    "gpt-oss:120b": (0.86, 70.0, 0.9, 1.3, 0.35, 0.0, 1.8, 0.05),
}
_DEFAULT_PROFILE = (0.9, 20.0, 1.0, 1.0, 0.0, 0.2, 2.0, 0.02)  # a model added to PRICES later
_P = np.array([_PROFILE.get(p.model, _DEFAULT_PROFILE) for p in PRICES], dtype=np.float64)
SUCCESS, BASE_TIME, IN_F, OUT_F, REASON, CACHE, QUALITY = (_P[:, k] for k in range(7))
ADHOC_WEIGHTS = _P[:, 7] / _P[:, 7].sum()

_PRICE = np.array(
    [(p.input_per_m, p.cached_input_per_m, p.output_per_m, p.reasoning_per_m) for p in PRICES]
)
COMPLEXITY = np.array([k.complexity for k in txt.KINDS])
DIFFICULTY = np.array([k.difficulty for k in txt.KINDS])
TOOLS_LO = np.array([k.tools[0] for k in txt.KINDS])
TOOLS_HI = np.array([k.tools[1] for k in txt.KINDS])
TEST_WEIGHTS = np.array([k.weight for k in txt.TESTS]) / sum(k.weight for k in txt.TESTS)


@dataclass(frozen=True, slots=True)
class Batch:
    """Every generated column of one batch; arrays hold one entry per row (execution)."""

    first_index: int
    model: I64
    kind: I64
    start_us: I64
    success: B
    has_metrics: B
    time_s: F64
    input_tokens: I64
    output_tokens: I64
    cached_tokens: I64
    reasoning_tokens: I64
    user: I64  # -1: no user
    session: I64  # -1: no session
    prompt_variant: I64
    response_variant: I64
    error_variant: I64
    sensitive: I64  # -1: nothing planted, else an index into sensitive_snippets()
    perf: I64  # grade indexes 0..6 (S..F); 7: no grade
    speed: I64
    cost: I64
    overall: I64
    rank: I64  # 0: no rank
    n_tools: I64

    @property
    def size(self) -> int:
        """Rows in the batch."""
        return len(self.model)


def _sample_starts(rng: np.random.Generator, n: int, anchor_us: int) -> I64:
    """Start times in the WINDOW_DAYS before the anchor: more recent days and office hours likelier,
    weekends quieter."""
    days_back = np.minimum((WINDOW_DAYS * rng.random(n) ** 1.25).astype(np.int64), WINDOW_DAYS - 1)
    weekday = (anchor_us // DAY_US - days_back - 1 + 3) % 7  # 1970-01-01 was a Thursday
    move = (weekday >= 5) & (rng.random(n) < 0.6)
    to_friday = days_back + (weekday - 4)
    to_monday = days_back - (7 - weekday)
    days_back = np.where(
        move & (to_friday < WINDOW_DAYS),
        to_friday,
        np.where(move & (to_monday >= 0), to_monday, days_back),
    )
    office = rng.random(n) < 0.8
    tod_s = np.where(office, 8 * 3600 + rng.random(n) * 11 * 3600, rng.random(n) * 86_280)
    tod_us = (tod_s * 1_000_000).astype(np.int64)
    return np.int64(anchor_us) - (days_back + 1) * DAY_US + tod_us


def _relative_grade(values: F64) -> I64:
    """Grade 0..6 from the position of each value in its row (lowest = S); NaN → 7 (none)."""
    valid = ~np.isnan(values)
    below = (values[:, None, :] < values[:, :, None]).sum(axis=2)  # ties share the better grade
    count = valid.sum(axis=1, keepdims=True)
    grade = np.rint(below * 6 / np.maximum(count - 1, 1)).astype(np.int64)
    return np.where(valid, grade, 7)


def generate(seed: int, batch_no: int, anchor_us: int) -> Batch:
    """Generate batch ``batch_no`` of the stream ``seed`` (ROWS_PER_BATCH rows)."""
    rng = np.random.default_rng([seed, batch_no])
    u = UNITS_PER_BATCH
    shape = (u, UNIT)

    # Per unit (eval run) and per ad-hoc slot: test, time, user, session, prompt variant.
    unit_test = rng.choice(len(txt.TESTS), size=u, p=TEST_WEIGHTS)
    model = np.empty(shape, dtype=np.int64)
    model[:, :N_MODELS] = np.arange(N_MODELS)
    model[:, N_MODELS:] = rng.choice(N_MODELS, size=(u, ADHOC_SLOTS), p=ADHOC_WEIGHTS)
    kind = np.empty(shape, dtype=np.int64)
    kind[:, :N_MODELS] = unit_test[:, None]
    kind[:, N_MODELS:] = ADHOC_KIND
    start = np.empty(shape, dtype=np.int64)
    start[:, :N_MODELS] = _sample_starts(rng, u, anchor_us)[:, None] + rng.integers(
        0, 1_500_000, size=(u, N_MODELS)
    )
    start[:, N_MODELS:] = _sample_starts(rng, u * ADHOC_SLOTS, anchor_us).reshape(u, ADHOC_SLOTS)

    def per_group(values: I64) -> I64:  # one value per eval run, one per ad-hoc execution
        out = np.empty(shape, dtype=np.int64)
        out[:, :N_MODELS] = values[:u, None]
        out[:, N_MODELS:] = values[u:].reshape(u, ADHOC_SLOTS)
        return out

    groups = u * (1 + ADHOC_SLOTS)
    has_user = rng.random(groups) < 0.92
    user = per_group(np.where(has_user, rng.integers(0, len(txt.USERS), groups), -1))
    session = per_group(np.where(rng.random(groups) < 0.95, rng.integers(0, 2**62, groups), -1))
    prompt_variant = per_group(rng.integers(0, txt.POOL_SIZE, groups))

    m, k = model.ravel(), kind.ravel()
    n = m.size
    success = rng.random(n) < SUCCESS[m] * DIFFICULTY[k]
    has_metrics = success | (rng.random(n) < 0.5)
    cx = COMPLEXITY[k]
    time_s = BASE_TIME[m] * cx**0.6 * rng.lognormal(0.0, 0.35, n)
    time_s = np.where(success, time_s, time_s * rng.uniform(0.3, 1.5, n))
    time_s = np.maximum(time_s, 0.3).round(2)
    inp = np.maximum(14_000 * cx**0.9 * IN_F[m] * rng.lognormal(0.0, 0.25, n), 150).astype(np.int64)
    out_f = 800 * cx**0.8 * OUT_F[m] * rng.lognormal(0.0, 0.5, n)
    out = np.maximum(np.where(success, out_f, out_f * 0.5), 5).astype(np.int64)
    reasoning = np.minimum(out * REASON[m] * rng.uniform(0.7, 1.1, n), out * 0.95).astype(np.int64)
    cache_hit = rng.random(n) < CACHE[m] * (cx >= 0.3)
    cached = np.where(cache_hit, inp * rng.uniform(0.2, 0.8, n), 0).astype(np.int64)

    # Grades within each eval run: speed and cost relative to the other models of the run.
    ev = np.s_[:, :N_MODELS]
    ok = has_metrics.reshape(shape)[ev]
    t = np.where(ok, time_s.reshape(shape)[ev], np.nan)
    pr = _PRICE[m]
    est_cost = (
        (inp - cached) * pr[:, 0] + cached * pr[:, 1] + (out - reasoning) * pr[:, 2]
    ) + reasoning * pr[:, 3]
    c = np.where(ok, est_cost.reshape(shape)[ev], np.nan)
    speed = _relative_grade(t)
    cost = _relative_grade(c)
    perf = np.clip(np.rint(QUALITY[m] + rng.normal(0.0, 0.9, n)), 0, 6).astype(np.int64)
    perf = np.where(success, perf, 6).reshape(shape)[ev]
    overall = np.rint(
        0.5 * perf + 0.25 * np.where(speed < 7, speed, 6) + 0.25 * np.where(cost < 7, cost, 6)
    ).astype(np.int64)
    overall = np.where(success.reshape(shape)[ev], overall, 6)
    rank = 1 + (overall[:, None, :] < overall[:, :, None]).sum(axis=2)

    def with_adhoc(eval_part: I64, fill: int) -> I64:
        full = np.full(shape, fill, dtype=np.int64)
        full[ev] = eval_part
        return full.ravel()

    category = rng.choice(len(_SNIPPET_SIZES), size=n, p=_CATEGORY_WEIGHTS)
    item = (rng.random(n) * _SNIPPET_SIZES[category]).astype(np.int64)
    sensitive = np.where(rng.random(n) < SENSITIVE_SHARE, _SNIPPET_OFFSETS[category] + item, -1)
    n_tools = rng.integers(TOOLS_LO[k], TOOLS_HI[k] + 1)
    n_tools = np.where(has_metrics, n_tools, np.minimum(n_tools, 1))
    return Batch(
        first_index=batch_no * ROWS_PER_BATCH,
        model=m,
        kind=k,
        start_us=start.ravel(),
        success=success,
        has_metrics=has_metrics,
        time_s=time_s,
        input_tokens=inp,
        output_tokens=out,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        user=user.ravel(),
        session=session.ravel(),
        prompt_variant=prompt_variant.ravel(),
        response_variant=rng.integers(0, txt.POOL_SIZE, n),
        error_variant=rng.integers(0, len(txt.ERRORS["openai"]), n),
        sensitive=sensitive,
        perf=with_adhoc(perf, 7),
        speed=with_adhoc(speed, 7),
        cost=with_adhoc(cost, 7),
        overall=with_adhoc(overall, 7),
        rank=with_adhoc(rank, 0),
        n_tools=n_tools.astype(np.int64),
    )


@dataclass(frozen=True, slots=True)
class Interactions:
    """Generated interactions of a set of executions (one entry per interaction)."""

    row: I64  # position of the execution in the selection
    seq: I64
    kind: I64  # 0 request, 1 tool call, 2 response
    tool: I64
    variant: I64
    is_error: B
    duration_s: F64
    start_us: I64


def interactions(batch: Batch, rows: I64, seed: int) -> Interactions:
    """Request, tool calls and final response of the selected rows of ``batch``.

    Drawn from a generator of its own per batch over all rows, then narrowed to ``rows``, so a
    row's interactions do not depend on which other rows are selected.
    """
    rng = np.random.default_rng([seed, batch.first_index // ROWS_PER_BATCH, 1])
    counts = batch.n_tools + 2
    total = int(counts.sum())
    owner = np.repeat(np.arange(batch.size), counts)
    first = np.cumsum(counts) - counts
    seq = np.arange(total) - np.repeat(first, counts)
    count = counts[owner]
    kind = np.where(seq == 0, 0, np.where(seq == count - 1, 2, 1))
    tool = rng.choice(len(txt.TOOLS), size=total, p=np.array(txt.TOOL_WEIGHTS))
    variant = rng.integers(0, txt.POOL_SIZE, total)
    tool_error = rng.random(total) < 0.04
    is_error = np.where(kind == 1, tool_error, (kind == 2) & ~batch.success[owner])
    duration = np.round(rng.lognormal(np.log(0.05), 0.8, total), 4)
    jitter = rng.random(total)
    span_us = np.where(batch.has_metrics, batch.time_s * 1_000_000, 5_000_000)[owner]
    offset = (span_us * (seq + 0.1 + 0.8 * jitter) / count).astype(np.int64) + seq + 1
    start = batch.start_us[owner] + offset

    keep = np.zeros(batch.size, dtype=np.bool_)
    keep[rows] = True
    sel = keep[owner]
    position = np.full(batch.size, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    return Interactions(
        row=position[owner[sel]],
        seq=seq[sel],
        kind=kind[sel],
        tool=tool[sel],
        variant=variant[sel],
        is_error=is_error[sel],
        duration_s=np.where(kind == 1, duration, np.nan)[sel],
        start_us=start[sel],
    )


def timestamps(us: I64) -> list[str]:
    """Microseconds since the epoch as ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC) strings.

    The format SQLAlchemy stores on SQLite (so range filters compare correctly); PostgreSQL reads
    it as UTC inside a transaction with ``TimeZone = 'UTC'``.
    """
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    chars = text.view(np.uint32).reshape(len(text), -1)
    chars[:, 10] = ord(" ")
    return text.tolist()  # type: ignore[no-any-return]
