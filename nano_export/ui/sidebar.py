"""The filter sidebar, kept in sync both ways with the URL query (the share link)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import streamlit as st

from nano_export import filters
from nano_export.datasets import DATASETS, get_dataset
from nano_export.errors import InvalidFilter
from nano_export.models import FilterSpec
from nano_export.ui import data
from nano_export.ui.session import CurrentUser

DEFAULT_DATASET = "evaluation-results"
SUCCESS_CHOICES = ("Any", "Succeeded", "Failed")
#: Widget keys, one per filter field.
K_DATASET, K_PROVIDER, K_MODEL, K_TEST = "nx_dataset", "nx_provider", "nx_model", "nx_test"
K_SINCE, K_UNTIL, K_SUCCESS, K_WHERE = "nx_since", "nx_until", "nx_success", "nx_where"
_SEEN = "_nx_query_seen"
_SAVED = "_nx_query_saved"
_LINK_ERROR, _LINK_ERROR_SIG = "_nx_query_error", "_nx_query_error_sig"
#: The sidebar filter's error of the last run that drew it (None when valid), for other pages.
FILTER_ERROR = "_nx_filter_error"
#: The date presets: since = now (UTC, to the minute) less this span, until left open.
PRESETS: dict[str, timedelta] = {
    "24 hours": timedelta(hours=24),
    "7 days": timedelta(days=7),
    "30 days": timedelta(days=30),
    "90 days": timedelta(days=90),
}
K_PRESET = "nx_period"
#: The exact UTC instants behind the date fields, when since/until is a time and not a whole day
#: (a preset, or a link with a time); a date field shows only the day.
_SINCE_AT, _UNTIL_AT = "_nx_since_at", "_nx_until_at"
_PRESET_SAVED = "_nx_period_saved"
DATE_HELP = "A day in UTC, as in the exported times (…Z). Type YYYY-MM-DD and press Enter."
WHERE_HELP = (
    "Comparisons `=` `!=` `<` `<=` `>` `>=`, `in (…)`, `~` (regular expression), `and`, `or`, "
    "`not` and parentheses — on any column of the dataset."
)
_WIDGET_KEYS = (K_DATASET, K_PROVIDER, K_MODEL, K_TEST, K_SINCE, K_UNTIL, K_SUCCESS, K_WHERE)
QUERY_KEYS = ("provider", "model", "test", "since", "until", "success", "where", "dataset")


@dataclass(frozen=True)
class Selection:
    """What the sidebar selects: a dataset and a valid spec, or the reason the spec is invalid."""

    dataset: str
    spec: FilterSpec | None
    error: str | None = None
    #: Parts of a share link that were left out, for a notice at the top of the page.
    link_notice: str | None = None


def _current_query() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in st.query_params if k in QUERY_KEYS}


def _signature(params: dict[str, Any]) -> str:
    norm = {k: [v] if isinstance(v, str) else list(v) for k, v in params.items() if v}
    return json.dumps(norm, sort_keys=True)


def utc_now() -> datetime:
    """The current time in UTC (the presets count back from it)."""
    return datetime.now(UTC)


def _as_date(value: date | datetime | None) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value


def _instant(value: date | datetime | None) -> datetime | None:
    """A time (not a whole day) in UTC; None for a date or nothing."""
    return filters.start_of(value) if isinstance(value, datetime) else None


def _apply_preset() -> None:
    """The preset picked: since = now less its span (to the minute), until open; none: no dates."""
    choice = st.session_state.get(K_PRESET)
    since = None
    if choice in PRESETS:
        since = (utc_now() - PRESETS[choice]).replace(second=0, microsecond=0)
    st.session_state[K_SINCE] = _as_date(since)
    st.session_state[_SINCE_AT] = since
    st.session_state[_PRESET_SAVED] = choice if since else None
    st.session_state[K_UNTIL] = None
    st.session_state[_UNTIL_AT] = None


def _date_edited(instant_key: str) -> None:
    """A date typed or picked by hand: a whole day, so the preset and its time no longer hold."""
    st.session_state[instant_key] = None
    st.session_state[K_PRESET] = st.session_state[_PRESET_SAVED] = None


def _field_value(field_key: str, instant_key: str) -> date | datetime | None:
    """The date field's value, or the instant behind it when it is still on that day."""
    day = st.session_state.get(field_key)
    instant = st.session_state.get(instant_key)
    if isinstance(instant, datetime) and day == instant.date():
        return instant
    return day  # type: ignore[no-any-return]


def _instant_caption() -> str | None:
    """The exact times in force when since/until is a time, e.g. "From 2025-08-08 00:00 UTC"."""
    parts = []
    for word, field_key, instant_key in (
        ("From", K_SINCE, _SINCE_AT),
        ("until", K_UNTIL, _UNTIL_AT),
    ):
        value = _field_value(field_key, instant_key)
        if isinstance(value, datetime):
            parts.append(f"{word} {value.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if not parts:
        return None
    text = " ".join(parts)
    return text[0].upper() + text[1:] + ("" if parts[-1].startswith("until") else " to now")


def _load_widgets_from_query(params: dict[str, list[str]]) -> None:
    """Set the widgets' state from the URL (first visit, or a link opened in this session)."""
    spec, problems = _spec_from_link(params)
    dataset = (params.get("dataset") or [DEFAULT_DATASET])[-1]
    if dataset not in DATASETS:
        problems.append(f"unknown dataset {dataset!r}; showing {DEFAULT_DATASET}")
        dataset = DEFAULT_DATASET
    # The notice stays until the filters change (a browser reruns a few times after loading).
    st.session_state.pop(_LINK_ERROR_SIG, None)
    if problems:
        st.session_state[_LINK_ERROR] = "Ignored part of the link: " + "; ".join(problems)
    else:
        st.session_state.pop(_LINK_ERROR, None)
    st.session_state[K_DATASET] = dataset
    st.session_state[K_PROVIDER] = list(spec.provider)
    st.session_state[K_MODEL] = list(spec.model)
    st.session_state[K_TEST] = list(spec.test)
    since_at, until_at = _instant(spec.since), _instant(spec.until)
    # The preset picked here stays when the link holds its time; a link's own times have none.
    same = since_at is not None and until_at is None and st.session_state.get(_SINCE_AT) == since_at
    st.session_state[_PRESET_SAVED] = st.session_state.get(_PRESET_SAVED) if same else None
    st.session_state[K_PRESET] = st.session_state[_PRESET_SAVED]
    st.session_state[K_SINCE] = _as_date(since_at or spec.since)
    st.session_state[K_UNTIL] = _as_date(until_at or spec.until)
    st.session_state[_SINCE_AT] = since_at
    st.session_state[_UNTIL_AT] = until_at
    st.session_state[K_SUCCESS] = (
        "Any" if spec.success is None else "Succeeded" if spec.success else "Failed"
    )
    # An invalid where from a link is kept in the field so its error shows next to it.
    where = (params.get("where") or [""])[-1]
    st.session_state[K_WHERE] = where


def _spec_from_link(params: dict[str, list[str]]) -> tuple[FilterSpec, list[str]]:
    """The link's spec without its bad parameters, and a message naming each one left out."""
    try:
        return filters.from_query_params(params), []
    except InvalidFilter:
        pass
    good: dict[str, list[str]] = {}
    problems: list[str] = []
    for key, values in params.items():
        if key in ("where", "dataset"):  # kept in the field as typed: its error shows next to it
            continue
        try:
            filters.from_query_params({key: values})
        except InvalidFilter as exc:
            problems.append(str(exc))
        else:
            good[key] = values
    try:
        return filters.from_query_params(good), problems
    except InvalidFilter as exc:  # good one by one, not together (since after until)
        problems.append(str(exc))
        rest = {k: v for k, v in good.items() if k not in ("since", "until")}
        return filters.from_query_params(rest), problems


def _options(choices: list[str], key: str) -> list[str]:
    chosen = [v for v in st.session_state.get(key) or [] if v not in choices]
    return sorted(set(choices) | set(chosen))


def _widgets_spec() -> tuple[FilterSpec, str]:
    success = st.session_state.get(K_SUCCESS, "Any")
    where = (st.session_state.get(K_WHERE) or "").strip()
    spec = FilterSpec(
        provider=tuple(st.session_state.get(K_PROVIDER) or ()),
        model=tuple(st.session_state.get(K_MODEL) or ()),
        test=tuple(st.session_state.get(K_TEST) or ()),
        since=_field_value(K_SINCE, _SINCE_AT),
        until=_field_value(K_UNTIL, _UNTIL_AT),
        success=None if success in (None, "Any") else success == "Succeeded",
        where=where or None,
    )
    return spec, where


def filter_sidebar(db_url: str) -> Selection:
    """Render the filters in the sidebar; return the selection and write it to the URL."""
    query = _current_query()
    seen = st.session_state.get(_SEEN)
    # A link opened in this session wins; an empty query after a page switch keeps the widgets
    # (Streamlit drops the query on page changes) and is written back below.
    if seen is None or (query and seen != _signature(query)):
        _load_widgets_from_query(query)
    elif K_DATASET not in st.session_state:  # widget state is dropped with the page it was on
        _load_widgets_from_query(st.session_state.get(_SAVED) or {})
    # Re-assign the values so the same widgets on another page start from them (Streamlit ties
    # widget state to the page that drew it).
    for key in (*_WIDGET_KEYS, K_PRESET):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    providers, models_by_provider, tests = data.choices(db_url)

    sb = st.sidebar
    sb.header("Filters")
    names = list(DATASETS)
    sb.selectbox(
        "Dataset",
        names,
        key=K_DATASET,
        format_func=lambda n: n.replace("-", " ").capitalize(),
        help="; ".join(f"{d.name}: {d.description}" for d in DATASETS.values()),
    )
    sb.multiselect("Provider", _options(providers, K_PROVIDER), key=K_PROVIDER, placeholder="All")
    chosen = st.session_state.get(K_PROVIDER) or providers
    models = sorted({m for p in chosen for m in models_by_provider.get(p, [])})
    sb.multiselect("Model", _options(models, K_MODEL), key=K_MODEL, placeholder="All")
    sb.multiselect("Test", _options(tests, K_TEST), key=K_TEST, placeholder="All")
    sb.pills(
        "Last",
        list(PRESETS),
        key=K_PRESET,
        on_change=_apply_preset,
        help="Since that long before now (UTC, to the minute), until now. The share link keeps "
        "the exact time, so it shows the same rows later.",
    )
    # One date per row: two side by side cut the filled-in dates off.
    sb.date_input(
        "Since (UTC)",
        key=K_SINCE,
        format="YYYY-MM-DD",
        help=DATE_HELP,
        on_change=_date_edited,
        args=(_SINCE_AT,),
    )
    sb.date_input(
        "Until (UTC)",
        key=K_UNTIL,
        format="YYYY-MM-DD",
        help=DATE_HELP,
        on_change=_date_edited,
        args=(_UNTIL_AT,),
    )
    caption = _instant_caption()
    if caption:
        sb.caption(caption)
    date_slot = sb.empty()
    sb.segmented_control("Outcome", SUCCESS_CHOICES, key=K_SUCCESS)
    with sb.expander("Advanced", expanded=bool(st.session_state.get(K_WHERE))):
        st.text_area(
            "Where",
            key=K_WHERE,
            height=80,
            placeholder="cost_usd > 0.01 and response ~ 'Washington'",
            help=WHERE_HELP,
        )
    # Outside the box: a collapsed Advanced box must not hide the reason.
    where_slot = sb.empty()
    link_error = st.session_state.get(_LINK_ERROR)
    if link_error:
        sb.warning(link_error, icon=":material/link_off:")
    submit_dates_on_enter()

    dataset = st.session_state.get(K_DATASET) or DEFAULT_DATASET
    error: str | None = None
    try:
        spec, _ = _widgets_spec()
        user = st.session_state.get("_nx_user")
        level = user.top_level if isinstance(user, CurrentUser) else "public"
        filters.validate(spec, get_dataset(dataset), level)
    except (InvalidFilter, ValueError) as exc:
        error = str(exc)
        slot = date_slot if _is_date_error(error) else where_slot
        slot.error(error, icon=":material/warning:")
        spec = None
    st.session_state[FILTER_ERROR] = error
    signature = _write_query(dataset, spec)
    if link_error and st.session_state.setdefault(_LINK_ERROR_SIG, signature) != signature:
        st.session_state.pop(_LINK_ERROR, None)  # the user changed the filters since
    return Selection(
        dataset=dataset, spec=spec, error=error, link_notice=st.session_state.get(_LINK_ERROR)
    )


def _is_date_error(error: str) -> bool:
    return error.startswith(("since", "until"))


def page_notices(selection: Selection) -> None:
    """At the top of the page: the share-link notice and the filter error, where the eye is."""
    if selection.link_notice:
        st.warning(selection.link_notice, icon=":material/link_off:")
    if selection.error:
        field = "Since/Until" if _is_date_error(selection.error) else "Where (Advanced)"
        st.error(
            f"Invalid filter — {selection.error}. Fix {field} in the sidebar to see results.",
            icon=":material/warning:",
        )


def load_spec(dataset: str, spec: FilterSpec) -> None:
    """Make the next page that draws the sidebar start from ``dataset`` and ``spec``."""
    params = filters.to_query_params(spec)
    if dataset != DEFAULT_DATASET:
        params["dataset"] = dataset
    for key in (*_WIDGET_KEYS, K_PRESET, _SINCE_AT, _UNTIL_AT, _PRESET_SAVED):
        st.session_state.pop(key, None)
    st.session_state[_SAVED] = {k: [v] if isinstance(v, str) else v for k, v in params.items()}
    st.session_state[_SEEN] = _signature(params)


_ENTER_SCRIPT = """
<script>
// Enter in a sidebar date field applies the typed date (the field applies it on blur).
const doc = window.parent.document;
if (!doc.nxDateEnter) {
  doc.nxDateEnter = true;
  doc.addEventListener("keydown", (event) => {
    // The field is a row of year/month/day segments; focus moving out of it commits the
    // typed date (a plain blur does not). Focus goes to a stand-in right after the field, so
    // Tab carries on from there; the stand-in goes away when focus leaves it.
    const field = event.target;
    const box = event.key === "Enter" && field && field.closest
      && field.closest('[data-testid="stDateInput"]');
    if (box) {
      event.preventDefault();
      const stand = doc.createElement("span");
      stand.tabIndex = -1;
      stand.addEventListener("blur", () => stand.remove());
      box.after(stand);
      stand.focus();
    }
  }, true);
}
</script>
"""


def submit_dates_on_enter() -> None:
    """Install (once per browser page) the Enter key handler of the date fields."""
    st.sidebar.html(_ENTER_SCRIPT, unsafe_allow_javascript=True)


def _write_query(dataset: str, spec: FilterSpec | None) -> str:
    if spec is None:  # keep the URL as it is until the filter is fixed, but remember the where
        raw_spec, where = _widgets_spec_unchecked()
        params = filters.to_query_params(raw_spec)
        if where:
            params["where"] = where
    else:
        params = filters.to_query_params(spec)
    if dataset != DEFAULT_DATASET:
        params["dataset"] = dataset
    signature = _signature(params)
    if signature != _signature(_current_query()):
        st.query_params.from_dict(params)
    st.session_state[_SEEN] = signature
    st.session_state[_SAVED] = {k: [v] if isinstance(v, str) else v for k, v in params.items()}
    return signature


def _widgets_spec_unchecked() -> tuple[FilterSpec, str]:
    try:
        spec, where = _widgets_spec()
        return spec.model_copy(update={"where": None}), where
    except ValueError:
        return FilterSpec(), (st.session_state.get(K_WHERE) or "").strip()
