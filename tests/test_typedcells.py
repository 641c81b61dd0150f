"""Arrow values built from their buffers (``typedcells``): the same arrays ``pa.array`` builds,
without the pandas import that ``pa.array`` and ``to_numpy`` make."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nano_export.typedcells import (
    FALSE,
    TEXT,
    arrow_bools,
    arrow_ints,
    arrow_number,
    arrow_text,
    arrow_texts,
    numpy_bools,
    numpy_floats,
)


@settings(deadline=None)  # the first pa.array call imports pandas
@given(st.lists(st.none() | st.text(), max_size=40))
@pytest.mark.parametrize("kind", [TEXT, pa.string()])
def test_arrow_texts_equal_what_pa_array_builds(
    kind: pa.DataType, values: list[str | None]
) -> None:
    built = arrow_texts(values, kind)
    built.validate(full=True)
    assert built.equals(pa.array(values, kind))
    assert built.null_count == sum(v is None for v in values)


@settings(deadline=None)
@given(st.lists(st.none() | st.booleans(), max_size=40), st.integers(0, 8), st.integers(0, 40))
def test_numpy_bools_reads_bits_at_any_offset_with_null_as_false(
    values: list[bool | None], start: int, length: int
) -> None:
    arr = pa.array(values, pa.bool_()).slice(start, length)
    expected = [bool(v) for v in arr.to_pylist()]  # None → False
    assert numpy_bools(arr).tolist() == expected


def test_bools_ints_and_scalars_round_trip() -> None:
    mask = np.array([True, False, True] * 7)
    assert arrow_bools(mask).to_pylist() == mask.tolist()
    assert arrow_ints(np.array([3, -1, 2**40])).to_pylist() == [3, -1, 2**40]
    assert arrow_number(256).type == pa.int64() and arrow_number(256).as_py() == 256
    assert arrow_number(0.5).type == pa.float64() and arrow_number(0.5).as_py() == 0.5
    assert arrow_text("Z").type == TEXT and arrow_text("Z").as_py() == "Z"
    assert FALSE.as_py() is False


def test_numpy_floats_read_any_offset_with_null_as_nan() -> None:
    arr = pa.array([1, None, 3, 4], pa.int64()).slice(1, 3)
    got = numpy_floats(arr)
    assert np.isnan(got[0]) and got[1:].tolist() == [3.0, 4.0]
    assert numpy_floats(pa.array([], pa.int32())).tolist() == []


def test_the_builders_refuse_types_they_do_not_build() -> None:
    with pytest.raises(TypeError, match="string or large_string"):
        arrow_texts(["a"], pa.binary())
    with pytest.raises(TypeError, match="bool arrays"):
        numpy_bools(pa.array([1, 2]))


def test_building_values_does_not_import_pandas() -> None:
    code = (
        "import sys, numpy as np\n"
        "from nano_export import typedcells as t\n"
        "t.arrow_texts(['a', None]); t.arrow_bools(np.array([True]))\n"
        "t.numpy_bools(t.arrow_bools(np.array([True, False])))\n"
        "t.arrow_text('x'); t.arrow_number(1); t.arrow_number(0.5)\n"
        "t.numpy_floats(t.arrow_ints(np.array([1, 2])))\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
