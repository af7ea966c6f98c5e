"""The documentation site builds with no warning and documents every public name of `adaloss`
and every `bench` command, under the package's one version number (`tox -e docs`)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest

import adaloss
import adaloss.io
import adaloss.metrics
from bench.cli import main as bench_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    return out


def public_objects() -> list[str]:
    """Dotted paths of every public name: adaloss.__all__ and the functions of metrics and io."""
    paths = []
    for name in adaloss.__all__:
        value = getattr(adaloss, name)
        paths.append(value.__name__ if inspect.ismodule(value) else f"{value.__module__}.{name}")
    for module in (adaloss.metrics, adaloss.io):
        paths += [
            f"{module.__name__}.{name}"
            for name, value in vars(module).items()
            if inspect.isfunction(value)
            and value.__module__ == module.__name__
            and not name.startswith("_")
        ]
    return paths


def test_every_public_name_has_an_entry(site: Path) -> None:
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    missing = [path for path in public_objects() if f'id="{path}"' not in page]
    assert not missing


def test_every_command_is_documented(site: Path) -> None:
    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    context = click.Context(bench_cli)
    for name in bench_cli.list_commands(context):
        command = bench_cli.get_command(context, name)
        assert f"bench {name}" in page, name
        if isinstance(command, click.Group):
            for sub in command.list_commands(context):
                assert f"bench {name} {sub}" in page, f"{name} {sub}"


def test_one_version_everywhere(site: Path) -> None:
    number = version("adaloss")
    assert adaloss.__version__ == number
    shown = subprocess.run(
        [sys.executable, "-c", "from bench.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.stdout.strip() == f"bench, version {number}"
    assert f"adaloss {number}" in (site / "index.html").read_text(encoding="utf-8")
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{number}]" in changelog
