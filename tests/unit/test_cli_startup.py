"""`bench --help` must stay fast: no heavy library may be imported to list the commands."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

HEAVY = ("torch", "mlflow", "optuna", "pandas", "matplotlib", "skimage", "scipy")

PROBE = """
import sys
from click.testing import CliRunner
from bench.cli import main
result = CliRunner().invoke(main, {args!r})
assert result.exit_code == 0, result.output
print(result.output)
print("HEAVY:", ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def run_probe(args: list[str]) -> tuple[str, list[str]]:
    code = PROBE.format(args=args, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    body, _, heavy = out.rpartition("HEAVY:")
    return body, [m for m in heavy.strip().split(",") if m]


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["data", "--help"], ["perf", "--help"]]
)
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    _, heavy = run_probe(args)
    assert heavy == []


def test_version_matches_the_installed_distribution() -> None:
    body, _ = run_probe(["--version"])
    assert body.strip() == f"bench, version {version('adaloss')}"


def test_help_lists_every_command() -> None:
    from bench.cli import COMMANDS

    body, _ = run_probe(["--help"])
    for name in COMMANDS:
        assert name in body
