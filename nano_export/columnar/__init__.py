"""Explore's in-memory columns: the non-text columns of every execution, never stale.

Explore's figures over a million executions take seconds in SQL, and every new filter is a new
scan. So each process keeps the columns Explore filters and aggregates on — id, provider, model,
test id and name (dictionary-coded), started_at, success, execution time and cost — as numpy
arrays (about 58 bytes a row with what is derived from them), and answers the overview, the
sample rows' ids, the row count and the filter choices from them with vectorised masks and
``bincount``.

Freshness: triggers replace the random tokens of the ``data_versions`` row in every transaction
that writes the executions or their metrics (migration 0009). Each use reads that row first (one
primary-key lookup) and compares it with the tokens the columns were loaded under:

- the same tokens: the columns are current;
- only ``appended`` differs: the rows after the highest id held are read and appended, then the
  row counts of both tables are checked against the database (a row committed out of id order,
  or a metrics row added to an older execution, fails the check and forces a full load);
- anything else (an update, a delete, a truncate, another database): a full load.

The tokens are read before the rows, so the columns are never older than the tokens they carry;
and they live in the database, so an import through any process or replica is seen by all. A
``where`` (free text or not) is not evaluated here: the caller falls back to SQL.
"""

from nano_export.columnar.answers import count, distinct, first_ids, overview, pairs, selection
from nano_export.columnar.store import Columns, Key, columns_for, data_version, forget, warm

__all__ = [
    "Columns",
    "Key",
    "columns_for",
    "count",
    "data_version",
    "distinct",
    "first_ids",
    "forget",
    "overview",
    "pairs",
    "selection",
    "warm",
]
