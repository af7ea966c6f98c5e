"""How queue workers pace themselves and find a dead worker: the defaults that the queue, the
worker and `bench worker`'s options all read. Standard library only, so the command line reads
them without importing Optuna."""

from __future__ import annotations

from dataclasses import dataclass

HEARTBEAT_INTERVAL_S = 60
MAX_RETRY = 3
# seconds between looks at the queue while other workers still train cells
POLL_S = 5.0


@dataclass(frozen=True)
class Liveness:
    """How workers detect a dead worker.

    heartbeat_interval: seconds between heartbeats. grace_period: a RUNNING trial whose last
    heartbeat is older than this is failed and retried (None: Optuna's 2 x heartbeat_interval).
    max_retry: how many times one cell is retried after its worker died.
    """

    heartbeat_interval: int = HEARTBEAT_INTERVAL_S
    grace_period: int | None = None
    max_retry: int = MAX_RETRY

    @property
    def grace_s(self) -> int:
        return self.grace_period or 2 * self.heartbeat_interval
