"""Filter spec and where language: parsing, errors, bound SQL, real rows on both backends."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from nano_export import filters, schema
from nano_export.datasets import EVALUATION_RESULTS, get_dataset
from nano_export.db import get_engine, upgrade
from nano_export.errors import InvalidFilter
from nano_export.filters import (
    apply_filters,
    compile_filters,
    describe,
    from_query_params,
    to_query_params,
    validate,
)
from nano_export.models import FilterSpec
from nano_export.where import (
    And,
    BoolColumn,
    Compare,
    InList,
    IsNull,
    Literal,
    Name,
    Not,
    Or,
    parse_where,
)

# ---- parser ------------------------------------------------------------------------------------


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    tree = parse_where("not success and is_error or rank = 1")
    assert tree == Or(
        (
            And((Not(BoolColumn(Name("success", 5))), BoolColumn(Name("is_error", 17)))),
            Compare(Name("rank", 29), "=", Literal(1, "number", 36), 34),
        )
    )


def test_parentheses_override_precedence() -> None:
    tree = parse_where("a and (b or c)")
    assert isinstance(tree, And)
    assert isinstance(tree.items[1], Or)


def test_keywords_are_case_insensitive_and_column_names_kept_exact() -> None:
    tree = parse_where("NOT Success AND x Is Not NULL")
    assert tree == And((Not(BoolColumn(Name("Success", 5))), IsNull(Name("x", 17), negated=True)))


def test_in_and_not_in_lists_hold_literals_of_every_kind() -> None:
    tree = parse_where("provider in ('openai', \"anthropic\") and rank not in (1, 2.5, -3, true)")
    assert isinstance(tree, And)
    first, second = tree.items
    assert first == InList(
        Name("provider", 1),
        (Literal("openai", "string", 14), Literal("anthropic", "string", 24)),
        negated=False,
    )
    assert isinstance(second, InList) and second.negated
    assert [v.value for v in second.values] == [1, 2.5, -3, True]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'it''s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ("'double \" inside single'", 'double " inside single'),
        ("''", ""),
        ("'; DROP TABLE executions; --'", "; DROP TABLE executions; --"),
    ],
)
def test_strings_unescape_doubled_quotes(text: str, value: str) -> None:
    tree = parse_where(f"response = {text}")
    assert isinstance(tree, Compare)
    assert tree.operand == Literal(value, "string", 12)


def test_numbers_parse_as_int_or_float() -> None:
    values = []
    for text in ("5", "-2", "0.01", ".5", "1e-3"):
        tree = parse_where(f"cost_usd > {text}")
        assert isinstance(tree, Compare) and isinstance(tree.operand, Literal)
        values.append(tree.operand.value)
    assert values == [5, -2, 0.01, 0.5, 0.001]
    assert isinstance(values[0], int) and isinstance(values[2], float)


def test_every_operator_is_recognised_and_sql_style_not_equal_is_accepted() -> None:
    ops = []
    for op in ("=", "!=", "<>", "<", "<=", ">", ">=", "~", "!~"):
        tree = parse_where(f"response {op} 'x'")
        assert isinstance(tree, Compare)
        ops.append(tree.op)
    assert ops == ["=", "!=", "!=", "<", "<=", ">", ">=", "~", "!~"]


def test_a_column_may_be_compared_with_another_column() -> None:
    tree = parse_where("input_tokens>output_tokens")
    assert tree == Compare(Name("input_tokens", 1), ">", Name("output_tokens", 14), 13)


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("provider = 'openai", "unterminated string: the ' opened here is never closed", 12),
        ("cost_usd > ", "expected a value after '>', found the end of the expression", 12),
        ("cost_usd > and", "expected a value after '>', found 'and'", 12),
        ("error = null", "found 'null'; write 'is null' or 'is not null'", 9),
        ("", "empty expression", None),
        ("   ", "empty expression", None),
        ("(success", "expected ')' to close '(' at position 1, found the end", 9),
        ("success)", "unexpected ')'; expected 'and', 'or' or the end", 8),
        ("success success", "unexpected 'success'; expected 'and', 'or' or the end", 9),
        ("1=1", "expected a column name, found the number 1", 1),
        ("'a' = provider", "expected a column name, found the string 'a'", 1),
        ("1=1; DROP TABLE executions", "unexpected character ';'", 4),
        ("provider = 'x' or 1=1 --", "unexpected character '-'", 23),
        ("provider = ''; DELETE FROM executions; --'", "unexpected character ';'", 14),
        ("provider in ()", "expected a value in the list after 'in' at position 10, found ')'", 14),
        ("provider in 'a'", "expected '(' after 'in', found the string 'a'", 13),
        ("provider in ('a' 'b')", "expected ',' or ')' in the list after 'in'", 18),
        ("provider is nul", "expected 'null' after 'is', found 'nul'", 13),
        ("rank = 12ab", "invalid number '12' followed by 'a'", 10),
        ("rank = 99999999999999999999", "number 99999999999999999999 is too large", 8),
        ("provider = 'a' and", "expected a column name, found the end of the expression", 19),
        ("provider @ 'a'", "unexpected character '@'", 10),
        (
            "response ~ 'a('",
            "invalid regular expression 'a(': missing ), unterminated subpattern",
            12,
        ),
        ("response ~ 5", "'~' needs a regular expression in quotes, found 5", 12),
        ("response ~ '\\bWash'", "uses \\b (a word boundary in Python)", 12),
        ("response ~ '(?P<x>a)'", "uses a named or atomic group", 12),
        ("response ~ 'a*+'", "uses a possessive quantifier", 12),
        ("response ~ '(?i:a)'", "uses the inline flags (?i:", 12),
        ("response ~ '(?a)x'", "uses the inline flags (?a)", 12),
        ("not " * 70 + "success", "expression nests too deeply", 257),
        ("(" * 70 + "success", "expression nests too deeply", 65),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, message: str, position: int | None) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_where(text)
    assert message in str(caught.value)
    assert caught.value.position == position
    if position is not None:
        assert str(caught.value).endswith(f"(at position {position})")


def test_posix_classes_are_accepted_without_a_python_warning(engine) -> None:
    import warnings

    from nano_export import queries
    from nano_export.schema import executions

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python's re warned "Possible nested set" here
        parse_where("test_id ~ '[[:digit:]]{3}'")
    with engine.begin() as conn:
        conn.execute(
            executions.insert(),
            [
                {"id": i, "source_key": f"p{i}", "test_id": t, "provider": "openai",
                 "model": "m", "started_at": datetime(2025, 8, 1, tzinfo=UTC), "success": True,
                 "source": "test"}
                for i, t in ((1, "run_123"), (2, "run_12"), (3, "abc"))
            ],
        )  # fmt: skip
    spec = FilterSpec(where="test_id ~ '[[:digit:]]{3}'")
    assert queries.count_rows(engine, dataset="evaluation-results", spec=spec) == 1


def test_portable_regex_constructs_are_accepted() -> None:
    for pattern in (
        r"(?i)washington",
        r"\d+\.\d*",
        r"[*+]+",
        r"[]a]",
        r"\\b",
        r"^(?:a|b)c",
        r"(?s)a.b",
        r"^(.+)+Z",
    ):
        assert isinstance(parse_where(f"response ~ '{pattern}'"), Compare), pattern


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(a)\1", "not supported"),
        (r"a(?=c)", "not supported"),
        (r"(?<!c)a", "not supported"),
        (r"a{,3}", "{,n} quantifier"),
    ],
)
def test_patterns_without_a_linear_time_match_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=re.escape(message)):
        parse_where(f"response ~ '{pattern}'")


@pytest.mark.parametrize(
    "pattern", [r"[a-q][^u-z]{1000}x", r"a{101}", r"x{0,200}", r"(a{20}){6}", r"(ab|c{300})"]
)
def test_counted_repetitions_above_100_are_refused_with_a_clear_message(pattern: str) -> None:
    with pytest.raises(InvalidFilter, match=r"too costly: it repeats \d+ times.*at most 100"):
        parse_where(f"response ~ '{pattern}'")


@pytest.mark.parametrize("pattern", [r"a{100}", r"(a{10}){10}", r"a{2,}", r"a*b+c?", r"[{]1000}"])
def test_counted_repetitions_up_to_100_are_accepted(pattern: str) -> None:
    assert isinstance(parse_where(f"response ~ '{pattern}'"), Compare)


def test_a_catastrophic_pattern_runs_in_linear_time_on_sqlite(sqlite_url: str) -> None:
    import time

    from nano_export.db import get_engine

    engine = get_engine(sqlite_url)
    with engine.connect() as conn:
        start = time.perf_counter()
        hit = conn.exec_driver_sql("SELECT ? REGEXP ?", ("a" * 5000 + "!", "^(.+)+Z")).scalar_one()
        assert time.perf_counter() - start < 1.0
        assert hit == 0
        assert conn.exec_driver_sql("SELECT ? REGEXP ?", ("Washington", "(?i)wash")).scalar_one()
        assert conn.exec_driver_sql("SELECT NULL REGEXP ?", ("x",)).scalar_one() is None


def test_an_overlong_expression_is_refused() -> None:
    with pytest.raises(InvalidFilter, match="too long"):
        parse_where("success or " * 1000 + "success")


# ---- compiling against a dataset ---------------------------------------------------------------


def _spec_error(where: str, dataset: str = "evaluation-results") -> InvalidFilter:
    with pytest.raises(InvalidFilter) as caught:
        validate(FilterSpec(where=where), get_dataset(dataset))
    return caught.value


@pytest.mark.parametrize(
    ("where", "message", "position"),
    [
        ("cost > 1", "unknown column 'cost'; did you mean 'cost_usd'?", 1),
        ("provider = 'a' and Provider = 'b'", "unknown column 'Provider'; did you mean", 20),
        ("zzz = 1", "unknown column 'zzz'; the columns of evaluation-results are: execution_id", 1),
        ("cost_usd > 'abc'", "column 'cost_usd' is a number; 'abc' is not", 12),
        ("cost_usd > true", "column 'cost_usd' is a number; true is not", 12),
        ("success = 'x'", "column 'success' is true or false; 'x' is neither", 11),
        ("success = 1", "column 'success' is true or false; 1 is neither", 11),
        ("success > false", "'>' does not apply to the boolean column 'success'", 9),
        ("provider = 5", "column 'provider' is text: write the value in quotes", 12),
        ("provider in ('a', 1)", "column 'provider' is text", 19),
        ("cost_usd ~ '1'", "'~' matches text, but column 'cost_usd' is float", 10),
        ("response ~ prompt", "'~' needs a quoted regular expression, not the column 'prompt'", 12),
        ("provider = cost_usd", "cannot compare text column 'provider' with float column", 10),
        ("cost_usd", "column 'cost_usd' is float, not a condition on its own", 1),
        ("started_at >= 'yesterday'", "column 'started_at' is a date/time; 'yesterday' is not", 15),
        ("started_at >= 5", "column 'started_at' is a date/time; 5 is not", 15),
        ("started_at = '2025-02-30'", "'2025-02-30' is not one", 14),
    ],
)
def test_names_and_types_are_checked_against_the_dataset(
    where: str, message: str, position: int
) -> None:
    err = _spec_error(where)
    assert message in str(err)
    assert err.position == position


def test_agent_interactions_has_no_success_column_in_where_but_the_spec_field_works() -> None:
    interactions = get_dataset("agent-interactions")
    assert "unknown column 'success'" in str(_spec_error("success", "agent-interactions"))
    validate(FilterSpec(success=True, where="is_error"), interactions)


def test_a_dataset_without_a_filter_field_refuses_that_field() -> None:
    bare = dataclasses.replace(EVALUATION_RESULTS, name="bare", filter_fields={})
    validate(FilterSpec(where="success"), bare)
    with pytest.raises(InvalidFilter, match="dataset 'bare' cannot be filtered by provider"):
        validate(FilterSpec(provider=("openai",)), bare)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (date(2025, 8, 10), date(2025, 8, 1)),
        (datetime(2025, 8, 2, 0, 0, tzinfo=UTC), date(2025, 8, 1)),
        (date(2025, 8, 2), datetime(2025, 8, 1, 23, 59, tzinfo=UTC)),
    ],
)
def test_since_after_until_is_refused_before_anything_runs(
    since: date | datetime, until: date | datetime
) -> None:
    with pytest.raises(InvalidFilter, match=re.escape(f"since ({since.isoformat()}) is after")):
        validate(FilterSpec(since=since, until=until), EVALUATION_RESULTS)


def test_the_same_day_for_since_and_until_is_valid() -> None:
    validate(FilterSpec(since=date(2025, 8, 1), until=date(2025, 8, 1)), EVALUATION_RESULTS)


def test_user_values_become_bound_parameters_never_sql_text() -> None:
    evil = "x'; DELETE FROM executions; --"
    spec = FilterSpec(
        provider=(evil,),
        test=("t' OR 1=1 --",),
        where="response ~ 'Wash''ington' and prompt = 'a''; DROP TABLE executions; --'",
    )
    stmt = apply_filters(EVALUATION_RESULTS.select(), spec, EVALUATION_RESULTS)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = stmt.compile(dialect=dialect)
        sql = str(compiled)
        assert "DELETE" not in sql and "DROP" not in sql and "Wash" not in sql
        values = [v for v in compiled.params.values() if isinstance(v, str | list)]
        flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
        assert evil in flat
        assert "Wash'ington" in flat
        assert "a'; DROP TABLE executions; --" in flat


def test_an_empty_spec_leaves_the_select_unchanged() -> None:
    stmt = EVALUATION_RESULTS.select()
    assert apply_filters(stmt, FilterSpec(), EVALUATION_RESULTS) is stmt
    assert compile_filters(FilterSpec(where="  "), EVALUATION_RESULTS) == []


# ---- share link and description ---------------------------------------------------------------

FULL_SPEC = FilterSpec(
    provider=("openai", "anthropic"),
    model=("gpt-5",),
    test=("T1", "Capital of France"),
    since=date(2025, 8, 1),
    until=datetime(2025, 8, 10, 12, 30, tzinfo=UTC),
    success=False,
    where="cost_usd > 0.01 and response ~ 'it''s'",
)


def test_query_params_round_trip_the_whole_spec() -> None:
    params = to_query_params(FULL_SPEC)
    assert params == {
        "provider": ["openai", "anthropic"],
        "model": ["gpt-5"],
        "test": ["T1", "Capital of France"],
        "since": "2025-08-01",
        "until": "2025-08-10T12:30:00+00:00",
        "success": "false",
        "where": "cost_usd > 0.01 and response ~ 'it''s'",
    }
    assert from_query_params(params) == FULL_SPEC
    assert to_query_params(FilterSpec()) == {}
    assert from_query_params({}) == FilterSpec()


def test_query_params_accept_single_strings_and_ignore_other_keys() -> None:
    spec = from_query_params(
        {"provider": "openai", "dataset": "agent-interactions", "page": "2", "success": "TRUE"}
    )
    assert spec == FilterSpec(provider=("openai",), success=True)
    assert from_query_params({"provider": ["", " "], "where": " ", "success": ""}) == FilterSpec()
    assert from_query_params({"since": ["2025-01-01", "2025-08-01"]}).since == date(2025, 8, 1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"success": "maybe"}, "success: expected true or false, got 'maybe'"),
        ({"since": "2025-13-01"}, "since: '2025-13-01' is not a date"),
        ({"until": "soon"}, "until: 'soon' is not a date"),
        ({"where": "cost_usd >"}, "where: expected a value after '>'"),
        ({"since": "2025-08-10", "until": "2025-08-01"}, "since (2025-08-10) is after until"),
        ({"provider": [1]}, "provider: expected text, got int 1"),
    ],
)
def test_bad_query_params_name_the_parameter(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        from_query_params(params)
    assert message in str(caught.value)


def test_a_bad_where_in_the_link_keeps_its_position() -> None:
    with pytest.raises(InvalidFilter) as caught:
        from_query_params({"where": "cost_usd >"})
    assert caught.value.position == 11


def test_describe_gives_one_line_for_people() -> None:
    assert describe(FilterSpec()) == "all rows"
    assert describe(FULL_SPEC) == (
        "provider in (openai, anthropic); model = gpt-5; test in (T1, Capital of France); "
        "since 2025-08-01; until 2025-08-10T12:30:00+00:00; success = false; "
        "where cost_usd > 0.01 and response ~ 'it''s'"
    )
    assert describe(FilterSpec(success=True, where="a\n  and b")) == "success = true; where a and b"


# ---- properties --------------------------------------------------------------------------------

_VALUES: dict[str, st.SearchStrategy[str]] = {
    "text": st.text(max_size=8).map(lambda s: "'" + s.replace("'", "''") + "'"),
    "int": st.integers(-(10**6), 10**6).map(str),
    "float": st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.6f}"),
    "bool": st.sampled_from(["true", "false", "TRUE"]),
    "datetime": st.sampled_from(["'2025-08-01'", "'2025-08-01T10:00:00Z'", "'2025-08-01 10:00'"]),
}
_OPS = {
    "text": ["=", "!=", "<", ">=", "~", "!~"],
    "int": ["=", "!=", "<", "<=", ">", ">="],
    "float": ["=", "!=", "<", "<=", ">", ">="],
    "bool": ["=", "!="],
    "datetime": ["=", "!=", "<", "<=", ">", ">="],
}


@st.composite
def _condition(draw: st.DrawFn) -> str:
    col = draw(st.sampled_from(EVALUATION_RESULTS.columns))
    form = draw(
        st.sampled_from(["compare", "in", "null"] + (["bare"] if col.kind == "bool" else []))
    )
    if form == "bare":
        return col.name
    if form == "null":
        return f"{col.name} is {draw(st.sampled_from(['', 'not ']))}null"
    if form == "in":
        values = draw(st.lists(_VALUES[col.kind], min_size=1, max_size=3))
        return f"{col.name} {draw(st.sampled_from(['in', 'not in']))} ({', '.join(values)})"
    op = draw(st.sampled_from(_OPS[col.kind]))
    value = "'a.b'" if op in ("~", "!~") else draw(_VALUES[col.kind])
    return f"{col.name} {op} {value}"


_expressions = st.recursive(
    _condition(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" and ", " or ", " AND "]), inner).map("".join),
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(_expressions)
def test_random_valid_expressions_parse_and_compile(where: str) -> None:
    stmt = apply_filters(EVALUATION_RESULTS.select(), FilterSpec(where=where), EVALUATION_RESULTS)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert "WHERE" in str(stmt.compile(dialect=dialect))


_garbage = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            [
                "provider",
                "cost_usd",
                "success",
                "(",
                ")",
                "and",
                "or",
                "not",
                "in",
                "is",
                "null",
                "=",
                "~",
                ">=",
                "'x'",
                "'",
                '"',
                "1.5",
                "-",
                ",",
                "true",
                ";",
                "'(?P<a>)'",
                " ",
            ]
        ),
        max_size=12,
    ).map(" ".join),
)


@settings(max_examples=300, deadline=None)
@given(_garbage)
def test_garbage_raises_nothing_but_invalid_filter(text: str) -> None:
    for dataset in ("evaluation-results", "agent-interactions"):
        try:
            validate(FilterSpec(where=text), get_dataset(dataset))
        except InvalidFilter as exc:
            assert str(exc)


# ---- real rows on SQLite and PostgreSQL --------------------------------------------------------


def _t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


EXECUTIONS = [
    # id, provider, model, test_id, test_name, started_at, success, error, response, cost
    (
        1,
        "openai",
        "gpt-5",
        "T1",
        "Capital of France",
        _t(2025, 7, 31, 23, 59, 59),
        True,
        None,
        "Paris is the capital",
        0.02,
    ),
    (
        2,
        "anthropic",
        "claude-opus-4-1-20250805",
        "T1",
        "Capital of France",
        _t(2025, 8, 1),
        True,
        None,
        "Washington, D.C.? No: Paris",
        0.005,
    ),
    (
        3,
        "openai",
        "gpt-5-mini",
        "T2",
        "US capital",
        _t(2025, 8, 10, 23, 59, 59, 999000),
        False,
        "timeout",
        None,
        0.001,
    ),
    (
        4,
        "ollama",
        "gpt-oss:20b",
        None,
        None,
        _t(2025, 8, 11),
        False,
        "crashed",
        "washington state",
        None,
    ),
    (
        5,
        "anthropic",
        "claude-sonnet-4-20250514",
        "T2",
        "US capital",
        _t(2025, 8, 5, 12),
        True,
        None,
        "It's Washington\nD.C.",
        0.05,
    ),
]


INTERACTIONS = [
    (10, 1, 1, "request", None, None, _t(2025, 7, 31, 23, 59, 59)),
    (11, 1, 2, "tool_call", "read", '{"path": "/etc/hosts"}', _t(2025, 8, 1, 0, 0, 1)),
    (12, 3, 1, "tool_call", "write", None, _t(2025, 8, 10, 12)),
]


def _load(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(schema.executions),
            [
                {
                    "id": i,
                    "source_key": f"k{i}",
                    "provider": p,
                    "model": m,
                    "test_id": tid,
                    "test_name": tname,
                    "started_at": at,
                    "success": ok,
                    "error": err,
                    "response": resp,
                    "source": "test",
                }
                for i, p, m, tid, tname, at, ok, err, resp, _ in EXECUTIONS
            ],
        )
        conn.execute(
            insert(schema.execution_metrics),
            [
                {"execution_id": i, "cost_usd": cost, "input_tokens": 100 * i, "output_tokens": 50}
                for i, *_, cost in EXECUTIONS
                if i != 4
            ],
        )
        # One dict shape for every row: executemany takes its columns from the first row.
        keys = ("id", "execution_id", "seq", "kind", "tool_name", "arguments", "started_at")
        conn.execute(
            insert(schema.interactions),
            [
                {**dict(zip(keys, row, strict=True)), "is_error": row[0] == 12}
                for row in INTERACTIONS
            ],
        )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A migrated database with five executions, their metrics and three interactions.

    Loaded once per backend for this module (the filter tests only read), which keeps the
    PostgreSQL run fast; the tests that change data use conftest's per-test ``db_url``.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('filters') / 'nano-export.db'}"
        upgrade(get_engine(url))
    else:
        url = request.getfixturevalue("pg_server_url")
    engine = get_engine(url)
    with engine.begin() as conn:  # the shared PostgreSQL database may hold other tests' rows
        for table in (schema.interactions, schema.execution_metrics, schema.executions):
            conn.execute(delete(table))
    _load(engine)
    return engine


def _ids(engine: Engine, spec: FilterSpec, dataset: str = "evaluation-results") -> list[int]:
    ds = get_dataset(dataset)
    key = "interaction_id" if dataset == "agent-interactions" else "execution_id"
    with engine.connect() as conn:
        return list(conn.execute(apply_filters(ds.select([key]), spec, ds)).scalars())


CASES: list[tuple[FilterSpec, list[int]]] = [
    (FilterSpec(), [1, 2, 3, 4, 5]),
    (FilterSpec(provider=("openai", "anthropic")), [1, 2, 3, 5]),
    (FilterSpec(model=("gpt-oss:20b",)), [4]),
    (FilterSpec(test=("T2",)), [3, 5]),
    (FilterSpec(test=("Capital of France", "T2")), [1, 2, 3, 5]),
    (FilterSpec(success=False), [3, 4]),
    (FilterSpec(since=date(2025, 8, 1)), [2, 3, 4, 5]),
    (FilterSpec(until=date(2025, 8, 10)), [1, 2, 3, 5]),
    (FilterSpec(since=date(2025, 8, 1), until=date(2025, 8, 1)), [2]),
    (FilterSpec(since=date(2025, 8, 11), until=date(2025, 8, 11)), [4]),
    (FilterSpec(until=datetime(2025, 8, 1, tzinfo=UTC)), [1, 2]),
    (FilterSpec(since=datetime(2025, 8, 5, 14, 0, tzinfo=UTC)), [3, 4]),
    (FilterSpec(since=datetime(2025, 8, 5, 14, 0)), [3, 4]),  # naive means UTC
    (FilterSpec(where="not success"), [3, 4]),
    (FilterSpec(where="success and cost_usd > 0.01"), [1, 5]),
    (FilterSpec(where="provider = 'openai' and (cost_usd > 0.01 or not success)"), [1, 3]),
    (FilterSpec(where="response ~ 'Washington'"), [2, 5]),
    (FilterSpec(where="response ~ '(?i)^washington'"), [2, 4]),
    (FilterSpec(where="response ~ '^Washington'"), [2]),
    (FilterSpec(where="response ~ '[0-9]' or response ~ 'D\\.C\\.$'"), [5]),
    (FilterSpec(where="response !~ 'Paris'"), [4, 5]),
    (FilterSpec(where="response ~ '(?s)Washington.D'"), [5]),
    (FilterSpec(where="response is null"), [3]),
    (FilterSpec(where="cost_usd is null or error is not null"), [3, 4]),
    (
        FilterSpec(where="provider in ('ollama', 'anthropic') and model not in ('gpt-oss:20b')"),
        [2, 5],
    ),
    (FilterSpec(where="execution_id in (1, 3) or rank = 7"), [1, 3]),
    (FilterSpec(where="started_at >= '2025-08-01' and started_at <= '2025-08-10'"), [2, 3, 5]),
    (FilterSpec(where="started_at = '2025-08-10'"), [3]),
    (FilterSpec(where="started_at != '2025-08-10'"), [1, 2, 4, 5]),
    (FilterSpec(where="started_at > '2025-08-10'"), [4]),
    (FilterSpec(where="started_at < '2025-08-01'"), [1]),
    (FilterSpec(where="started_at < '2025-08-01T00:00:00Z'"), [1]),
    (FilterSpec(where="started_at >= '2025-08-01T02:00:00+02:00'"), [2, 3, 4, 5]),
    (FilterSpec(where="started_at in ('2025-07-31', '2025-08-11')"), [1, 4]),
    (FilterSpec(where="started_at not in ('2025-07-31', '2025-08-11')"), [2, 3, 5]),
    (FilterSpec(where="input_tokens > output_tokens"), [1, 2, 3, 5]),
    (FilterSpec(where="success = false or test_name = 'it''s'"), [3, 4]),
    (FilterSpec(where="test_id < 'T2'"), [1, 2]),
    (FilterSpec(provider=("x'; DELETE FROM executions; --",)), []),
    (FilterSpec(where="provider = '''; DELETE FROM executions; --'"), []),
]


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[describe(s) for s, _ in CASES])
def test_each_filter_selects_exactly_the_expected_rows(
    loaded: Engine, spec: FilterSpec, expected: list[int]
) -> None:
    assert _ids(loaded, spec) == expected


def test_performance_metrics_filters_on_derived_columns(loaded: Engine) -> None:
    spec = FilterSpec(where="tokens_per_second is null and cost_usd >= 0.001", success=True)
    assert _ids(loaded, spec, "performance-metrics") == [1, 2, 5]


def test_agent_interactions_filter_on_their_own_time_and_the_execution_fields(
    loaded: Engine,
) -> None:
    assert _ids(loaded, FilterSpec(success=True), "agent-interactions") == [10, 11]
    assert _ids(loaded, FilterSpec(since=date(2025, 8, 1)), "agent-interactions") == [11, 12]
    assert _ids(loaded, FilterSpec(where="is_error"), "agent-interactions") == [12]
    assert _ids(loaded, FilterSpec(test=("US capital",)), "agent-interactions") == [12]
    spec = FilterSpec(where="arguments ~ '/etc/' and kind = 'tool_call'", provider=("openai",))
    assert _ids(loaded, spec, "agent-interactions") == [11]


@pytest.mark.parametrize(
    "where",
    [
        "1=1; DROP TABLE executions",
        "provider = 'x' or 1=1 --",
        "provider = ''; DELETE FROM executions; --'",
        "provider = 'x'; DELETE FROM executions",
        "executions.provider = 'x'",
        "provider = 'x' union select 1",
    ],
)
def test_injection_attempts_are_refused_and_leave_the_table_intact(
    loaded: Engine, where: str
) -> None:
    with pytest.raises(InvalidFilter):
        _ids(loaded, FilterSpec(where=where))
    with loaded.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.executions)).scalar_one() == 5


def test_sqlite_engines_from_db_have_the_regexp_function(sqlite_url: str) -> None:
    # db.py uses NullPool and its own 'connect' listener: every new connection still gets
    # SQLAlchemy's regexp function (Python re.search semantics).
    engine = get_engine(sqlite_url)
    for _ in range(2):
        with engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT 'Washington' REGEXP 'ash', 'x' REGEXP 'y'").one()
            assert tuple(found) == (1, 0)


@pytest.mark.parametrize(
    ("level", "where", "refused"),
    [
        ("public", "prompt ~ 'sk-'", "prompt"),
        ("public", "response = 'x' or cost_usd > 1", "response"),
        ("public", "user = 'alice'", "user"),
        ("public", "not (session_id in ('a', 'b'))", "session_id"),
        ("public", "error is null", "error"),
        ("public", "input_tokens > output_tokens and model ~ 'gpt'", None),
        ("standard", "session_id = 'sess-1'", "session_id"),
        ("standard", "response ~ 'Washington' and user = 'alice'", "user"),
        ("standard", "response ~ 'Washington' and cost_usd > 0.01", None),
        ("full", "session_id = 'sess-1' and prompt ~ 'x'", None),
    ],
)
def test_a_where_cannot_look_at_columns_its_privacy_level_hides(
    level: str, where: str, refused: str | None
) -> None:
    dataset = get_dataset("evaluation-results")
    spec = FilterSpec(where=where)
    if refused is None:
        filters.validate(spec, dataset, level)  # type: ignore[arg-type]
        return
    with pytest.raises(InvalidFilter, match=f"'{refused}' is not shown at privacy level") as info:
        filters.validate(spec, dataset, level)  # type: ignore[arg-type]
    assert info.value.position == where.index(refused) + 1
    filters.validate(spec, dataset)  # without a level only the syntax and columns are checked


def test_an_export_plan_applies_the_hidden_column_rule() -> None:
    from nano_export.exporter import plan_export
    from nano_export.models import ExportRequest

    request = ExportRequest(
        dataset="agent-interactions", privacy="public", filters=FilterSpec(where="result ~ 'x'")
    )
    with pytest.raises(InvalidFilter, match="'result'"):
        plan_export(request)


def test_an_unquoted_value_gets_a_hint_to_quote_it() -> None:
    with pytest.raises(InvalidFilter, match="quote it: provider = 'openai'") as info:
        filters.validate(FilterSpec(where="provider = openai"), get_dataset("evaluation-results"))
    assert info.value.position == 12
