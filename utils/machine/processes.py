"""Stopping a child process together with everything it started (make -> pytest -> a notebook's kernel; a server)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen, grace: float = 10) -> int:
    """Stop a process started with ``start_new_session=True`` and its whole process group: SIGTERM, then SIGKILL
    after ``grace`` seconds. Returns its exit code (it may already have ended)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode
