"""Run as a child process: one SELECT on a SQLite file through ADBC, as an Arrow IPC stream.

Usage: python -I sqlitechild.py  (the request as JSON on stdin; the stream on stdout)

The request: ``{"path": FILE, "sql": SQL, "params": [...], "batch_rows": N, "names": [...]}``.
A parameter ``{"hex": "…"}`` is a blob. The first row and the first column are dropped (the
witness row and the order key of ``sqlitearrow``); ``names`` names the columns that remain.

The ADBC SQLite driver links its own copy of SQLite. Two copies of SQLite in one process break
each other's locks: closing a file in one drops the POSIX locks the other holds on it, and a
writer elsewhere can then corrupt what the first believes it has locked (in a test, four exports
at once ended with "database disk image is malformed"). In a process of its own the driver is one
more reader of the file, as safe as any. Run as a script with ``-I``, it imports pyarrow and the
driver only, never the package or Python's ``sqlite3``.

Exit status: 0 done, 3 a value of another kind than its column's (the ``read_sql`` path reads
it), 1 any other error; the message is the last line on stderr.
"""

import json
import struct
import sys

#: Exit status when the driver meets a value of another kind than its column's.
TYPE_MISMATCH = 3


def _param(value: object) -> object:
    if isinstance(value, dict) and set(value) == {"hex"}:
        return bytes.fromhex(str(value["hex"]))
    return value


def _one(value: object):  # type: ignore[no-untyped-def]
    """A one-value Arrow array of ``value``, built from its bytes: ``pyarrow.array`` would import
    pandas (another half second) to check whether the value is a pandas object."""
    import pyarrow as pa

    if value is None:
        return pa.nulls(1)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return pa.Array.from_buffers(pa.int64(), 1, [None, pa.py_buffer(struct.pack("<q", value))])
    if isinstance(value, float):
        return pa.Array.from_buffers(
            pa.float64(), 1, [None, pa.py_buffer(struct.pack("<d", value))]
        )
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    kind = pa.binary() if isinstance(value, bytes) else pa.string()
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(raw)))
    return pa.Array.from_buffers(kind, 1, [None, offsets, pa.py_buffer(raw)])


def _rows(request: dict[str, object]):  # type: ignore[no-untyped-def]
    """The record batches of the request's statement, from the driver's low-level API (its DB-API
    module imports pandas through ``pyarrow.dataset``: half a second per export for nothing)."""
    import adbc_driver_manager as manager
    import adbc_driver_sqlite
    import pyarrow as pa

    params = [_param(v) for v in request["params"]]  # type: ignore[attr-defined]
    with (
        adbc_driver_sqlite.connect(str(request["path"])) as database,
        manager.AdbcConnection(database) as conn,
        manager.AdbcStatement(conn) as stmt,
    ):
        stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(request["batch_rows"])})
        stmt.set_sql_query(str(request["sql"]))
        if params:
            names = [str(i) for i in range(len(params))]
            stmt.bind(pa.RecordBatch.from_arrays([_one(v) for v in params], names=names))
        handle, _ = stmt.execute_query()
        with pa.RecordBatchReader._import_from_c(handle.address) as reader:
            yield from reader


def main() -> int:
    """Read the request on stdin, write the rows to stdout; the exit status says how it ended."""
    import pyarrow as pa

    request = json.load(sys.stdin)
    names = list(request["names"])
    writer = None
    try:
        witness_left = True
        for batch in _rows(request):
            if witness_left and batch.num_rows:
                batch, witness_left = batch.slice(1), False
            out = pa.RecordBatch.from_arrays(batch.columns[1:], names=names)
            if writer is None:
                writer = pa.ipc.new_stream(sys.stdout.buffer, out.schema)
            if out.num_rows:
                writer.write_batch(out)
        if writer is not None:
            writer.close()
        return 0
    except BrokenPipeError:  # the reader stopped early: nothing more to say
        return 0
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(message.removeprefix("[SQLite] "), file=sys.stderr)
        return TYPE_MISMATCH if "Type mismatch" in message else 1


if __name__ == "__main__":
    sys.exit(main())
