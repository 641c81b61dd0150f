"""Run as a child process: one SELECT on a SQLite file through connectorx, as Arrow IPC on stdout.

Usage: python sqlite_reader.py DATABASE_FILE SQL

connectorx links its own copy of SQLite. Two copies of SQLite in one process break each other's
locks (closing a file in one drops the POSIX locks the other holds) and its WAL index: in a test
run, connectorx closing its connection while the dashboard committed ended the process with a bus
error. In a process of its own it is one more reader, as safe as any. Run as a script (not with
``-m``) and with ``-P`` (the folder is not put on the path: no module here shadows the standard
library), it imports connectorx and pyarrow only, not the package.
"""

import sys


def main(argv: list[str]) -> None:
    """Read ``argv[2]`` from the SQLite file ``argv[1]`` and write the table to stdout."""
    import connectorx as cx
    import pyarrow as pa

    table = cx.read_sql(f"sqlite://{argv[1]}", argv[2], return_type="arrow")
    with pa.ipc.new_stream(sys.stdout.buffer, table.schema) as writer:
        writer.write_table(table)


if __name__ == "__main__":
    main(sys.argv)
