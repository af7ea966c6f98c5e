"""The paper's networks: conv-layer counts, kernels, activations and output shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.tasks.models import DenseUNet, UNet, conv_layers


def test_unet_has_the_papers_nine_conv_layers_of_kernel_5() -> None:
    model = UNet(1, 1, width=4)
    convs = conv_layers(model)
    assert len(convs) == 9
    assert {conv.kernel_size for conv in convs} == {(5, 5)}
    assert convs[-1].out_channels == 1  # the heatmap layer is the last conv and is spatial
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 8
    assert any(isinstance(m, nn.ReLU) for m in model.modules())


def test_dense_unet_has_the_papers_23_conv_layers_of_kernel_11() -> None:
    model = DenseUNet(3, 68, width=2)
    convs = conv_layers(model)
    assert len(convs) == 23
    assert {conv.kernel_size for conv in convs} == {(11, 11)}
    assert convs[-1].out_channels == 68


@pytest.mark.parametrize(("depth", "layers_per_block"), [(1, 1), (2, 2), (4, 3)])
def test_dense_unet_conv_count_formula(depth: int, layers_per_block: int) -> None:
    model = DenseUNet(1, 2, width=2, depth=depth, layers_per_block=layers_per_block, kernel_size=3)
    assert len(conv_layers(model)) == 2 + layers_per_block * (2 * depth + 1)


def test_dense_block_feeds_every_layer_all_earlier_features() -> None:
    model = DenseUNet(3, 5, width=4, depth=1, layers_per_block=3, kernel_size=3)
    stem, *encoder_block = conv_layers(model)[:4]
    assert stem.in_channels == 3
    assert [conv.in_channels for conv in encoder_block] == [4, 8, 12]


def test_endovis_unet_uses_leaky_relu() -> None:
    model = UNet(3, 2, width=4, activation=nn.LeakyReLU)
    assert len(conv_layers(model)) == 9
    assert any(isinstance(m, nn.LeakyReLU) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


@pytest.mark.parametrize(
    ("model", "channels", "landmarks", "size"),
    [
        (UNet(1, 1, width=4), 1, 1, (32, 32)),
        (UNet(3, 2, width=4, activation=nn.LeakyReLU), 3, 2, (36, 45)),  # EndoVis-like 4:5, odd
        (DenseUNet(3, 68, width=2, kernel_size=3), 3, 68, (32, 32)),
        (DenseUNet(3, 7, width=2, kernel_size=3), 3, 7, (29, 35)),
    ],
)
def test_heatmaps_come_out_at_the_input_resolution(
    model: nn.Module, channels: int, landmarks: int, size: tuple[int, int]
) -> None:
    out = model(torch.rand(2, channels, *size))
    assert out.shape == (2, landmarks, *size)


def test_bad_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        UNet(1, 1, width=4, kernel_size=4)
    with pytest.raises(ValueError, match="depth"):
        DenseUNet(1, 1, width=4, depth=0)
