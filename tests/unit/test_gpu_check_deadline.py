"""tools/gpu_check.py with no time left: every step is skipped, and the record still says so."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_spent_deadline_skips_every_step_and_writes_both_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = tool
    spec.loader.exec_module(tool)
    out = tmp_path / "gpu"
    code = tool.main(
        ["--device", "cpu", "--deadline", "1", "--tasks", "endovis", "--out", str(out)]
    )
    assert code == 0  # nothing failed: skipped steps are reported, not failures
    record = json.loads((out / "gpu_check.json").read_text())
    assert len(record["steps"]) == 1 + 1 + 4 + 2  # smoke, resume, 2 x 2 trainer, 2 jobs
    assert {step["status"] for step in record["steps"]} == {"skipped (deadline)"}
    assert record["elapsed_s"] < 5
    assert "| smoke endovis | skipped (deadline) |" in (out / "gpu_check.md").read_text()
