#!/usr/bin/env python3
"""The GPU check: one command that proves the CUDA path end to end and times it, by a deadline.

    pip install -e ".[bench]" && tools/gpu_check.py       # on a CUDA machine (docs/scale-out.md)
    tools/gpu_check.py --device cpu --deadline 120 --profile smoke --out /tmp/gpu    # its logic

Steps, most important first, each a `bench` command in a subprocess that may take at most the
time left before the deadline (a step that would start with less than MIN_STEP_S left is
skipped, one that runs past it is stopped and marked "timed out"):

1. `smoke`: each task's shipped grid at the smoke profile through `bench run` into a temporary
   store (exit 0 means every cell FINISHED), then `bench report` on it;
2. `resume`: a 7-epoch CathDet cell killed (SIGKILL) once its epoch-5 checkpoint exists, then run
   again, against the same cell uninterrupted: its test distance, equal or how far apart (CUDA
   kernels are not all deterministic, the CPU's are);
3. `trainer`: one epoch of each task at `--profile` (default paper) through `bench perf trainer`
   on random images of the profile's shape (no data generation), bf16 autocast on and off,
   channels_last on and off: images/s of the trainer and of a bare loop, their ratio, the
   achieved FLOP rate and its fraction of a dense matmul's peak;
4. `jobs`: 2 and 4 processes side by side on the device against one (`bench perf jobs`), and
   what `bench run --jobs` picks there.

Writes `gpu_check.json` (every figure) and `gpu_check.md` (one table) under `--out` (default
docs/results/gpu/) and prints the table. Exit 0 when no step failed (skipped and timed-out
steps are reported, not failures), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TASKS = ("cathdet", "face300w", "endovis")
# `python -m bench` with this interpreter: no console script needed (a checkout on PYTHONPATH)
BENCH = (sys.executable, "-m", "bench")
MIN_STEP_S = 5.0
RESUME_GRID = """\
task: cathdet
lrs: [1.0e-3]
methods:
  sigma40: {schedule: fixed, sigma: 40}
profiles:
  smoke: {epochs: 7}
"""


class Clock:
    """Seconds left before the deadline."""

    def __init__(self, deadline_s: float) -> None:
        self.start = time.monotonic()
        self.deadline_s = deadline_s

    def left(self) -> float:
        return self.deadline_s - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class OutOfTime(Exception):
    """The deadline came before or during a step."""


def bench(args: Sequence[str], clock: Clock, env: dict[str, str]) -> str:
    """Run `bench ARGS` within the time left; its stdout. Raises OutOfTime, or RuntimeError with
    the last line of its output when it exits non-zero."""
    left = clock.left()
    if left < MIN_STEP_S:
        raise OutOfTime
    try:
        done = subprocess.run(
            [*BENCH, *args], capture_output=True, text=True, timeout=left, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise OutOfTime from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"bench {' '.join(args[:3])}: exit {done.returncode}: {last}")
    return done.stdout


def last_json(output: str) -> dict[str, Any]:
    """The JSON object a `bench perf ... --json` command printed last."""
    return dict(json.loads(output.strip().splitlines()[-1]))


def environment(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_cores": len(os.sched_getaffinity(0)),
    }
    if device == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            info["driver"] = driver.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            info["driver"] = "unknown (nvidia-smi did not answer)"
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def smoke(task: str, work: Path, device: str, clock: Clock, env: dict[str, str]) -> dict[str, Any]:
    uri = f"sqlite:///{work / 'smoke' / 'mlflow.db'}"
    (work / "smoke").mkdir(parents=True, exist_ok=True)
    common = ["--grid", task, "--profile", "smoke", "--tracking-uri", uri]
    started = time.monotonic()
    bench(["run", *common, "--device", device], clock, env)
    trained = time.monotonic() - started
    bench(["report", *common, "--out", str(work / "reports" / task), "--no-overlays"], clock, env)
    return {"run_s": trained, "report_s": time.monotonic() - started - trained}


def resume(work: Path, device: str, clock: Clock, env: dict[str, str]) -> dict[str, Any]:
    grid = work / "resume.yaml"
    grid.write_text(RESUME_GRID, encoding="utf-8")
    straight, killed = work / "straight", work / "killed"
    for folder in (straight, killed):
        folder.mkdir(parents=True, exist_ok=True)
    args = ["run", "--grid", str(grid), "--profile", "smoke", "--device", device, "--jobs", "1"]
    bench([*args, "--tracking-uri", f"sqlite:///{straight / 'mlflow.db'}"], clock, env)
    process = subprocess.Popen(
        [*BENCH, *args, "--tracking-uri", f"sqlite:///{killed / 'mlflow.db'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group: the kill reaches its cell processes
    )
    try:
        while not list(killed.glob("checkpoints/*/*-epoch0005.pt")):
            if process.poll() is not None:
                raise RuntimeError("the cell ended before its epoch-5 checkpoint was seen")
            if clock.left() < MIN_STEP_S:
                raise OutOfTime
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    bench([*args, "--tracking-uri", f"sqlite:///{killed / 'mlflow.db'}"], clock, env)
    a, b = test_distance(straight), test_distance(killed)
    return {"straight_test_distance": a, "resumed_test_distance": b, "difference": b - a}


def test_distance(folder: Path) -> float:
    """The test distance of the one FINISHED cell run in the store under `folder`."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("resume")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`bench.role` = 'cell' and attributes.status = 'FINISHED'",
    )
    (run,) = runs
    return float(run.data.metrics["test_distance"])


def timed_steps(args: argparse.Namespace, work: Path, clock: Clock) -> list[dict[str, Any]]:
    """Every step, in order, each {name, status, seconds, result or error}."""
    env = {**os.environ, "ADALOSS_DATA_ROOT": str(work / "data"), "MPLBACKEND": "Agg"}
    plan: list[tuple[str, Any]] = [
        (f"smoke {task}", lambda t=task: smoke(t, work, args.device, clock, env))
        for task in args.tasks
    ]
    plan.append(("resume cathdet", lambda: resume(work, args.device, clock, env)))
    for task in args.tasks:
        for bf16 in ("--bf16", "--no-bf16"):
            for layout in ("--channels-last", "--no-channels-last"):
                command = [
                    "perf", "trainer", "--task", task, "--profile", args.profile,
                    "--device", args.device, "--repeats", "1", "--images", str(args.images),
                    bf16, layout, "--json",
                ]  # fmt: skip
                plan.append(
                    (
                        f"trainer {task} {bf16[2:]} {layout[2:]}",
                        lambda c=command: last_json(bench(c, clock, env)),
                    )
                )
    for processes in (2, 4):
        command = [
            "perf", "jobs", "--task", args.tasks[0], "--profile", args.profile,
            "--device", args.device, "--jobs", str(processes), "--steps", "10",
            "--repeats", "1", "--json",
        ]  # fmt: skip
        plan.append(
            (
                f"jobs {args.tasks[0]} x{processes}",
                lambda c=command: last_json(bench(c, clock, env)),
            )
        )
    steps = []
    for name, run in plan:
        started = time.monotonic()
        step: dict[str, Any] = {"name": name}
        try:
            step["result"] = run()
            step["status"] = "ok"
        except OutOfTime:
            step["status"] = "skipped (deadline)" if time.monotonic() - started < 1 else "timed out"
        except (RuntimeError, ValueError, AssertionError) as error:
            step["status"] = "failed"
            step["error"] = str(error)
        step["seconds"] = time.monotonic() - started
        print(f"{clock.elapsed():6.1f} s  {name}: {step['status']}", file=sys.stderr, flush=True)
        steps.append(step)
    return steps


def figure(step: dict[str, Any]) -> str:
    """The step's headline figure, in words."""
    result = step.get("result")
    if result is None:
        return step.get("error", "")
    name = step["name"]
    if name.startswith("smoke"):
        return (
            f"every cell finished; bench run {result['run_s']:.0f} s, "
            f"report {result['report_s']:.0f} s"
        )
    if name.startswith("resume"):
        return (
            f"test distance {result['resumed_test_distance']:.4f} resumed against "
            f"{result['straight_test_distance']:.4f} uninterrupted ({result['difference']:+.2g})"
        )
    if name.startswith("trainer"):
        return (
            f"{result['trainer_images_per_s']:.0f} images/s (bare "
            f"{result['bare_images_per_s']:.0f}, ratio {result['ratio']:.2f}); "
            f"{result['trainer_gflop_per_s']:.0f} GFLOP/s, "
            f"{100 * result['peak_fraction']:.1f} % of a {result['peak_dtype']} matmul's "
            f"{result['peak_gflop_per_s']:.0f}"
        )
    return (
        f"{result['processes']} side by side: {result['several_images_per_s']:.0f} images/s "
        f"against {result['one_images_per_s']:.0f} alone ({result['ratio']:.2f}x); "
        f"bench run picks --jobs {result['bench_run_default_jobs']}"
    )


def markdown(record: dict[str, Any]) -> str:
    env = record["environment"]
    lines = [
        f"# GPU check: {env['device_name']} ({env['device']})",
        "",
        f"torch {env['torch']}, CUDA {env['cuda']}, driver {env.get('driver', '-')}, "
        f"Python {env['python']}, {env['cpu_cores']} CPU cores; profile {record['profile']}, "
        f"deadline {record['deadline_s']:.0f} s, took {record['elapsed_s']:.0f} s.",
        "",
        "| step | status | seconds | figure |",
        "|---|---|---|---|",
    ]
    for step in record["steps"]:
        lines.append(
            f"| {step['name']} | {step['status']} | {step['seconds']:.1f} | {figure(step)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--deadline", type=float, default=450.0, help="seconds for everything")
    parser.add_argument("--profile", default="paper", help="profile of the timing steps")
    parser.add_argument("--images", type=int, default=512, help="random images a timed epoch")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--out", type=Path, default=Path("docs/results/gpu"))
    args = parser.parse_args(argv)
    clock = Clock(args.deadline)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        steps = timed_steps(args, Path(folder), clock)
    record = {
        "environment": environment(args.device),
        "profile": args.profile,
        "deadline_s": args.deadline,
        "elapsed_s": clock.elapsed(),
        "steps": steps,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    table = markdown(record)
    (args.out / "gpu_check.md").write_text(table, encoding="utf-8")
    print(table)
    return 1 if any(step["status"] == "failed" for step in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
