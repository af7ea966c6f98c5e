"""tools/gpu_check.py against the CPU with a small budget: the steps run or stop at the deadline,
and the JSON and the table are written (issue #37: a GPU's minutes go to measuring, not
debugging)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {"ok", "skipped (deadline)", "timed out"}


def test_the_check_runs_against_the_cpu_within_its_deadline(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--device", "cpu",
            "--deadline", "120", "--profile", "smoke", "--tasks", "cathdet", "--images", "16",
            "--out", str(out),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "gpu_check.json").read_text())
    names = [step["name"] for step in record["steps"]]
    assert names == [
        "smoke cathdet",
        "resume cathdet",
        "trainer cathdet bf16 channels-last",
        "trainer cathdet bf16 no-channels-last",
        "trainer cathdet no-bf16 channels-last",
        "trainer cathdet no-bf16 no-channels-last",
        "jobs cathdet x2",
        "jobs cathdet x4",
    ]
    assert {step["status"] for step in record["steps"]} <= STATUSES
    assert record["steps"][0]["status"] == "ok"  # the smoke grid fits in 120 s on its own
    # the steps stop at the deadline: the last one is stopped, not waited for
    assert record["elapsed_s"] <= 120 + 15
    assert record["environment"]["device"] == "cpu"
    assert record["environment"]["torch"]
    for step in record["steps"]:
        if step["status"] == "ok" and step["name"].startswith("trainer"):
            assert 0 < step["result"]["peak_fraction"] <= 1
            assert step["result"]["images"] == 16
        if step["status"] == "ok" and step["name"].startswith("resume"):
            # deterministic CPU kernels: a resumed cell ends where an uninterrupted one does
            assert step["result"]["difference"] == 0
    table = (out / "gpu_check.md").read_text()
    assert table.count("\n| ") == 1 + len(names)  # the header and one row per step
    assert table in done.stdout
