"""Time ``privacy.apply_policy`` over a million realistic rows at each privacy level.

Run: ``.venv/bin/python bench/privacy_bench.py [--rows N] [--chunk N] [--db URL]``. Builds prompts
of ~200 characters and responses of 200-600 characters, 1% of them with a planted secret, and
applies the policy chunk by chunk as the exporter does. With ``--db``, the rows are the first N
executions of a nano-export database instead (``nano-export seed`` text: realistic prompts,
responses and errors). Prints wall and CPU seconds per level (CPU time is
the steadier figure on a shared machine) and how many responses were redacted.

Then the policy at ``standard`` over ``--kinds-mb`` MB of each kind of text an agent's output can
hold (prose, base64, hex, minified JSON, UUIDs, long mixed-case words), in MB/s: the screen and the
rules slow down by orders of magnitude on some kinds (long runs of mixed-case letters and digits).
``--kinds-mb 0`` skips it.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import time
import uuid
from collections.abc import Callable

import pandas as pd

from nano_export.models import PRIVACY_LEVELS
from nano_export.privacy import REDACTED, apply_policy

WORDS = tuple(
    " ".join(
        [
            "the agent read the file and summarised its content model latency cost tokens",
            "per second evaluation test passed failed response prompt tool call returned result",
            "capital of France Paris Washington write a function that sorts list numbers explain",
            "why output is correct risk-free task-force disk-usage token count 512 key points:",
            "see section 3 https://example.com",
        ]
    ).split(" ")
)

SECRETS = (
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f",
    "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa-xyzAA",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    "password=hunter2!",
    "postgresql://admin:s3cr3t@db.internal:5432/prod",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghij",
    "mail alice.smith@example.com about /home/alice/notes.txt",
    '{"dbPassword": "hunter2-Correct", "accessToken": "ya29.a0AfH6SMBx"}',
    "remote: gl" + "pat-AbCdEfGhIjKlMnOpQrSt",
)


def _text(rng: random.Random, length: int) -> str:
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def build(rows: int, seed: int = 7) -> pd.DataFrame:
    """``rows`` rows with prompt, response, error, user and session_id; 1% carry a secret."""
    rng = random.Random(seed)
    prompt_pool = [_text(rng, 200) for _ in range(4096)]
    response_pool = [_text(rng, rng.randint(200, 600)) for _ in range(4096)]
    prompts, responses = [], []
    for i in range(rows):
        prompts.append(f"run {i}: {prompt_pool[rng.randrange(4096)]}")
        response = response_pool[rng.randrange(4096)]
        if i % 100 == 0:
            response = f"{response[:100]} {SECRETS[(i // 100) % len(SECRETS)]} {response[100:]}"
        responses.append(f"{response} ({i})")
    return pd.DataFrame(
        {
            "execution_id": range(rows),
            "prompt": pd.Series(prompts, dtype="str"),
            "response": pd.Series(responses, dtype="str"),
            "error": pd.Series([None] * rows, dtype="str"),
            "user": pd.Series([f"user{i % 50}" for i in range(rows)], dtype="str"),
            "session_id": pd.Series([f"sess-{i // 10}" for i in range(rows)], dtype="str"),
        }
    )


def from_database(url: str, rows: int) -> pd.DataFrame:
    """The first ``rows`` executions' text and identity columns of the database at ``url``."""
    from sqlalchemy import create_engine

    query = (
        "SELECT id AS execution_id, prompt, response, error, user, session_id "
        f"FROM executions ORDER BY id LIMIT {int(rows)}"
    )
    with create_engine(url).connect() as conn:
        frame = pd.read_sql(query, conn)
    for name in ("prompt", "response", "error", "user", "session_id"):
        frame[name] = frame[name].astype("str")
    return frame


def main() -> None:
    """Build the rows, then time each level over chunks of ``--chunk`` rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--db", help="read the rows from this database URL instead")
    parser.add_argument("--kinds-mb", type=float, default=1.0, help="MB of each kind of text")
    args = parser.parse_args()
    started = time.perf_counter()
    frame = from_database(args.db, args.rows) if args.db else build(args.rows)
    chars = int(frame["prompt"].str.len().sum() + frame["response"].str.len().sum())
    built = time.perf_counter() - started
    print(f"built {args.rows:,} rows ({chars / 1e6:.0f} M chars) in {built:.1f} s")
    chunks = [frame.iloc[i : i + args.chunk] for i in range(0, args.rows, args.chunk)]
    for level in PRIVACY_LEVELS:
        started, cpu_started = time.perf_counter(), time.process_time()
        outputs = [apply_policy(chunk, level=level, secret="bench-secret") for chunk in chunks]
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        redacted = sum(
            int(out["response"].str.contains(REDACTED, regex=False).sum())
            for out in outputs
            if "response" in out.columns
        )
        print(
            f"{level:>8}: {elapsed:6.2f} s wall, {cpu:6.2f} s CPU for {args.rows:,} rows"
            f" ({redacted:,} responses redacted)"
        )
    if args.kinds_mb > 0:
        by_kind(args.kinds_mb)


def _kinds(rng: random.Random) -> dict[str, Callable[[], str]]:
    """Makers of one ~4 KB cell of each kind of text."""

    def blob() -> bytes:
        return rng.randbytes(3000)

    def an_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    def word() -> str:
        return "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(12, 40)))

    return {
        "prose": lambda: _text(rng, 4000),
        "base64": lambda: base64.b64encode(blob()).decode(),
        "hex": lambda: blob()[:2000].hex(),
        "minified JSON": lambda: json.dumps(
            [{"id": an_id(), "n": rng.random()} for _ in range(60)],
            separators=(",", ":"),
        ),
        "UUIDs": lambda: " ".join(an_id() for _ in range(110)),
        "mixed-case words": lambda: " ".join(word() for _ in range(150)),
    }


def by_kind(megabytes: float) -> None:
    """The standard policy's speed over each kind of text, in MB/s."""
    print(f"standard policy by kind of text (~{megabytes:g} MB each, cells of ~4 KB):")
    rng = random.Random(11)
    for name, make in _kinds(rng).items():
        cells = [make() for _ in range(max(1, int(megabytes * 1e6 / 4000)))]
        size = sum(len(c) for c in cells) / 1e6
        frame = pd.DataFrame({"prompt": cells, "response": cells})
        started = time.perf_counter()
        out = apply_policy(frame, level="standard", secret="bench-secret")
        elapsed = time.perf_counter() - started
        changed = int((out["response"] != frame["response"]).sum())
        print(
            f"{name:>18}: {2 * size / elapsed:8.1f} MB/s ({2 * size:.1f} MB in {elapsed:.2f} s,"
            f" {changed} of {len(cells)} cells changed)"
        )


if __name__ == "__main__":
    main()
