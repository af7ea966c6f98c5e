"""The `bench` command line: the root group and its lazily imported subcommands."""

from __future__ import annotations

import click

from bench import __version__
from bench.lazy_group import LazyGroup

# name -> "module:click object". Each module imports only click at module level.
COMMANDS = {
    "data": "bench.data.cli:data",
    "perf": "bench.perf:perf",
    "report": "bench.commands:report",
    "run": "bench.commands:run",
    "tune": "bench.tune_command:tune",
    "worker": "bench.worker_command:worker",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(__version__, prog_name="bench")
def main() -> None:
    """Benchmark fixed-sigma heatmap targets against Adaloss on landmark tasks."""
