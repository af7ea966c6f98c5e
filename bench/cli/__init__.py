"""The `bench` command line: the root group and its lazily imported subcommands.

Every error reaches the user as one line on stderr with the exit code of `bench.cli.options`:
click's own usage errors (an unknown option, a value out of range) included, which click would
otherwise print with the usage text around them.

Each command module (`<group>_command.py`) imports only click, the standard library,
`bench.cli.options` and bench's standard-library-only tables (`bench.profiles`, `bench.tasks`,
`bench.scale.timing`) at module level, and torch, mlflow, optuna or pandas inside its command's
body: `bench --help` lists every command without importing them.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from bench import __version__
from bench.cli.lazy_group import LazyGroup
from bench.cli.options import EXIT_CODES_HELP, EXIT_INTERRUPTED

# name -> "module:click object", imported when the command is listed or run
COMMANDS = {
    "data": "bench.cli.data_command:data",
    "perf": "bench.cli.perf_command:perf",
    "report": "bench.cli.report_command:report",
    "runs": "bench.cli.runs_command:runs",
    "run": "bench.cli.run_command:run",
    "tune": "bench.cli.tune_command:tune",
    "worker": "bench.cli.worker_command:worker",
}


class BenchGroup(LazyGroup):
    """The root group: runs a command and turns every error into one line and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.ClickException as error:  # usage errors included: their exit code is 2
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=BenchGroup, lazy_commands=COMMANDS, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="bench")
def main() -> None:
    """Benchmark fixed-sigma heatmap targets against Adaloss on landmark tasks."""
