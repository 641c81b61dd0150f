"""The ``where`` expression language: tokenizer, recursive-descent parser and syntax tree.

Grammar (keywords case-insensitive, column names exact, precedence ``not`` > ``and`` > ``or``)::

    expr       := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | condition
    condition  := NAME op operand                     -- op: = != <> < <= > >= ~ !~
                | NAME ["not"] "in" "(" literal ("," literal)* ")"
                | NAME "is" ["not"] "null"
                | NAME                                -- a boolean column on its own
    operand    := literal | NAME
    literal    := STRING | NUMBER | "true" | "false"

Strings use single or double quotes; a quote is doubled to escape it (``'it''s'``). Positions in
error messages count characters from 1. This module knows nothing of datasets or SQL: it turns text
into a tree, and ``filters.py`` checks names and types and compiles the tree to bound SQL.

Regular expressions (``~``, ``!~``) run as Python ``re.search`` on SQLite (SQLAlchemy's pysqlite
dialect installs a ``regexp`` function on every connection) and as POSIX ARE (``~``) on
PostgreSQL. The parser checks each pattern with ``re.compile`` and refuses constructs that fail or
mean something else on PostgreSQL: ``\\b``/``\\B`` (backspace and backslash there), named groups
``(?P<…>)``, atomic groups ``(?>…)``, possessive quantifiers ``*+``, scoped flags ``(?i:…)`` and
inline flags other than ``i``, ``m``, ``s``, ``x``. One difference remains: ``.`` matches a newline
on PostgreSQL but not in Python; start a pattern with ``(?s)`` to get the same result on both.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Literal as TypingLiteral

from nano_export.errors import InvalidFilter
from nano_export.regex import linear_error, repetition_error

CompareOp = TypingLiteral["=", "!=", "<", "<=", ">", ">=", "~", "!~"]
LiteralKind = TypingLiteral["string", "number", "bool"]
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_OPERATORS = ("<=", ">=", "!=", "<>", "!~", "=", "<", ">", "~")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_INT = 2**63 - 1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_LENGTH = 10_000
MAX_DEPTH = 64


@dataclass(frozen=True)
class Token:
    """One lexical token; ``pos`` is its 1-based character position in the text."""

    kind: str  # name, keyword, string, number, op, "(", ")", ",", end
    text: str
    pos: int
    value: str | float | int | None = None


# ---- syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    """A column reference as written."""

    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    """A string, number or boolean constant."""

    value: str | int | float | bool
    kind: LiteralKind
    pos: int


@dataclass(frozen=True)
class Compare:
    """``column op operand``; ``~`` and ``!~`` take a regular expression string."""

    column: Name
    op: CompareOp
    operand: Literal | Name
    pos: int


@dataclass(frozen=True)
class InList:
    """``column [not] in (v1, v2, …)``."""

    column: Name
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class IsNull:
    """``column is [not] null``."""

    column: Name
    negated: bool


@dataclass(frozen=True)
class BoolColumn:
    """A boolean column used as a condition on its own (``success``)."""

    column: Name


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True)
class And:
    """All of ``items``."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any of ``items``."""

    items: tuple[Node, ...]


Node = Compare | InList | IsNull | BoolColumn | Not | And | Or


# ---- tokenizer ---------------------------------------------------------------------------------


def _describe(tok: Token) -> str:
    if tok.kind == "end":
        return "the end of the expression"
    if tok.kind == "string":
        return f"the string {tok.text}"
    if tok.kind == "number":
        return f"the number {tok.text}"
    return f"{tok.text!r}"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token; InvalidFilter on bad characters."""
    if len(text) > MAX_LENGTH:
        raise InvalidFilter(
            f"expression is too long ({len(text)} characters; at most {MAX_LENGTH})"
        )
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        pos = i + 1
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token(ch, ch, pos))
            i += 1
        elif ch in "'\"":
            value, i = _read_string(text, i)
            tokens.append(Token("string", text[pos - 1 : i], pos, value))
        elif num := _NUMBER.match(text, i):
            raw = num.group()
            if _NAME.match(text, num.end()):
                raise InvalidFilter(
                    f"invalid number {raw!r} followed by {text[num.end()]!r}", num.end() + 1
                )
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            if abs(number) > _MAX_INT:
                raise InvalidFilter(f"number {raw} is too large", pos)
            tokens.append(Token("number", raw, pos, number))
            i = num.end()
        elif name := _NAME.match(text, i):
            word = name.group()
            kind = "keyword" if word.lower() in KEYWORDS else "name"
            tokens.append(Token(kind, word.lower() if kind == "keyword" else word, pos))
            i = name.end()
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise InvalidFilter(f"unexpected character {ch!r}", pos)
            tokens.append(Token("op", "!=" if op == "<>" else op, pos))
            i += len(op)
    tokens.append(Token("end", "", n + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == quote:
            if text.startswith(quote, i + 1):  # doubled quote: one literal quote
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise InvalidFilter(f"unterminated string: the {quote} opened here is never closed", start + 1)


# ---- parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter(
                f"expression nests too deeply (more than {MAX_DEPTH} levels of 'not' or '(')",
                self.tok.pos,
            )

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_keyword(self, word: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.text == word

    def expect_keyword(self, word: str, after: Token) -> None:
        if not self.is_keyword(word):
            raise InvalidFilter(
                f"expected '{word}' after {after.text!r}, found {_describe(self.tok)}",
                self.tok.pos,
            )
        self.advance()

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise InvalidFilter(
                "empty expression: expected a condition such as provider = 'openai'"
            )
        node = self.or_expr()
        if self.tok.kind != "end":
            raise InvalidFilter(
                f"unexpected {_describe(self.tok)}; expected 'and', 'or' or the end", self.tok.pos
            )
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.is_keyword("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.is_keyword("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.is_keyword("not"):
            self.nest()
            self.advance()
            node: Node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.nest()
            self.advance()
            node = self.or_expr()
            if self.tok.kind != ")":
                raise InvalidFilter(
                    f"expected ')' to close '(' at position {tok.pos}, found {_describe(self.tok)}",
                    self.tok.pos,
                )
            self.advance()
            self.depth -= 1
            return node
        if tok.kind != "name":
            raise InvalidFilter(f"expected a column name, found {_describe(tok)}", tok.pos)
        return self.condition(Name(self.advance().text, tok.pos))

    def condition(self, column: Name) -> Node:
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            operand = self.operand(tok)
            if tok.text in ("~", "!~") and isinstance(operand, Literal):
                if operand.kind != "string":
                    raise InvalidFilter(
                        f"'{tok.text}' needs a regular expression in quotes, "
                        f"found {show_literal(operand)}",
                        operand.pos,
                    )
                check_regex(str(operand.value), operand.pos)
            return Compare(column, tok.text, operand, tok.pos)  # type: ignore[arg-type]
        if self.is_keyword("in"):
            self.advance()
            return InList(column, self.in_list(tok), negated=False)
        if self.is_keyword("not") and self.tokens[self.i + 1].text == "in":
            self.advance()
            in_tok = self.advance()
            return InList(column, self.in_list(in_tok), negated=True)
        if self.is_keyword("is"):
            self.advance()
            negated = self.is_keyword("not")
            if negated:
                self.advance()
            self.expect_keyword("null", tok)
            return IsNull(column, negated)
        return BoolColumn(column)

    def operand(self, op: Token) -> Literal | Name:
        tok = self.tok
        if tok.kind == "name":
            self.advance()
            return Name(tok.text, tok.pos)
        literal = self.literal()
        if literal is None:
            hint = "; write 'is null' or 'is not null'" if tok.text == "null" else ""
            raise InvalidFilter(
                f"expected a value after {op.text!r}, found {_describe(tok)}{hint}", tok.pos
            )
        return literal

    def literal(self) -> Literal | None:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            return Literal(str(tok.value), "string", tok.pos)
        if tok.kind == "number":
            self.advance()
            assert isinstance(tok.value, int | float)
            return Literal(tok.value, "number", tok.pos)
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            self.advance()
            return Literal(tok.text == "true", "bool", tok.pos)
        return None

    def in_list(self, in_tok: Token) -> tuple[Literal, ...]:
        if self.tok.kind != "(":
            raise InvalidFilter(
                f"expected '(' after 'in', found {_describe(self.tok)}", self.tok.pos
            )
        self.advance()
        values: list[Literal] = []
        while True:
            literal = self.literal()
            if literal is None:
                raise InvalidFilter(
                    f"expected a value in the list after 'in' at position {in_tok.pos}, "
                    f"found {_describe(self.tok)}",
                    self.tok.pos,
                )
            values.append(literal)
            if self.tok.kind == ",":
                self.advance()
                continue
            if self.tok.kind == ")":
                self.advance()
                return tuple(values)
            raise InvalidFilter(
                f"expected ',' or ')' in the list after 'in', found {_describe(self.tok)}",
                self.tok.pos,
            )


def check_regex(pattern: str, pos: int | None = None) -> None:
    """Refuse a pattern Python cannot compile or PostgreSQL would read differently."""
    try:
        with warnings.catch_warnings():
            # "Possible nested set" for POSIX classes ([[:digit:]]), which RE2 and PostgreSQL
            # both read as classes: Python's re only checks the syntax here.
            warnings.simplefilter("ignore", FutureWarning)
            re.compile(pattern)
    except re.error as exc:
        raise InvalidFilter(f"invalid regular expression {pattern!r}: {exc.msg}", pos) from None
    problem = _unportable(pattern)
    if problem:
        raise InvalidFilter(
            f"regular expression {pattern!r} uses {problem}, which PostgreSQL does not "
            "read the same way; rewrite it without",
            pos,
        )
    too_many = repetition_error(pattern)
    if too_many:
        raise InvalidFilter(f"regular expression {pattern!r} is too costly: {too_many}", pos)
    linear = linear_error(pattern)
    if linear:
        raise InvalidFilter(
            f"regular expression {pattern!r} is not supported ({linear}); back-references "
            "and look-around are not available",
            pos,
        )


def _unportable(pattern: str) -> str | None:
    """The first construct of ``pattern`` that differs between Python ``re`` and PostgreSQL."""
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if pattern[i + 1 : i + 2] in ("b", "B"):
                return f"\\{pattern[i + 1]} (a word boundary in Python)"
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            i += 1 + (pattern[i + 1 : i + 2] == "^")
            i += pattern[i : i + 1] == "]"  # a leading ] is a literal
            continue
        elif pattern.startswith("(?", i):
            rest = pattern[i + 2 :]
            if rest.startswith(("P", ">")):
                return "a named or atomic group"
            flags = re.match(r"[a-zA-Z]+([):])", rest)
            if flags and (flags.group(1) == ":" or set(flags.group()[:-1]) - set("imsx")):
                return f"the inline flags (?{flags.group()}"
        elif ch in "*+?}" and pattern[i + 1 : i + 2] == "+":
            return "a possessive quantifier"
        elif ch == "{" and pattern[i + 1 : i + 2] == ",":
            return "a {,n} quantifier (write {0,n})"
        i += 1
    return None


def show_literal(value: Literal) -> str:
    """A literal as the user would write it."""
    return repr(value.value) if value.kind == "string" else str(value.value).lower()


def parse_where(text: str) -> Node:
    """Parse a ``where`` expression into a syntax tree; InvalidFilter says what and where."""
    return _Parser(tokenize(text)).parse()
