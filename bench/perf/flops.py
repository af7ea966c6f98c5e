"""How close to the machine's limit: a model's training FLOPs and the device's measured peak.

`training_flops` counts the floating-point operations of one forward and backward pass of a
batch with torch's FLOP counter (`torch.utils.flop_counter.FlopCounterMode`, which counts the
matrix multiplications and convolutions, the work that bounds a U-Net); times images per second
it is the achieved rate. `matmul_peak` times a large dense matrix multiplication on the same
device and dtype in the same run: the rate the hardware reaches on the friendliest kernel, so
that "fast" is a fraction of what it can do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

PEAK_SIZE = {"cpu": 2048, "cuda": 8192}  # n of the n x n matmul: large enough to be compute-bound
PEAK_REPEATS = {"cpu": 3, "cuda": 20}


def training_flops(
    model: nn.Module, batch: torch.Tensor, targets: torch.Tensor, *, bf16: bool = False
) -> float:
    """FLOPs per image of one training step (forward, MSE loss, backward) of `model` on
    `batch` (B, C, H, W) against `targets` (B, K, H, W), as the trainer runs it."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
            output = model(batch)
        loss = nn.functional.mse_loss(output.float(), targets)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops()) / len(batch)


@dataclass(frozen=True)
class Peak:
    """The best rate of an n x n by n x n matmul (2 n^3 FLOPs) over a few repeats."""

    flops_per_s: float
    size: int
    dtype: torch.dtype


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32) -> Peak:
    """Time a dense n x n matmul on `device` in `dtype` (n from PEAK_SIZE) and keep the best
    repeat; one untimed call first, and on CUDA a synchronisation around each."""
    size = PEAK_SIZE.get(device.type, 2048)
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.rand(size, size, generator=generator).to(device, dtype)
    b = torch.rand(size, size, generator=generator).to(device, dtype)
    best = float("inf")
    for repeat in range(PEAK_REPEATS.get(device.type, 3) + 1):
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        if repeat:  # the first call pays for kernel selection and warm-up
            best = min(best, time.perf_counter() - start)
    return Peak(2.0 * size**3 / best, size, dtype)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
