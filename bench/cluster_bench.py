"""Dashboard replicas and export workers on one PostgreSQL database and one S3 store: timings.

Starts, all on loopback: a PostgreSQL database of its own (on the server named by --pg-url or
NANO_EXPORT_TEST_PG_URL), moto's S3 server, and for each worker count of --workers (default
"1,2") a cluster of two web-only ``streamlit run app.py`` replicas A and B plus that many
``nano-export worker`` processes (0: no worker process, each replica runs its embedded worker),
all keeping export files in a bucket of that server. Seeds N executions once, then per cluster:

1. a 10,000-row export (``execution_id <= 10000``) started on A: time from submit to the first
   progress seen on B;
2. a whole-dataset export started on A: time to done, and its download from B (bytes checked
   against the record's sha256);
3. ten whole-dataset exports at once (two per user, half started on A and half on B), each
   downloaded from the other replica and checked: row count and sha256 equal to its record.

    python bench/cluster_bench.py [--rows 300000] [--workers 1,2] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from api_server import USERS, Server
from cluster import cluster, own_database
from s3_server import new_bucket, running_s3_server

from nano_export.bootstrap import initialize
from nano_export.db import get_engine
from nano_export.seed import seed_database
from nano_export.settings import get_settings


def submit(server: Server, token: str, where: str | None = None) -> tuple[str, float]:
    """Start an export of the dataset (or of ``where``) on ``server``; its id and submit time."""
    body: dict[str, object] = {"dataset": "evaluation-results", "privacy": "public"}
    if where:
        body["filters"] = {"where": where}
    with server.client() as client:
        started = time.perf_counter()
        response = client.post(
            "/api/exports", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    response.raise_for_status()
    return response.json()["id"], started


def follow(server: Server, token: str, export_id: str, started: float) -> dict[str, object]:
    """Poll on ``server`` until the export ends; adds first-progress and done times."""
    first = None
    headers = {"Authorization": f"Bearer {token}"}
    with server.client() as client:
        while True:
            record = client.get(f"/api/exports/{export_id}", headers=headers).json()
            if first is None and (record["rows_done"] or 0) > 0:
                first = time.perf_counter() - started
            if record["status"] not in ("queued", "running"):
                record["first_progress_s"] = first
                record["done_s"] = time.perf_counter() - started
                return record
            time.sleep(0.05)


def download(server: Server, token: str, record: dict[str, object]) -> tuple[bool, float, int]:
    """Download from ``server``: (bytes and rows match the record, seconds, bytes)."""
    sha = hashlib.sha256()
    lines = size = 0
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    with (
        server.client() as client,
        client.stream("GET", f"/api/exports/{record['id']}/download", headers=headers) as resp,
    ):
        resp.raise_for_status()
        for block in resp.iter_bytes(1 << 20):
            sha.update(block)
            lines += block.count(b"\n")
            size += len(block)
    ok = sha.hexdigest() == record["sha256"] and size == record["bytes"]
    ok = ok and lines == int(str(record["rows_done"])) + 1
    return ok, time.perf_counter() - started, size


def run_cluster(work: Path, db_url: str, s3_env: dict[str, str], workers: int) -> bool:
    """One cluster with ``workers`` worker processes: the three measurements; True if all match."""
    label = f"{workers} worker process(es)" if workers else "embedded workers only"
    storage_url = f"s3://{new_bucket()}/exports"
    folder = work / f"workers-{workers}"
    with cluster(folder, db_url, storage_url, s3_env, workers=workers) as running:
        a, b = running.servers
        tokens = b.tokens  # tokens live in the shared database; B's start re-issued bob's
        token = tokens["ann"]

        export_id, started = submit(a, token, where="execution_id <= 10000")
        small = follow(b, token, export_id, started)
        print(
            f"[{label}] 10K-row export on A: first progress on B after "
            f"{small['first_progress_s']:.2f} s, done after {small['done_s']:.2f} s"
        )

        export_id, started = submit(a, token)
        record = follow(b, token, export_id, started)
        ok, took, size = download(b, token, record)
        print(
            f"[{label}] whole export on A: {record['rows_done']:,} rows, status "
            f"{record['status']}, done {record['done_s']:.1f} s; download from B "
            f"{size / 1e6:.1f} MB in {took:.1f} s, {'matches' if ok else 'DOES NOT MATCH'} sha256"
        )

        users = list(USERS)
        jobs = [(u, (a, b)[i % 2]) for i in range(2) for u in users]  # 2 × 5 users = 10
        t = time.perf_counter()
        with ThreadPoolExecutor(len(jobs)) as pool:
            started_jobs = list(pool.map(lambda j: (j, *submit(j[1], tokens[j[0]])), jobs))
            records = list(
                pool.map(lambda s: follow(s[0][1], tokens[s[0][0]], s[1], s[2]), started_jobs)
            )
        wall = time.perf_counter() - t
        checks = [
            download(b if server is a else a, tokens[user], rec)[0]
            for ((user, server), _, _), rec in zip(started_jobs, records, strict=True)
        ]
        statuses = sorted({str(r["status"]) for r in records})
        print(
            f"[{label}] ten exports at once over A and B: {wall:.1f} s wall, statuses "
            f"{statuses}, {sum(checks)}/{len(checks)} downloads from the other replica match "
            "their sha256 and row count",
            flush=True,
        )
        return ok and all(checks)


def main() -> None:
    """Seed once, run a cluster per worker count, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to try, e.g. 0,1,2")
    parser.add_argument("--pg-url", default=os.environ.get("NANO_EXPORT_TEST_PG_URL", ""))
    args = parser.parse_args()
    if not args.pg_url:
        sys.exit("give --pg-url or set NANO_EXPORT_TEST_PG_URL (a PostgreSQL server)")
    counts = [int(n) for n in args.workers.split(",")]
    all_ok = True
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        work = Path(tmp)
        with (
            running_s3_server(work / "moto.log") as s3_env,
            own_database(args.pg_url) as db_url,
        ):
            initialize(get_settings(database_url=db_url, data_dir=work / "init"))
            t = time.perf_counter()
            seed_database(get_engine(db_url), rows=args.rows, seed=3)
            print(f"seeded {args.rows:,} executions in {time.perf_counter() - t:.1f} s")
            for workers in counts:
                all_ok = run_cluster(work, db_url, s3_env, workers) and all_ok
    if not all_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
