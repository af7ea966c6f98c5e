"""bench.track.orphans: which RUNNING runs have lost their process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

from bench.track.orphans import (
    HEARTBEAT_TAG,
    OWNER_TAG,
    STALE_AFTER_S,
    is_orphan,
    process_start,
    this_owner,
)


def run(status: str = "RUNNING", start_ms: int = 0, **tags: str) -> SimpleNamespace:
    return SimpleNamespace(
        info=SimpleNamespace(status=status, start_time=start_ms), data=SimpleNamespace(tags=tags)
    )


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_of_this_live_process_is_not_an_orphan() -> None:
    assert not is_orphan(run(**{OWNER_TAG: this_owner()}))


def test_a_run_whose_process_exited_is_an_orphan() -> None:
    owner = f"{socket.gethostname()}:{dead_pid()}:123"
    assert is_orphan(run(**{OWNER_TAG: owner, HEARTBEAT_TAG: str(int(time.time() * 1000))}))


def test_a_reused_pid_is_not_taken_for_the_owner() -> None:
    # this process's pid, but another start time: the owner was an earlier process
    assert process_start(os.getpid()) != ""
    owner = f"{socket.gethostname()}:{os.getpid()}:1"
    assert is_orphan(run(**{OWNER_TAG: owner}))


def test_another_hosts_run_goes_by_its_heartbeat() -> None:
    now = time.time()
    owner = "elsewhere:1:1"
    fresh = str(int((now - 60) * 1000))
    stale = str(int((now - STALE_AFTER_S - 60) * 1000))
    assert not is_orphan(run(**{OWNER_TAG: owner, HEARTBEAT_TAG: fresh}), now)
    assert is_orphan(run(**{OWNER_TAG: owner, HEARTBEAT_TAG: stale}), now)
    # a run of an older version without tags: its start time is its last sign of life
    assert is_orphan(run(start_ms=int((now - STALE_AFTER_S - 1) * 1000)), now)


def test_only_running_runs_can_be_orphans() -> None:
    owner = f"{socket.gethostname()}:{dead_pid()}:1"
    for status in ("FINISHED", "FAILED", "KILLED"):
        assert not is_orphan(run(status, **{OWNER_TAG: owner}))
