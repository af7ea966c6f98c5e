"""`bench perf`: speed benchmarks, each a ratio against a baseline timed in the same run."""

from __future__ import annotations

import click

from bench.cli.lazy_group import LazyGroup

PERF_COMMANDS = {
    "targets": "bench.perf.targets:targets",
    "data": "bench.perf.data:data",
    "trainer": "bench.perf.trainer:trainer",
    "jobs": "bench.perf.jobs:jobs",
}


@click.group(cls=LazyGroup, lazy_commands=PERF_COMMANDS)
def perf() -> None:
    """Time the library and the harness against plain baselines (ratios, same run)."""
