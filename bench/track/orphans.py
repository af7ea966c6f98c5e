"""Runs whose process is gone: told apart from live ones, and closed when their grid next runs.

A `bench run` (or `bench worker`) killed with SIGKILL, or on a machine that lost power, leaves its
MLflow runs RUNNING for ever. Every run this harness opens carries its owner (`OWNER_TAG`:
host, pid and the process's start time, so a reused pid is not mistaken for the owner) and a
heartbeat (`HEARTBEAT_TAG`, epoch milliseconds, renewed every epoch). A RUNNING run is an orphan
when its owner is on this host and no longer alive, or, for a run of another host (or one
without an owner tag), when its heartbeat is older than `STALE_AFTER_S`.

`close_orphans` marks orphans KILLED with outcome "interrupted"; `mark_superseded` then names the
run that takes over (the new parent run, or the new run of the same cell) in `SUPERSEDED_TAG`,
which `bench report` uses to leave them out.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

OWNER_TAG = "bench.owner"  # "<host>:<pid>:<process start time>"
HEARTBEAT_TAG = "bench.heartbeat"  # epoch ms of the owner's last sign of life
SUPERSEDED_TAG = "bench.superseded_by"  # the run that took over an interrupted one
STALE_AFTER_S = 3600.0


def process_start(pid: int) -> str:
    """The kernel's start time of process `pid` (clock ticks since boot), "" where /proc has no
    such process or does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces; the fields after its ")" are fixed
    return stat.rsplit(")", 1)[1].split()[19]


def this_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def owner_tags() -> dict[str, str]:
    """The tags a run opened by this process starts with."""
    return {OWNER_TAG: this_owner(), HEARTBEAT_TAG: str(int(time.time() * 1000))}


def owner_alive(owner: str) -> bool | None:
    """Whether the process named by an OWNER_TAG value still runs; None when it cannot be told
    from here (another host)."""
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return not started or process_start(pid) == started


def is_orphan(run: Any, now_s: float | None = None) -> bool:
    """A RUNNING run whose owner is gone (see the module docstring)."""
    if run.info.status != "RUNNING":
        return False
    tags = run.data.tags
    alive = owner_alive(tags.get(OWNER_TAG, ""))
    if alive is not None:
        return not alive
    beat_ms = float(tags.get(HEARTBEAT_TAG) or run.info.start_time or 0)
    return (now_s if now_s is not None else time.time()) - beat_ms / 1000 > STALE_AFTER_S


def close_orphans(client: Any, runs: Iterable[Any]) -> list[Any]:
    """Mark the orphans among `runs` KILLED with outcome "interrupted"; returns them."""
    closed = []
    for run in runs:
        if is_orphan(run):
            client.set_tag(run.info.run_id, "outcome", "interrupted")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run)
    return closed


def mark_superseded(client: Any, runs: Sequence[Any], by_run_id: str) -> None:
    for run in runs:
        client.set_tag(run.info.run_id, SUPERSEDED_TAG, by_run_id)
