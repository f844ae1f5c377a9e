"""Pre-training augmentation (paper III-B): note concatenation, LUFS-matched mixup, effects.

Concatenation works on one note at a time in the dataset (numpy); mixup and the effects
work on a whole batch in torch on the batch's device, so on a GPU they cost little next to
the training step. Every random draw comes from a generator passed in, so a seed
reproduces the output exactly.

Where the paper is silent the authors' code decides (docs/fidelity.md has the table):
  - effects ("effect augmentation ratio 0.3"): `effects_mode: chain`, the code's
    datasets/nsynth_dataset.py: a clip goes through the effect chain with probability
    effects_ratio, and inside it each effect has its own chance (CHAIN_P: noise 0.3, gain
    0.2, a high- or low-pass always, delay 0.5, pitch shift 0.4, reverb 0.3), in the
    code's order. `independent` is the earlier, stronger reading: every effect on every
    clip with probability effects_ratio (about 92 % of clips altered at 0.3).
  - concatenation: `concat_mode: whole`, the code's `stitch`: whole silence-trimmed notes
    of the instrument joined until the clip is full, then its first second kept;
    `pieces` cuts each note to 0.2-0.6 s from its onset instead.
  - mixup: the paper's p 0.5, alpha 0.3 and loudness matching; `mixup_mode: clip` (the
    default) mixes each clip with probability p with a random partner and its own lambda;
    `batch` is the code's: the whole batch with probability p, one lambda, partners the
    batch rolled by one.
Effects run before mixup, so the two partners of a mix carry their own effects (as the
instruments of a produced song do).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from instrec.errors import InstrecError
from instrec.train import effects
from instrec.train.loudness import integrated_loudness_torch, loudness_gain

# independent mode's order: pitch and tone first, then space (delay, reverb), then level, noise
ALL_EFFECTS = ("pitch_shift", "highpass", "lowpass", "delay", "reverb", "gain", "noise")
# chain mode: the authors' Compose order and each step's chance inside the chain; "filter"
# is their HighLowPass: a high-pass or a low-pass, 50/50
CHAIN_P: dict[str, float] = {
    "noise": 0.3,
    "gain": 0.2,
    "filter": 1.0,
    "delay": 0.5,
    "pitch_shift": 0.4,
    "reverb": 0.3,
}
EFFECTS_MODES = ("chain", "independent")
CONCAT_MODES = ("whole", "pieces")
MIXUP_MODES = ("clip", "batch")
FADE_SECONDS = 0.005  # s: fade at both ends of a trimmed note, so joins do not click
TRIM_FRAME = 512  # samples: frames whose RMS decides where a note's silence ends (32 ms)

# the paper's Table III rows: overrides of the default (all augmentations on)
ABLATIONS: dict[str, dict[str, Any]] = {
    "all": {},
    "-mixup": {"mixup_p": 0.0},
    "-effects": {"effects_ratio": 0.0},
    "-both": {"mixup_p": 0.0, "effects_ratio": 0.0},
    "-concatenation": {"concat_p": 0.0},
}

Range = tuple[float, float]


@dataclass(frozen=True)
class AugmentConfig:
    """What augments pre-training and how strongly; p = 0 or ratio = 0 switches a part off.

    Effect ranges are drawn uniformly per clip. Where torchaudio-augmentations (the
    paper's effect library) has a default we use it: gain -20..-1 dB, delay 200-500 ms,
    high pass 200-1200 Hz, low pass 2200-4000 Hz, pitch +-7 semitones (its +-700 cents).
    Noise: the code's 0.1-0.5 % of the clip's standard deviation is 46-60 dB below it
    (drawn uniformly in dB here, in amplitude there), white.
    """

    concat_p: float = 0.5  # probability a note is joined with same-instrument notes
    concat_mode: str = "whole"  # CONCAT_MODES: whole trimmed notes, or cut pieces
    concat_trim_db: float = 60.0  # whole: frames this far below the note's loudest are silence
    concat_seconds: Range = (0.2, 0.6)  # pieces: s kept of each joined note, from its onset
    mixup_p: float = 0.5  # probability a clip (mixup_mode clip) or batch (batch) is mixed
    mixup_alpha: float = 0.3  # lambda ~ Beta(alpha, alpha)
    mixup_mode: str = "clip"  # MIXUP_MODES
    effects_ratio: float = 0.3  # chain: P(clip enters the chain); independent: P(each effect)
    effects_mode: str = "chain"  # EFFECTS_MODES
    effects: tuple[str, ...] = ALL_EFFECTS
    noise_snr_db: Range = (46.0, 60.0)  # dB below the clip's power
    noise_pink_p: float = 0.0  # share of pink (1/f) noise; the rest is white
    delay_ms: Range = (200.0, 500.0)  # ms: echo lag
    delay_feedback: Range = (0.2, 0.5)  # amplitude of the first echo; the k-th is its k-th power
    reverb_rt60_s: Range = (0.2, 1.2)  # s: 60 dB decay time of the synthetic room
    reverb_wet: Range = (0.1, 0.5)  # share of the reverberant signal in the mix
    gain_db: Range = (-20.0, -1.0)
    pitch_semitones: Range = (-7.0, 7.0)  # duration is kept
    highpass_hz: Range = (200.0, 1200.0)  # cut-off
    lowpass_hz: Range = (2200.0, 4000.0)  # cut-off

    def __post_init__(self) -> None:
        for name in ("concat_p", "mixup_p", "effects_ratio", "noise_pink_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InstrecError(f"augment config: {name} must be in [0, 1]")
        for name, modes in (
            ("effects_mode", EFFECTS_MODES),
            ("concat_mode", CONCAT_MODES),
            ("mixup_mode", MIXUP_MODES),
        ):
            if getattr(self, name) not in modes:
                raise InstrecError(f"augment config: {name} must be one of {', '.join(modes)}")
        if self.concat_trim_db <= 0:
            raise InstrecError("augment config: concat_trim_db must be > 0")
        if self.mixup_alpha <= 0:
            raise InstrecError("augment config: mixup_alpha must be > 0")
        unknown = set(self.effects) - set(ALL_EFFECTS)
        if unknown:
            known = ", ".join(ALL_EFFECTS)
            raise InstrecError(f"augment config: unknown effects {sorted(unknown)}; known: {known}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "Range" and not (len(value) == 2 and value[0] <= value[1]):
                raise InstrecError(f"augment config: {field.name} must be [low, high], low <= high")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AugmentConfig:
        """Build from a YAML mapping (lists become tuples); an unknown key is an error."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise InstrecError(f"augment config: unknown keys {sorted(unknown)}")
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
        }
        return cls(**kwargs)

    @classmethod
    def ablation(cls, name: str) -> AugmentConfig:
        """The defaults with one of the paper's ablations (ABLATIONS) applied."""
        if name not in ABLATIONS:
            raise InstrecError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
        return cls(**ABLATIONS[name])


def concatenate_notes(
    note: np.ndarray,
    partners: Sequence[np.ndarray],
    rng: np.random.Generator,
    length: int = 16_000,
    sr: int = 16_000,
    *,
    p: float = 1.0,
    mode: str = "whole",
    trim_db: float = 60.0,
    seconds: Range = (0.2, 0.6),
) -> np.ndarray:
    """With probability p, join `note` and randomly chosen same-instrument `partners`.

    Notes (the first one itself, then partners drawn with replacement) are appended until
    `length` samples, and the first `length` are kept. `whole` (the authors' code): each
    note with its leading and trailing silence trimmed (frames more than `trim_db` below
    its loudest frame). `pieces`: each note cut to its first `seconds` (uniform, s) from
    its onset, with FADE_SECONDS fades. Without usable partners (or when p is not hit)
    the note is returned unchanged.
    """
    usable = [partner for partner in partners if partner.size > 0]
    if not usable or rng.random() >= p:
        return note
    pieces, total, source = [], 0, note
    while total < length:
        if mode == "whole":
            piece = without_silence(source, trim_db)
        else:
            keep = round(rng.uniform(*seconds) * sr)
            piece = _trimmed(source, keep, round(FADE_SECONDS * sr))
        pieces.append(piece)
        total += piece.size
        source = usable[rng.integers(len(usable))]
    return np.concatenate(pieces)[:length].astype(np.float32, copy=False)


def without_silence(note: np.ndarray, top_db: float = 60.0) -> np.ndarray:
    """`note` from its first to its last TRIM_FRAME frame whose RMS is within `top_db` dB
    of its loudest frame (librosa's effects.trim rule); a silent note is kept whole."""
    frames = note[: note.size // TRIM_FRAME * TRIM_FRAME].reshape(-1, TRIM_FRAME)
    if frames.size == 0:
        return note
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))  # (frames,)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-top_db / 20))
    if rms.max() == 0 or loud.size == 0:
        return note
    end = note.size if loud[-1] == len(rms) - 1 else (loud[-1] + 1) * TRIM_FRAME
    return note[loud[0] * TRIM_FRAME : end]


def _trimmed(note: np.ndarray, keep: int, fade: int) -> np.ndarray:
    """The first `keep` samples of a note (at least one), faded in and out over `fade`."""
    piece = np.array(note[: max(keep, 1)], dtype=np.float32)
    fade = min(fade, piece.size // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
        piece[:fade] *= ramp
        piece[-fade:] *= ramp[::-1]
    return piece


class BatchAugmenter:
    """Effects then LUFS-matched mixup on a batch, in torch on the batch's device.

    Mixup: each clip is mixed with probability mixup_p with its partner in a random
    permutation of the batch (drawn regardless of class; mixup_mode batch: the whole batch
    with one lambda and the batch rolled by one as partners); the partner is first scaled
    to the clip's own integrated loudness (BS.1770-4), then x = lam x_i + (1 - lam) x_j and
    y = lam y_i + (1 - lam) y_j with lam ~ Beta(alpha, alpha). Label smoothing is left to
    the loss.
    """

    def __init__(self, config: AugmentConfig, sample_rate: int = 16_000) -> None:
        self.config = config
        self.sample_rate = sample_rate

    @torch.no_grad()
    def __call__(
        self,
        waves: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """waves (batch, samples) float, targets (batch, classes) one-hot or soft -> the
        augmented pair, same shapes; inputs are not modified. A CPU generator works for
        CUDA batches (draws are moved); a CUDA generator avoids the copies."""
        waves = self.apply_effects(waves, generator)
        return self.mixup(waves, targets, generator)

    def apply_effects(
        self, waves: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The effects of `plan_effects` on their rows, in order; other rows are copied."""
        out = waves.clone()
        draw = _Draw(generator, waves.device)
        for name, rows in self.plan_effects(len(waves), draw):
            chosen = rows.nonzero()[:, 0]
            if chosen.numel():
                draw.size = chosen.numel()
                out[chosen] = self._effect(name, out[chosen], draw).to(out.dtype)
        return out

    def plan_effects(self, batch: int, draw: _Draw) -> list[tuple[str, torch.Tensor]]:
        """Which rows get which effect, in application order: (effect, (batch,) bool).

        chain: a row enters the chain with probability effects_ratio, then gets each step
        with its CHAIN_P chance ("filter": highpass or lowpass, 50/50, among those enabled);
        independent: every enabled effect on every row with probability effects_ratio.
        """
        enabled, ratio = self.config.effects, self.config.effects_ratio
        if ratio == 0:
            return []
        if self.config.effects_mode == "independent":
            return [
                (name, draw((0.0, 1.0), batch) < ratio) for name in ALL_EFFECTS if name in enabled
            ]
        chained = draw((0.0, 1.0), batch) < ratio  # (batch,)
        plan = []
        for step, p in CHAIN_P.items():
            rows = chained & (draw((0.0, 1.0), batch) < p)
            if step != "filter":
                plan.append((step, rows & (step in enabled)))
                continue
            high = draw((0.0, 1.0), batch) < 0.5
            if "highpass" not in enabled or "lowpass" not in enabled:
                high = torch.full_like(high, "highpass" in enabled)
                rows = rows & ("highpass" in enabled or "lowpass" in enabled)
            plan += [("highpass", rows & high), ("lowpass", rows & ~high)]
        return plan

    def _effect(self, name: str, x: torch.Tensor, draw: _Draw) -> torch.Tensor:
        """One effect on the chosen rows x (rows, samples), its parameters drawn per row."""
        cfg, sr = self.config, self.sample_rate
        match name:
            case "pitch_shift":
                return effects.pitch_shift(x, draw(cfg.pitch_semitones))
            case "highpass":
                return effects.highpass(x, draw(cfg.highpass_hz), sr)
            case "lowpass":
                return effects.lowpass(x, draw(cfg.lowpass_hz), sr)
            case "delay":
                lag = (draw(cfg.delay_ms) * sr / 1000).round().long()  # samples
                return effects.delay(x, lag, draw(cfg.delay_feedback))
            case "reverb":
                rt60, wet = draw(cfg.reverb_rt60_s), draw(cfg.reverb_wet)
                return effects.reverb(x, rt60, wet, sr, draw.generator)
            case "gain":
                return effects.gain(x, draw(cfg.gain_db))
            case "noise":
                snr_db, pink = draw(cfg.noise_snr_db), draw((0.0, 1.0)) < cfg.noise_pink_p
                return effects.add_noise(x, snr_db, pink, draw.generator)
        raise AssertionError(name)  # AugmentConfig only admits ALL_EFFECTS

    def mixup(
        self,
        waves: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix clips with LUFS-matched random partners; unmixed rows are returned as they are."""
        if self.config.mixup_p == 0:
            return waves, targets
        batch = len(waves)
        draw = _Draw(generator, waves.device, batch)
        if self.config.mixup_mode == "batch":  # the authors' code: all or none, one lambda
            mixed = (draw((0.0, 1.0), 1) < self.config.mixup_p).expand(batch)
            lam = draw.beta(self.config.mixup_alpha, 1).expand(batch)
            partner = torch.arange(batch, device=waves.device).roll(1)
        else:
            mixed = draw((0.0, 1.0)) < self.config.mixup_p  # (batch,)
            lam = draw.beta(self.config.mixup_alpha)
            partner = draw.permutation()
        lam = torch.where(mixed, lam, 1.0)[:, None]  # (batch, 1)
        loudness = integrated_loudness_torch(waves, self.sample_rate)  # (batch,) LUFS
        matched = waves[partner] * loudness_gain(loudness[partner], loudness)[:, None]
        mix_waves = (lam * waves + (1 - lam) * matched).to(waves.dtype)
        mix_targets = (lam * targets + (1 - lam) * targets[partner]).to(targets.dtype)
        return (
            torch.where(mixed[:, None], mix_waves, waves),
            torch.where(mixed[:, None], mix_targets, targets),
        )


class _Draw:
    """Uniform draws, one per row, from a generator (on its own device) moved to `device`."""

    def __init__(
        self, generator: torch.Generator | None, device: torch.device, size: int = 0
    ) -> None:
        self.generator = generator
        self.device = device
        self.source = generator.device if generator is not None else device
        self.size = size

    def __call__(self, bounds: Range, size: int | None = None) -> torch.Tensor:
        low, high = bounds
        u = torch.rand(size or self.size, generator=self.generator, device=self.source)
        return (low + (high - low) * u).to(self.device)

    def beta(self, alpha: float, size: int | None = None) -> torch.Tensor:
        """Beta(alpha, alpha) as G1 / (G1 + G2) of two Gamma(alpha) draws; 0.5 if both are 0."""
        shape = torch.full((2, size or self.size), alpha, dtype=torch.float64, device=self.source)
        g = torch._standard_gamma(shape, generator=self.generator)
        total = g.sum(0)
        lam = torch.where(total > 0, g[0] / total.clamp(min=1e-300), 0.5)
        return lam.float().to(self.device)

    def permutation(self) -> torch.Tensor:
        return torch.randperm(self.size, generator=self.generator, device=self.source).to(
            self.device
        )
