"""bench.perf.flops: the FLOPs of a training step, against counts worked out by hand."""

from __future__ import annotations

import torch
from torch import nn

from bench.perf.flops import matmul_peak, training_flops


def test_a_1x1_convolution_costs_its_multiply_adds_twice() -> None:
    # forward: 2 (multiply, add) x 2 in x 3 out x 16 pixels = 192 per image; backward: the
    # weight gradient, as much again (the input needs no gradient)
    model = nn.Conv2d(2, 3, 1, bias=False)
    assert training_flops(model, torch.rand(5, 2, 4, 4), torch.rand(5, 3, 4, 4)) == 384


def test_a_second_layer_adds_its_input_gradient() -> None:
    # layer 1 as above (192 + 192); layer 2, 3x3 from 3 to 3 channels on 16 pixels:
    # 2 x 3 x 3 x 9 x 16 = 2592 forward, and backward both the input and the weight gradients
    model = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.Conv2d(3, 3, 3, padding=1, bias=False))
    flops = training_flops(model, torch.rand(5, 2, 4, 4), torch.rand(5, 3, 4, 4))
    assert flops == 192 + 192 + 3 * 2592


def test_the_peak_is_a_positive_rate_of_the_named_size() -> None:
    peak = matmul_peak(torch.device("cpu"))
    assert peak.size == 2048 and peak.dtype == torch.float32
    assert peak.flops_per_s > 1e8  # any CPU multiplies faster than 0.1 GFLOP/s
