"""ResNet / ShaResNet body over the sinc "image" (frames x filters), as in Shi et al.'s code.

A 7x7 stem (stride 1, no max-pool), four stages of basic blocks (the first at stride 1,
the others halving both axes), then the filter axis is averaged away, leaving one feature
vector per frame. ShaResNet (Boulch 2018) shares convolution weights between the blocks of
a stage: here every block's second 3x3 convolution uses one weight per stage, while each
block keeps its own first convolution and batch norms (the scheme whose parameter counts
match the paper's 836 K / 753 K / 519 K).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv + batch norm layers with an identity (or 1x1 conv + BN) shortcut.

    `shared_conv2`, when given, is used as the second convolution instead of a new one:
    several blocks holding the same module train one tensor.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shared_conv2: nn.Conv2d | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = (
            shared_conv2 if shared_conv2 is not None else conv3x3(out_channels, out_channels)
        )
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Stage(nn.Sequential):
    """`blocks` basic blocks, the first changing width/stride; `share` gives them one conv2."""

    def __init__(
        self, in_channels: int, out_channels: int, blocks: int, stride: int, share: bool
    ) -> None:
        shared = conv3x3(out_channels, out_channels) if share else None
        super().__init__(
            *(
                BasicBlock(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    stride if i == 0 else 1,
                    shared_conv2=shared,
                )
                for i in range(blocks)
            )
        )


class ResNet(nn.Module):
    """(batch, 1, frames, filters) image -> (batch, frames / 8, widths[-1]) frame features."""

    def __init__(
        self,
        blocks: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (16, 32, 64, 128),
        share: bool = False,
        stem_kernel: int = 7,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], stem_kernel, padding=stem_kernel // 2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        in_widths = [widths[0], *widths[:-1]]
        self.stages = nn.Sequential(
            *(
                Stage(cin, cout, n, stride=1 if i == 0 else 2, share=share)
                for i, (cin, cout, n) in enumerate(zip(in_widths, widths, blocks, strict=True))
            )
        )
        self.out_channels = widths[-1]
        self.time_reduction = 2 ** (len(widths) - 1)  # frames in per frame out
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(image))  # (batch, channels, frames / 8, filters / 8)
        return x.mean(dim=3).transpose(1, 2)  # (batch, frames / 8, channels)
