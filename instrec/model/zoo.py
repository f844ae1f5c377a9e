"""The model zoo: SincNet -> ResNet/ShaResNet -> LDE -> linear head, six named variants.

Variants differ only by a row of arguments in VARIANTS (timm style); `build_model` turns a
name plus overrides into a `Recognizer`, whose `config` (a dataclass saved in model files)
rebuilds the same architecture. `instrec models` prints every variant's parameters and
multiply-accumulates per 1 s clip, measured by running the model.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from instrec.errors import InstrecError
from instrec.model.lde import LDEPooling
from instrec.model.resnet import ResNet
from instrec.model.sincnet import SINC_INITS, SincConv

# name -> the arguments that make it differ from ModelConfig's defaults
VARIANTS: dict[str, dict[str, Any]] = {
    "resnet34": {"blocks": (3, 4, 6, 3), "share": False},
    "resnet28": {"blocks": (3, 3, 4, 3), "share": False},
    "resnet18": {"blocks": (2, 2, 2, 2), "share": False},
    "sharesnet34": {"blocks": (3, 4, 6, 3), "share": True},
    "sharesnet28": {"blocks": (3, 3, 4, 3), "share": True},
    "sharesnet18": {"blocks": (2, 2, 2, 2), "share": True},
}
MODEL_NAMES: tuple[str, ...] = tuple(VARIANTS)

# trainable parameters the paper reports (Fig. 7), with a linear 1024 -> 11 head
PAPER_PARAMETERS: dict[str, int] = {
    "resnet34": 1_300_000,
    "sharesnet34": 836_000,
    "sharesnet28": 753_000,
    "sharesnet18": 519_000,
}


@dataclass
class ModelConfig:
    """Every architecture argument; `dataclasses.asdict(config)` is stored in model files."""

    arch: str = "resnet34"  # the variant name it was built from (for display)
    num_classes: int = 11
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # basic blocks per stage
    share: bool = False  # ShaResNet: one conv2 weight per stage
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels per stage before the multiplier
    width_multiplier: float = 1.0  # >1 for models larger than the paper's
    stem_kernel: int = 7
    sample_rate: int = 16_000  # Hz
    sinc_filters: int = 122
    # Shi et al.'s code reads its "kernel 50, stride 12" as milliseconds at 16 kHz:
    # int(0.050 * 16000) = 800 taps (rounded up to odd, 801) and a 192-sample hop.
    sinc_kernel: int = 800  # samples (rounded up to odd)
    sinc_stride: int = 192  # samples
    sinc_min_low_hz: float = 5.0
    sinc_min_band_hz: float = 5.0
    sinc_init: str = "mel"
    lde_components: int = 8

    def __post_init__(self) -> None:
        self.blocks = tuple(int(b) for b in self.blocks)
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.blocks) != len(self.widths) or not self.blocks:
            raise InstrecError(
                f"model config: blocks {self.blocks} and widths {self.widths} "
                "need one entry per stage"
            )
        if min(self.blocks) < 1 or self.num_classes < 1 or self.lde_components < 1:
            raise InstrecError("model config: blocks, num_classes and lde_components must be >= 1")
        if self.width_multiplier <= 0:
            raise InstrecError(
                f"model config: width_multiplier must be > 0, got {self.width_multiplier}"
            )
        if self.sinc_init not in SINC_INITS:
            raise InstrecError(
                f"model config: sinc_init {self.sinc_init!r} is not one of {', '.join(SINC_INITS)}"
            )

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Channels per stage after the width multiplier."""
        return tuple(max(1, round(w * self.width_multiplier)) for w in self.widths)


class Recognizer(nn.Module):
    """Raw 16 kHz waveform -> class logits: SincConv, ResNet body, LDE pooling, linear head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.sinc = SincConv(
            filters=config.sinc_filters,
            kernel_size=config.sinc_kernel,
            stride=config.sinc_stride,
            sample_rate=config.sample_rate,
            min_low_hz=config.sinc_min_low_hz,
            min_band_hz=config.sinc_min_band_hz,
            init=config.sinc_init,
        )
        self.body = ResNet(config.blocks, config.stage_widths, config.share, config.stem_kernel)
        self.lde = LDEPooling(self.body.out_channels, config.lde_components)
        self.head = nn.Linear(self.lde.out_features, config.num_classes)

    @property
    def samples_per_frame(self) -> int:
        """Input samples per frame of `frame_features` (sinc stride x body down-sampling)."""
        return self.sinc.stride * self.body.time_reduction

    @property
    def embedding_dim(self) -> int:
        return self.lde.out_features

    def frame_features(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, ceil(samples / samples_per_frame), 128)."""
        filtered = self.sinc(wave)  # (batch, filters, frames)
        image = filtered.transpose(1, 2)[:, None]  # (batch, 1, frames, filters)
        return self.body(image)  # (batch, frames / 8, 128)

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 128) -> (batch, 1024) LDE embedding."""
        return self.lde(frames)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, 1024): the penultimate embedding (for t-SNE)."""
        return self.pool(self.frame_features(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) float32 at 16 kHz -> (batch, num_classes) logits."""
        return self.head(self.embed(wave))

    def replace_head(self, num_classes: int) -> None:
        """A fresh linear head for `num_classes` (pre-training -> fine-tuning); body kept."""
        old = self.head
        self.head = nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype)
        self.config = dataclasses.replace(self.config, num_classes=num_classes)


def build_model(name: str, num_classes: int = 11, **overrides: Any) -> Recognizer:
    """A fresh model of variant `name`; `overrides` are ModelConfig fields (width_multiplier=2)."""
    if name not in VARIANTS:
        raise InstrecError(f"unknown model {name!r} (choose from {', '.join(MODEL_NAMES)})")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InstrecError(f"unknown model arguments: {', '.join(unknown)}")
    arguments = {**VARIANTS[name], **overrides, "arch": name, "num_classes": num_classes}
    return Recognizer(ModelConfig(**arguments))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, seconds: float = 1.0, sample_rate: int = 16_000) -> int:
    """Multiply-accumulates of one forward pass on one clip, measured (counted FLOPs / 2).

    Runs a copy of the model on the meta device: every operator is dispatched and counted
    by torch's FlopCounterMode, but no arithmetic is done, so the count costs milliseconds.
    """
    from torch.utils.flop_counter import FlopCounterMode

    shadow = copy.deepcopy(model).to("meta").eval()
    wave = torch.zeros(1, round(seconds * sample_rate), device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        shadow(wave)
    return counter.get_total_flops() // 2


# ---- `instrec models` ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--num-classes", type=int, default=11, help="head outputs (11 IRMAS classes; 1006 NSynth)"
    )
    parser.add_argument(
        "--width-multiplier", type=float, default=1.0, help="scale every stage's channels"
    )
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="clip length (s) for the MAC count"
    )
    parser.add_argument(
        "--sinc-kernel", type=int, default=ModelConfig.sinc_kernel, help="sinc kernel (samples)"
    )
    parser.add_argument(
        "--sinc-stride", type=int, default=ModelConfig.sinc_stride, help="sinc stride (samples)"
    )
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )


def model_table(
    num_classes: int = 11, seconds: float = 1.0, **overrides: Any
) -> list[dict[str, Any]]:
    """One row per variant: name, blocks, shared, parameters (with/without sinc), MACs."""
    rows = []
    for name in MODEL_NAMES:
        model = build_model(name, num_classes=num_classes, **overrides)
        params = count_parameters(model)
        rows.append(
            {
                "name": name,
                "blocks": "-".join(map(str, model.config.blocks)),
                "shared": model.config.share,
                "parameters": params,
                "parameters_without_sinc": params - count_parameters(model.sinc),
                "paper_parameters": PAPER_PARAMETERS.get(name),
                "macs": count_macs(model, seconds, model.config.sample_rate),
                "samples_per_frame": model.samples_per_frame,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    rows = model_table(
        args.num_classes,
        args.seconds,
        width_multiplier=args.width_multiplier,
        sinc_kernel=args.sinc_kernel,
        sinc_stride=args.sinc_stride,
    )
    if args.format == "json":
        import json

        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'model':<12} {'blocks':<8} {'shared':<6} {'params':>10} {'w/o sinc':>10} "
        f"{'paper':>7} {'MACs/' + format(args.seconds, 'g') + ' s':>11}"
    )
    for row in rows:
        paper = row["paper_parameters"]
        paper_text = (
            f"{paper / 1e6:.3g}M"
            if paper and paper >= 1e6
            else (f"{paper // 1000}K" if paper else "-")
        )
        print(
            f"{row['name']:<12} {row['blocks']:<8} {'yes' if row['shared'] else 'no':<6} "
            f"{row['parameters']:>10,} {row['parameters_without_sinc']:>10,} {paper_text:>7} "
            f"{row['macs'] / 1e9:>10.2f}G"
        )
    print(
        f"params: trainable, shared tensors once, {args.num_classes}-class linear head included; "
        "'w/o sinc' leaves out the 2 x filters sinc cut-offs."
    )
    return 0
