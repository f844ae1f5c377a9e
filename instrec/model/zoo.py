"""The model zoo: SincNet (or log-mel) -> spec batch norm -> ResNet/ShaResNet -> LDE -> head.

Variants differ only by a row of arguments in VARIANTS (timm style): the paper's six on
the waveform, and each again on a log-mel input ("-mel"). `build_model` turns a name plus
overrides into a `Recognizer`, whose `config` (a dataclass saved in model files) rebuilds
the same architecture. `instrec models` prints every variant's parameters, counted as the
paper counts them, and multiply-accumulates per 1 s clip, measured by running the model.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from instrec.errors import InstrecError
from instrec.model.heads import HEADS, build_head
from instrec.model.lde import LDEPooling
from instrec.model.mel import LogMel
from instrec.model.registry import ShippedModel, read_manifest
from instrec.model.resnet import ResNet
from instrec.model.sincnet import PADDINGS, SINC_INITS, SincConv

# the paper's six variants (Fig. 7), on the waveform: name -> what sets it apart
WAVEFORM_VARIANTS: dict[str, dict[str, Any]] = {
    "resnet34": {"blocks": (3, 4, 6, 3), "share": False},
    "resnet28": {"blocks": (3, 3, 4, 3), "share": False},
    "resnet18": {"blocks": (2, 2, 2, 2), "share": False},
    "sharesnet34": {"blocks": (3, 4, 6, 3), "share": True},
    "sharesnet28": {"blocks": (3, 3, 4, 3), "share": True},
    "sharesnet18": {"blocks": (2, 2, 2, 2), "share": True},
}
MODEL_NAMES: tuple[str, ...] = tuple(WAVEFORM_VARIANTS)  # the paper's grid
# the same bodies on a log-mel input with the same frames (Table IV's other feature)
MEL_MODEL_NAMES: tuple[str, ...] = tuple(f"{name}-mel" for name in MODEL_NAMES)
VARIANTS: dict[str, dict[str, Any]] = {
    **WAVEFORM_VARIANTS,
    **{f"{name}-mel": {**row, "frontend": "mel"} for name, row in WAVEFORM_VARIANTS.items()},
}
FRONTENDS = ("sinc", "mel")

# trainable parameters as the paper prints them (Fig. 7 and its text)
PAPER_PARAMETERS: dict[str, str] = {
    "resnet34": "1.3M",
    "sharesnet34": "836K",
    "sharesnet28": "753K",
    "sharesnet18": "519K",
}
# ...which are Lightning's model summary of the authors' fine-tuned model: every trainable
# tensor once (sinc cut-offs, spec batch norm, body, LDE) with the fine-tuning head on 11
# classes (src/lms/irmas_mie.py), printed by Lightning's get_human_readable_count
PAPER_COUNTED_HEAD = "finetune"
PAPER_COUNTED_CLASSES = 11

CONFIG_VERSION = 2
# what build_model starts from (version 2): the authors' code where the paper is silent,
# model_configs/irnet.py (128 sinc filters, spec_bn), src/models/mie/transforms.py (reflect
# padding), src/lms/irmas_mie.py (the fine-tuning head: the model that tags, and the one
# the paper counts; pre-training configs ask for head "pretrain", see heads.py)
PAPER_DEFAULTS: dict[str, Any] = {
    "sinc_filters": 128,
    "sinc_padding": "reflect",
    "spec_bn": True,
    "head": "finetune",
    "version": CONFIG_VERSION,
}


@dataclass
class ModelConfig:
    """Every architecture argument; `dataclasses.asdict(config)` is stored in model files.

    The defaults are those of version 1, the first model files, which were saved before
    `sinc_padding`, `spec_bn`, `head` and the mel fields existed: `ModelConfig(**saved)`
    rebuilds an old file's model unchanged. New models start from PAPER_DEFAULTS
    (build_model), which also records `version` 2.
    """

    arch: str = "resnet34"  # the variant name it was built from (for display)
    num_classes: int = 11
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # basic blocks per stage
    share: bool = False  # ShaResNet: one conv2 weight per stage
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels per stage before the multiplier
    width_multiplier: float = 1.0  # >1 for models larger than the paper's
    stem_kernel: int = 7
    sample_rate: int = 16_000  # Hz
    frontend: str = "sinc"  # "sinc" (learned band-pass filters) or "mel" (fixed log mel)
    sinc_filters: int = 122  # version 1; the authors' code: 128
    # Shi et al.'s code reads its "kernel 50, stride 12" as milliseconds at 16 kHz:
    # int(0.050 * 16000) = 800 taps (rounded up to odd, 801) and a 192-sample hop.
    sinc_kernel: int = 800  # samples (rounded up to odd)
    sinc_stride: int = 192  # samples
    # the waveform is padded by half a kernel each side: "zeros" (version 1), "reflect"
    sinc_padding: str = "zeros"
    sinc_min_low_hz: float = 5.0
    sinc_min_band_hz: float = 5.0
    sinc_init: str = "mel"
    # the mel front end makes the sinc front end's frames (sinc_kernel, sinc_stride,
    # sinc_padding): a sinc_kernel-long Hann window, mel_fft-point spectrum, mel_bands bands
    mel_bands: int = 128
    mel_fft: int = 1024
    spec_bn: bool = False  # BatchNorm2d(1) on the front end's image (version 1: none)
    lde_components: int = 8
    head: str = "linear"  # one of heads.HEADS (version 1: "linear")
    version: int = 1  # 1: the defaults above (the first model files); 2: PAPER_DEFAULTS

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
        if not 1 <= self.version <= CONFIG_VERSION:
            raise InstrecError(
                f"model config: version {self.version} is not one this instrec reads "
                f"(1 .. {CONFIG_VERSION})"
            )
        for name, value, choices in (
            ("sinc_init", self.sinc_init, SINC_INITS),
            ("sinc_padding", self.sinc_padding, PADDINGS),
            ("frontend", self.frontend, FRONTENDS),
            ("head", self.head, HEADS),
        ):
            if value not in choices:
                raise InstrecError(
                    f"model config: {name} {value!r} is not one of {', '.join(choices)}"
                )

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Channels per stage after the width multiplier."""
        return tuple(max(1, round(w * self.width_multiplier)) for w in self.widths)


class Recognizer(nn.Module):
    """Raw 16 kHz waveform -> class logits: front end (SincConv or LogMel), spec batch norm,
    ResNet body, LDE pooling, head.

    The front end is the submodule named by `config.frontend` ("sinc" or "mel"), so a sinc
    model's state dict keeps the keys of the first model files (sinc.low_hz, ...).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.add_module(config.frontend, make_frontend(config))
        self.spec_bn: nn.Module = nn.BatchNorm2d(1) if config.spec_bn else nn.Identity()
        self.body = ResNet(config.blocks, config.stage_widths, config.share, config.stem_kernel)
        self.lde = LDEPooling(self.body.out_channels, config.lde_components)
        self.head = build_head(config.head, self.lde.out_features, config.num_classes)

    @property
    def frontend(self) -> SincConv | LogMel:
        """The waveform -> (batch, bands, frames) image stage, sinc or log mel."""
        module = self.get_submodule(self.config.frontend)
        assert isinstance(module, SincConv | LogMel)
        return module

    @property
    def samples_per_frame(self) -> int:
        """Input samples per frame of `frame_features` (front end stride x body down-sampling)."""
        return self.frontend.stride * self.body.time_reduction

    @property
    def embedding_dim(self) -> int:
        return self.lde.out_features

    def frame_features(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, ceil(samples / samples_per_frame), 128)."""
        filtered = self.frontend(wave)  # (batch, bands, frames)
        image = filtered.transpose(1, 2)[:, None]  # (batch, 1, frames, bands)
        return self.body(self.spec_bn(image))  # (batch, frames / 8, 128)

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
        """A fresh fine-tuning head for `num_classes` in place of the whole current head
        (pre-training -> fine-tuning, as src/lms/irmas_mie.py does); the body is kept.
        A "linear" model gets a fresh linear head, as instrec's first reading did."""
        kind = "linear" if self.config.head == "linear" else "finetune"
        anchor = self.lde.centres  # the new head goes where the model is
        head = build_head(kind, self.lde.out_features, num_classes)
        self.head = head.to(anchor.device, anchor.dtype)
        self.config = dataclasses.replace(self.config, num_classes=num_classes, head=kind)


def make_frontend(config: ModelConfig) -> SincConv | LogMel:
    """The front end `config.frontend` names; both make ceil(samples / stride) frames."""
    if config.frontend == "mel":
        return LogMel(
            bands=config.mel_bands,
            kernel_size=config.sinc_kernel,
            stride=config.sinc_stride,
            n_fft=config.mel_fft,
            sample_rate=config.sample_rate,
            padding=config.sinc_padding,
        )
    return SincConv(
        filters=config.sinc_filters,
        kernel_size=config.sinc_kernel,
        stride=config.sinc_stride,
        sample_rate=config.sample_rate,
        min_low_hz=config.sinc_min_low_hz,
        min_band_hz=config.sinc_min_band_hz,
        init=config.sinc_init,
        padding=config.sinc_padding,
    )


def build_model(name: str, num_classes: int = 11, **overrides: Any) -> Recognizer:
    """A fresh model of variant `name`; `overrides` are ModelConfig fields (width_multiplier=2)."""
    if name not in VARIANTS:
        raise InstrecError(f"unknown model {name!r} (choose from {', '.join(VARIANTS)})")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InstrecError(f"unknown model arguments: {', '.join(unknown)}")
    arguments = {
        **PAPER_DEFAULTS,
        **VARIANTS[name],
        **overrides,
        "arch": name,
        "num_classes": num_classes,
    }
    return Recognizer(ModelConfig(**arguments))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once (as Lightning's summary does)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def printed_count(count: int) -> str:
    """`count` as Lightning's model summary prints it, the form the paper's counts take:
    truncated to whole K (or M, ...) from 100 of them up, else to one decimal ("836K",
    "1.3M"); lightning.pytorch.utilities.model_summary.get_human_readable_count."""
    groups = min(math.ceil(len(str(count)) / 3), 5)
    unit = ("", "K", "M", "B", "T")[groups - 1]
    scaled = count * 10.0 ** (-3 * (groups - 1))
    if groups == 1 or scaled >= 100:
        return f"{int(scaled):,d}{unit}"
    return f"{scaled:,.1f}{unit}"


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
        "--num-classes",
        type=int,
        default=PAPER_COUNTED_CLASSES,
        help="head outputs (11 IRMAS classes, as the paper counts; 1006 NSynth)",
    )
    parser.add_argument(
        "--head",
        choices=HEADS,
        default=PAPER_COUNTED_HEAD,
        help="which head is counted (the paper counts the fine-tuned model's)",
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
    num_classes: int = PAPER_COUNTED_CLASSES,
    seconds: float = 1.0,
    head: str = PAPER_COUNTED_HEAD,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """One row per variant: name, input, blocks, shared, parameters (all, as printed, and
    without the sinc cut-offs), the paper's printed count, MACs.

    Counted as the paper counts (see PAPER_PARAMETERS): by default the fine-tuned model.
    """
    rows = []
    for name in VARIANTS:
        model = build_model(name, num_classes=num_classes, head=head, **overrides)
        params = count_parameters(model)
        rows.append(
            {
                "name": name,
                "input": "mel" if model.config.frontend == "mel" else "waveform",
                "blocks": "-".join(map(str, model.config.blocks)),
                "shared": model.config.share,
                "head": f"{head}, {num_classes} classes",
                "parameters": params,
                "printed_parameters": printed_count(params),
                "parameters_without_sinc": params - count_parameters(model.frontend),
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
        args.head,
        width_multiplier=args.width_multiplier,
        sinc_kernel=args.sinc_kernel,
        sinc_stride=args.sinc_stride,
    )
    default, shipped = read_manifest()
    if args.format == "json":
        import json

        models = [
            {"name": m.name, "default": m.name == default, **m.card} for m in shipped.values()
        ]
        print(json.dumps({"architectures": rows, "shipped": models}, indent=2))
        return 0
    print(
        f"{'model':<16} {'input':<8} {'blocks':<8} {'shared':<6} {'params':>10} "
        f"{'printed':>7} {'paper':>6} {'w/o sinc':>10} "
        f"{'MACs/' + format(args.seconds, 'g') + ' s':>11}"
    )
    for row in rows:
        print(
            f"{row['name']:<16} {row['input']:<8} {row['blocks']:<8} "
            f"{'yes' if row['shared'] else 'no':<6} {row['parameters']:>10,} "
            f"{row['printed_parameters']:>7} {row['paper_parameters'] or '-':>6} "
            f"{row['parameters_without_sinc']:>10,} {row['macs'] / 1e9:>10.2f}G"
        )
    print(
        f"params: every trainable tensor once - front end, spec batch norm, body, LDE and the "
        f"'{args.head}' head on {args.num_classes} classes (the paper counts the fine-tuned "
        "model this way); 'printed': that count as Lightning's model summary prints it, the "
        "form of the paper's counts; 'w/o sinc' leaves out the 2 x filters sinc cut-offs."
    )
    print(shipped_table(default, shipped))
    return 0


def shipped_table(default: str | None, shipped: dict[str, ShippedModel]) -> str:
    """The shipped models, one line each: what they are and what their cards measured."""
    if not shipped:
        return "\nshipped models: none in this install (give --model PATH to predict)"
    lines = ["", "shipped models ('instrec predict --model NAME'; * the default):"]
    for model in shipped.values():
        card = model.card
        trained = f", trained on {card['trained_on']}" if "trained_on" in card else ""
        measured = [
            *(
                f"{test_set}: " + ", ".join(f"{metric} {v:.3f}" for metric, v in values.items())
                for test_set, values in card.get("scores", {}).items()
            ),
            f"threshold {card['threshold_value']:g}" if "threshold_value" in card else "",
            f"solos: top instrument right on {card['solo_top1_accuracy']:.0%}"
            if "solo_top1_accuracy" in card
            else "",
            card.get("speed", ""),
            f"card: {card['card']}" if "card" in card else "",
        ]
        lines.append(
            "; ".join(
                [
                    f"{'*' if model.name == default else ' '} {model.name}: "
                    f"{card.get('architecture')} "
                    f"({printed_count(int(card.get('parameters', 0)))} parameters){trained}",
                    *(part for part in measured if part),
                ]
            )
        )
    return "\n".join(lines)
