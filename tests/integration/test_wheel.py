"""The built wheel, installed without extras into a fresh virtual environment, as a user would:
`adaloss` imports every public name and runs the README's training loop without pulling in any of
the harness's packages, the install stays small, and `bench` says what it is missing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import adaloss

REPO = Path(__file__).resolve().parents[2]
HARNESS_MODULES = ("mlflow", "optuna", "pandas", "click", "matplotlib")
MAX_PACKAGES = 25
# what `python -m venv` puts in every environment; not installed by us
VENV_BOOTSTRAP = {"pip", "setuptools"}


def readme_loop() -> str:
    """The Python block of the README's "Adaloss in your own training loop" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Adaloss in your own training loop", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README lost its training-loop example"
    return match.group(1)


USER_SCRIPT = """
import json, sys
import adaloss, adaloss.metrics, adaloss.io
names = {name: callable(getattr(adaloss, name)) or name in ("io", "metrics")
         for name in adaloss.__all__}
exec(compile(LOOP, "README.md", "exec"))
print(json.dumps({
    "names": names,
    "version": adaloss.__version__,
    "harness": sorted(m for m in HARNESS if m in sys.modules),
    "sigma": schedule.sigma.tolist(),
}))
"""


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd
    )


@pytest.mark.slow
def test_the_wheel_alone_gives_a_working_light_library(tmp_path: Path) -> None:
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", tmp_path / "dist", REPO)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("adaloss-*.whl")
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    # the README's constraints pin torch to the CPU wheel (a local file here: seconds)
    installed = run(python, "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt", wheel)
    assert installed.returncode == 0, installed.stderr

    script = f"LOOP = {readme_loop()!r}\nHARNESS = {HARNESS_MODULES!r}\n{USER_SCRIPT}"
    used = run(python, "-c", script, cwd=tmp_path)  # not the checkout: the installed wheel
    assert used.returncode == 0, used.stderr
    report = json.loads(used.stdout.strip().splitlines()[-1])
    assert all(report["names"].values()), report["names"]
    assert set(report["names"]) == set(adaloss.__all__)
    assert report["version"] == adaloss.__version__
    assert report["harness"] == []
    assert len(report["sigma"]) == 2

    listed = run(python, "-m", "pip", "list", "--format=json")
    packages = {p["name"].lower() for p in json.loads(listed.stdout)} - VENV_BOOTSTRAP
    assert len(packages) <= MAX_PACKAGES, sorted(packages)
    assert not packages & {"mlflow", "optuna", "pandas", "click", "matplotlib", "tqdm"}

    bench = run(venv / "bin" / "bench", "run", "--grid", "cathdet", cwd=tmp_path)
    assert bench.returncode == 2
    (line,) = bench.stderr.strip().splitlines()
    assert line.startswith("Error: bench needs the harness's packages, missing: click, mlflow")
    assert "pip install 'adaloss[bench]'" in line
