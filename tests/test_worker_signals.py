"""A worker stopped while it starts: SIGTERM before the queue's own handlers are in place."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from workers import ROOT

# SIGTERM lands while a class body is being created: an exception raised by the handler there
# reaches the interpreter wrapped ("Error calling __set_name__"), as it did while procrastinate
# was being imported, and the worker died with a traceback and status 1.
STOPPED_IN_SET_NAME = textwrap.dedent(
    """
    import os, signal, sys
    from nano_export import worker

    worker.stop_cleanly_on_sigterm()

    class Descriptor:
        def __set_name__(self, owner, name):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between two bytecodes of this loop
                pass

    class Job:
        call_string = Descriptor()

    print("not stopped", flush=True)
    sys.exit(3)
    """
)


def test_sigterm_while_a_class_is_created_still_stops_the_worker_cleanly() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STOPPED_IN_SET_NAME], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"not stopped" not in done.stdout
    assert b"Traceback" not in done.stderr


def test_sigterm_flushes_what_the_worker_printed_before_it_stops() -> None:
    script = (
        "import os, signal, sys\n"
        "from nano_export import worker\n"
        "worker.stop_cleanly_on_sigterm()\n"
        "sys.stderr.write('worker starting\\n')\n"
        "sys.stdout.write('pending line')\n"  # still in stdout's buffer (a pipe) at the signal
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "for _ in range(1000): pass\n"
        "sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout == b"pending line"
    assert done.stderr == b"worker starting\nworker stopped\n"
