"""`bench perf jobs`: the workload each process trains, the report's arithmetic, and a failing
timing process that ends the command instead of leaving the others waiting."""

from __future__ import annotations

import re
from dataclasses import replace

import click
import pytest
from click.testing import CliRunner

from bench.perf.jobs import Workload, _workload, jobs, throughput


def test_the_workload_is_the_tasks_quick_model_and_batch() -> None:
    # 68 iBUG landmarks on 64 px colour images, batch 16 (face300w's quick profile)
    assert _workload("face300w", "quick", 5) == Workload(
        task="face300w",
        profile="quick",
        batch_size=16,
        channels=3,
        landmarks=68,
        image_size=(64, 64),
        steps=5,
    )
    # one grey catheter tip on 32 px images, batch 8 (cathdet's smoke profile)
    smoke = _workload("cathdet", "smoke", 1)
    assert (smoke.channels, smoke.landmarks, smoke.image_size, smoke.batch_size) == (
        1,
        1,
        (32, 32),
        8,
    )


def test_the_report_states_the_ratio_of_the_two_rates_it_prints() -> None:
    result = CliRunner().invoke(
        jobs,
        [
            "--task",
            "cathdet",
            "--profile",
            "smoke",
            "--jobs",
            "2",
            "--steps",
            "2",
            "--repeats",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    rates = [float(rate) for rate in re.findall(r"([\d.]+) images/s", result.output)]
    assert len(rates) == 2 and all(rate > 0 for rate in rates)
    one, two = rates
    ratio = float(re.search(r"ratio ([\d.]+):", result.output).group(1))  # type: ignore[union-attr]
    # printed rates carry one decimal, so their quotient matches the ratio to about 0.1 %
    assert ratio == pytest.approx(two / one, rel=2e-3)
    assert f"faster here: --jobs {2 if ratio > 1 else 1}" in result.output


def test_a_failing_timing_process_ends_the_command() -> None:
    unknown_profile = replace(_workload("cathdet", "smoke", 1), profile="no-such-profile")
    with pytest.raises(click.ClickException, match="exited with code 1"):
        throughput(unknown_profile, processes=2, threads=1)
