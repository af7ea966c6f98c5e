"""The paper's heatmap regressors: a plain U-Net (CathDet, EndoVis) and a Dense U-Net (faces).

Every network maps (B, C, H, W) images to (B, K, H, W) heatmaps at the input resolution, for any
H and W: pooling floors odd sizes and each upsampling step interpolates to the exact size of the
skip connection it is joined with, so EndoVis' 288 x 360 frames (360 = 2^3 * 45) need no padding.

Counting conv layers (the paper's "9 conv layers" / "23 conv layers"): every `nn.Conv2d` counts,
including the one that produces the heatmaps; pooling, bilinear upsampling, BatchNorm and the
activations are not layers in that count. There are no 1x1 projection or transposed convolutions,
so every conv layer has the same square kernel and the last one (the heatmap layer) is spatial,
which is what the NTV "last layer" metric of the paper measures.

- `UNet`: `depth` poolings give 2 * depth + 1 conv layers: one conv per encoder level
  (levels 0 .. depth - 1), one bottleneck conv at level `depth`, one conv per decoder level; the
  level-0 decoder conv outputs the K heatmaps. The paper's 9 layers are `depth=4`.
- `DenseUNet`: a stem conv, dense blocks of `layers_per_block` convs at each encoder level, the
  bottleneck and each decoder level (2 * depth + 1 blocks), and a heatmap conv:
  2 + layers_per_block * (2 * depth + 1) layers. The paper's 23 are `depth=3, layers_per_block=3`.

Widths: the U-Net doubles `width` at each level; the Dense U-Net adds `width` channels (the growth
rate) per conv. Hidden convs are conv -> BatchNorm -> activation; the heatmap conv is linear with a
bias (heatmap targets are not zero-mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_block(
    in_channels: int, out_channels: int, kernel_size: int, activation: type[nn.Module]
) -> nn.Sequential:
    """Conv (same padding, no bias: BatchNorm has one) -> BatchNorm -> activation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        activation(),
    )


def heatmap_conv(in_channels: int, num_landmarks: int, kernel_size: int) -> nn.Conv2d:
    """The linear output layer: one heatmap per landmark."""
    return nn.Conv2d(in_channels, num_landmarks, kernel_size, padding=kernel_size // 2)


def upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """Bilinear upsampling of (B, C, h, w) to the spatial size of `like` (B, C', H, W)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def join_skip(x: Tensor, skip: Tensor) -> Tensor:
    """(B, C, h, w) upsampled to the skip's (B, C', H, W) and concatenated: (B, C + C', H, W)."""
    return torch.cat([upsample_to(x, skip), skip], dim=1)


def encode_decode(
    x: Tensor, encoder: nn.ModuleList, bottleneck: nn.Module, decoder: nn.ModuleList
) -> tuple[Tensor, list[Tensor]]:
    """Run (B, C, H, W) `x` down the encoder, through the bottleneck and up the decoder.

    Each encoder level's output is kept as a skip before its 2x2 max-pooling; each decoder block
    takes the upsampled features joined with the deepest skip not yet used. Returns the last
    decoder output and the skips left over, shallowest first: the U-Net has one decoder level
    fewer than encoder levels and joins the level-0 skip in its heatmap conv.
    """
    skips = []
    for block in encoder:
        x = block(x)
        skips.append(x)
        x = F.max_pool2d(x, 2)
    x = bottleneck(x)
    for block in decoder:
        x = block(join_skip(x, skips.pop()))
    return x, skips


def _check_architecture(kernel_size: int, depth: int, width: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if depth < 1:
        raise ValueError(f"depth (number of poolings) must be >= 1, got {depth}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")


class UNet(nn.Module):
    """U-Net with one conv per level: (B, C, H, W) images -> (B, K, H, W) heatmaps.

    width: channels at level 0, doubled at every pooling. depth: number of 2x2 max-poolings
    (2 * depth + 1 conv layers). activation: nn.ReLU (CathDet) or nn.LeakyReLU (EndoVis).
    """

    def __init__(
        self,
        in_channels: int,
        num_landmarks: int,
        *,
        width: int,
        depth: int = 4,
        kernel_size: int = 5,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        _check_architecture(kernel_size, depth, width)
        channels = [width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            conv_block(c_in, c_out, kernel_size, activation)
            for c_in, c_out in zip([in_channels, *channels[:-2]], channels[:-1], strict=True)
        )
        self.bottleneck = conv_block(channels[-2], channels[-1], kernel_size, activation)
        # Decoder level l joins the upsampled level l + 1 with the encoder's level-l skip.
        self.decoder = nn.ModuleList(
            conv_block(
                channels[level + 1] + channels[level], channels[level], kernel_size, activation
            )
            for level in range(depth - 1, 0, -1)
        )
        self.head = heatmap_conv(channels[1] + channels[0], num_landmarks, kernel_size)

    def forward(self, images: Tensor) -> Tensor:
        x, (level0_skip,) = encode_decode(images, self.encoder, self.bottleneck, self.decoder)
        heatmaps: Tensor = self.head(join_skip(x, level0_skip))
        return heatmaps


class DenseBlock(nn.Module):
    """`num_layers` convs, each fed the concatenation of the block input and all earlier outputs.

    (B, C, H, W) -> (B, C + num_layers * growth, H, W) (`new_only=False`) or
    (B, num_layers * growth, H, W) (`new_only=True`, as in FC-DenseNet's bottleneck and decoder:
    the input already reaches the next block through the skip, so it is not carried twice).
    """

    def __init__(
        self,
        in_channels: int,
        growth: int,
        num_layers: int,
        kernel_size: int,
        *,
        new_only: bool,
    ) -> None:
        super().__init__()
        self.growth = growth
        self.new_only = new_only
        self.layers = nn.ModuleList(
            conv_block(in_channels + index * growth, growth, kernel_size, nn.ReLU)
            for index in range(num_layers)
        )

    def out_channels(self, in_channels: int) -> int:
        new = len(self.layers) * self.growth
        return new if self.new_only else in_channels + new

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features[1:] if self.new_only else features, dim=1)


class DenseUNet(nn.Module):
    """Dense U-Net (FC-DenseNet style, no 1x1 transitions): (B, C, H, W) -> (B, K, H, W).

    width: the growth rate (channels added by each conv). depth: number of 2x2 max-poolings.
    layers_per_block: convs per dense block. Conv layers: 2 + layers_per_block * (2 * depth + 1).
    """

    def __init__(
        self,
        in_channels: int,
        num_landmarks: int,
        *,
        width: int,
        depth: int = 3,
        layers_per_block: int = 3,
        kernel_size: int = 11,
    ) -> None:
        super().__init__()
        _check_architecture(kernel_size, depth, width)
        if layers_per_block < 1:
            raise ValueError(f"layers_per_block must be >= 1, got {layers_per_block}")
        self.stem = conv_block(in_channels, width, kernel_size, nn.ReLU)
        channels = width
        skip_channels = []
        encoder = []
        for _ in range(depth):
            block = DenseBlock(channels, width, layers_per_block, kernel_size, new_only=False)
            channels = block.out_channels(channels)
            skip_channels.append(channels)
            encoder.append(block)
        self.encoder = nn.ModuleList(encoder)
        self.bottleneck = DenseBlock(channels, width, layers_per_block, kernel_size, new_only=True)
        channels = self.bottleneck.out_channels(channels)
        decoder = []
        for skip in reversed(skip_channels):
            block = DenseBlock(channels + skip, width, layers_per_block, kernel_size, new_only=True)
            channels = block.out_channels(channels + skip)
            decoder.append(block)
        self.decoder = nn.ModuleList(decoder)
        self.head = heatmap_conv(channels, num_landmarks, kernel_size)

    def forward(self, images: Tensor) -> Tensor:
        x, _ = encode_decode(self.stem(images), self.encoder, self.bottleneck, self.decoder)
        heatmaps: Tensor = self.head(x)
        return heatmaps


def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    """The model's conv layers in registration order (the paper's layer count)."""
    return [module for module in model.modules() if isinstance(module, nn.Conv2d)]
