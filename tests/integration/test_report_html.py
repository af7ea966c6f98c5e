"""report.html opens offline in headless Chromium with every table and figure present (#36):
`bench report` on a small grid, then Chromium with every host unresolvable reads the page from a
file:// URL; its DOM (after the page's script ran) must hold every table's rows, every image
decoded, the verdict and the cells' links into the MLflow UI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

pytestmark = pytest.mark.slow

GRID = """\
task: cathdet
lrs: [1.0e-3]
seeds: 2
methods:
  sigma40: {schedule: fixed, sigma: 40}
  adaloss: {schedule: adaloss, max_step: 4}
"""
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND",)  # no host resolves: no network at all
CHROMIUM = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", *OFFLINE)


def test_the_report_page_opens_offline_with_every_table_and_figure(
    tmp_path: Path, tracking_uri: str, chromium: str
) -> None:
    grid = tmp_path / "page.yaml"
    grid.write_text(GRID)
    common = ["--grid", str(grid), "--tracking-uri", tracking_uri]
    trained = CliRunner().invoke(main, ["run", *common, "--profile", "smoke", "--device", "cpu"])
    assert trained.exit_code == 0, trained.stderr
    out = tmp_path / "report"
    reported = CliRunner().invoke(
        main, ["report", *common, "--out", str(out), "--mlflow-url", "http://127.0.0.1:5000"]
    )
    assert reported.exit_code == 0, reported.stderr
    page = out / "report.html"
    text = page.read_text()
    assert not re.search(r'(src|href)="(?!data:|http://127\.0\.0\.1:5000/#/)', text)

    profile, shot = tmp_path / "chromium-profile", tmp_path / "report.png"
    flags = [*CHROMIUM, f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    ).stdout  # fmt: skip
    subprocess.run(
        [chromium, *flags, "--window-size=1200,4000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert shot.stat().st_size > 0

    images = re.search(r'<body data-images="(\d+)" data-loaded="(\d+)"', dom)
    assert images is not None, dom[:500]
    assert int(images.group(1)) >= 4  # validation, sigma, and an overlay per cell at least
    assert images.group(1) == images.group(2)  # every figure decoded
    tables = re.findall(r"<table>.*?</table>", dom, re.S)
    assert len(tables) >= 4
    assert all("<tbody><tr>" in table for table in tables)  # every table has rows
    assert "<h2>Verdict</h2>" in dom and "<b>adaloss</b> against <b>sigma40</b>" in dom
    assert dom.count('href="http://127.0.0.1:5000/#/experiments/') == 4  # one link per cell
    assert dom.index("<h2>Verdict</h2>") < dom.index("<table>")  # the verdict comes first
