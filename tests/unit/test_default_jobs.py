"""`bench run`'s default number of cell processes (docs/RESULTS.md registered the CPU rule)."""

from __future__ import annotations

import pytest
import torch

from bench.run import runner


@pytest.mark.parametrize(
    ("device", "cores", "gpus", "expected"),
    [
        ("cpu", 1, 0, 1),
        ("cpu", 2, 0, 2),
        ("cpu", 16, 0, 2),  # two processes of 8 threads, not 16 of one
        ("cuda", 16, 1, 1),
        ("cuda", 16, 4, 4),  # one per GPU
        ("cuda:1", 16, 4, 1),  # a named GPU is one device
        ("mps", 8, 0, 1),
    ],
)
def test_default_jobs(
    monkeypatch: pytest.MonkeyPatch, device: str, cores: int, gpus: int, expected: int
) -> None:
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert runner.default_jobs(device) == expected
