"""`Training`: the whole recipe of a training step, as a LightningModule.

Augment the batch, forward, the loss, the warm-up + cosine schedule, and a stop when the
run diverges (`Divergence`): before a NaN/inf loss or gradient reaches the weights, and
when every value is still finite but the loss, the gradients, the weights or the
validation score show that the learning rate was far too high:

    pre-training on notes: CE with label smoothing 0.05 over instrument ids, mixup's soft
                  targets
    pre-training on a multi-label store (rendered music, instrec.synth.corpus): a sigmoid
                  per class, element-wise BCE against the multi-hot (or mixed) targets,
                  each smoothed towards 0.5 by label_smoothing / 2
    fine-tuning:  a new sigmoid head over the IRMAS classes, element-wise BCE

A sigmoid stage is validated by F1-micro at its best threshold (and LRAP), a softmax one by
accuracy. After each sigmoid validation the threshold that maximises F1-micro is kept, and
saved with the model file.
"""

from __future__ import annotations

import math
import typing
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from instrec.errors import InstrecError
from instrec.metrics import lrap, threshold_sweep
from instrec.model.zoo import Recognizer
from instrec.train.augment import BatchAugmenter
from instrec.train.config import Config
from instrec.train.schedule import warmup_cosine

DEFAULT_THRESHOLD = 0.5  # sigmoid probability, kept when there is no validation split

# Divergence with every value finite (e.g. optim.peak_lr=1e3: the loss at 1e5 after one
# step, weights heading for 1e28, a model naming every instrument at 1.00). Each bound is
# far outside healthy training: the tiny test runs and the paper's recipes keep the loss
# and the gradient norm within 2x of their first values, while learning rates 1e3x too
# high put the loss 1e5x above it at once; one bad batch never stops a run (SUSTAIN).
LOSS_FACTOR = 10.0  # the training loss above 10x its first value ...
LOSS_FLOOR = 10.0  # ... and above 10 nats: confidently wrong on nearly every clip (CE or BCE)
GRADIENT_FACTOR = 1e3  # the gradient norm above 1000x its first value ...
GRADIENT_FLOOR = 1e3  # ... and above 1000 (healthy runs: about 1 to 20)
SUSTAIN = 3  # for this many steps in a row
# a parameter tensor's largest |w| beyond 1e4 x max(its size at the start, 1): Adam moves a
# weight by about the learning rate per step, so a paper-length run at 1e-3 (~7e4 steps)
# can move one by about 70 at most, and the sinc cut-offs (thousands of Hz) scale their own
WEIGHT_FACTOR = 1e4
# the validation score (pre-training: accuracy, fine-tuning: F1-micro) collapsed: after
# rising CHANCE_GAIN above a constant model's score it keeps under KEPT_GAIN of that gain
CHANCE_GAIN = 0.2
KEPT_GAIN = 0.1


class Training(L.LightningModule):
    """One training stage of a Recognizer: the loss is the only difference between them."""

    def __init__(self, model: Recognizer, config: Config) -> None:
        super().__init__()
        if config.trainer.channels_last:  # the 4-D weights; the body's activations follow them
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if config.trainer.compile:  # in place: the state dict keeps its keys
            model.compile()
        self.model = model
        self.config = config
        augment = config.augment
        self.augmenter = (
            BatchAugmenter(augment, model.config.sample_rate)
            if augment.mixup_p > 0 or augment.effects_ratio > 0
            else None
        )
        self.threshold = DEFAULT_THRESHOLD  # chosen on validation after each sigmoid epoch
        self.multi_label = config.stage == "finetune"  # pre-training: set by the data in setup
        self.divergence = Divergence()
        self._valid: list[tuple[torch.Tensor, torch.Tensor]] = []

    def setup(self, stage: str) -> None:
        """A pre-training is multi-label (sigmoid + BCE) when its store is."""
        data = self.trainer.datamodule  # type: ignore[attr-defined]
        self.multi_label = self.config.stage == "finetune" or bool(data.multi_label)

    def on_fit_end(self) -> None:
        """The model leaves training in the usual memory format (trainer.channels_last is
        how training computes, not what the model file holds)."""
        self.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]

    # ---- the step -------------------------------------------------------------------

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        waves, targets = batch  # (batch, samples), (batch, classes)
        if self.augmenter is not None:
            with torch.autocast(self.device.type, enabled=False):  # effects and LUFS in fp32
                waves, targets = self.augmenter(waves, targets, generator=self._step_generator())
        logits = self.model(waves)  # (batch, classes)
        loss = self.loss(logits, targets)
        value = float(loss.detach())  # a NaN/inf loss must not reach the weights
        self._stop_if(
            f"the training loss is {value} (not finite)"
            if not math.isfinite(value)
            else self.divergence.rising("training loss", value, LOSS_FACTOR, LOSS_FLOOR)
        )
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Single-label pre-training: softmax CE against (soft, mixed) targets with label
        smoothing; otherwise one sigmoid per class, binary CE against the multi-hot (or
        mixed) targets, smoothed towards 0.5 (fine-tuning configs have no smoothing)."""
        smoothing = self.config.optim.label_smoothing
        if not self.multi_label:
            return F.cross_entropy(logits, targets, label_smoothing=smoothing)
        smoothed = targets * (1 - smoothing) + smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, smoothed)

    def configure_optimizers(self) -> Any:
        optim = self.config.optim
        optimizer = torch.optim.Adam(
            self.parameters(), lr=optim.peak_lr, weight_decay=optim.weight_decay
        )
        per_epoch = self.trainer.datamodule.steps_per_epoch()  # type: ignore[attr-defined]
        total = per_epoch * self.config.trainer.epochs
        warmup = round(per_epoch * optim.warmup_epochs)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _step_generator(self) -> torch.Generator:
        """The augmentation draws of this step, seeded by (seed, rank, step): reproducible,
        the same after a resume, different on every GPU."""
        key = [self.config.seed, self.global_rank, self.global_step]
        seed = int(np.random.SeedSequence(key).generate_state(1)[0])
        return torch.Generator(device=self.device).manual_seed(seed)

    def _stop_if(self, problem: str | None) -> None:
        """Stop every rank if any rank found a problem; raised before the step that showed it
        is saved, so the checkpoints written so far stay, and fit() writes no model file."""
        if self.trainer.strategy.reduce_boolean_decision(problem is not None, all=False):
            what = problem or "another process found training diverging (see its message)"
            raise InstrecError(
                f"step {self.global_step}: {what}; training diverged and was stopped, without a "
                f"model file (the last checkpoint is kept for inspection). Lower optim.peak_lr "
                f"(now {self.config.optim.peak_lr:g}) and train again"
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop before a NaN/inf gradient reaches the weights (a finite loss can still
        give one, e.g. through a zero-variance LDE component), or when the gradient norm
        explodes. fp16's grad scaler skips overflowing steps by itself, so its gradients
        are left to it."""
        if not self.trainer.precision.startswith("16"):
            self._stop_if(self._gradient_problem())

    def _gradient_problem(self) -> str | None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return None
        norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
        norm = float(torch.linalg.vector_norm(norms.double()))  # NaN/inf if any one is
        if not math.isfinite(norm):
            return "a gradient is not finite (the loss was)"
        return self.divergence.rising("gradient norm", norm, GRADIENT_FACTOR, GRADIENT_FLOOR)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The step, then a check of what it did to the weights, made before a checkpoint
        callback can save them."""
        super().optimizer_step(*args, **kwargs)
        self._stop_if(self.divergence.exploded(self._weight_sizes()))

    def on_train_start(self) -> None:
        """The weights' sizes as this process starts training (after a resume: restored)."""
        names = [name for name, _ in self.model.named_parameters()]
        self.divergence.limit_weights(names, self._weight_sizes())

    def _weight_sizes(self) -> torch.Tensor:
        """The largest |w| of every parameter tensor of the model, (tensors,)."""
        return torch.stack([p.detach().abs().max() for p in self.model.parameters()])

    # ---- validation -----------------------------------------------------------------

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        waves, targets = batch
        self._valid.append((self.model(waves).float(), targets))  # (batch, classes) twice

    def on_validation_epoch_end(self) -> None:
        """Metrics over the whole validation split, gathered from every GPU."""
        logits, targets = (self._gathered(torch.cat(p)) for p in zip(*self._valid, strict=True))
        self._valid.clear()
        accuracy = (logits.argmax(1) == targets.argmax(1)).float().mean()
        if not self.multi_label:
            metrics = {"valid_loss": F.cross_entropy(logits, targets), "valid_acc": accuracy}
        else:
            truth, scores = targets.cpu().numpy(), torch.sigmoid(logits).cpu().numpy()
            sweep = threshold_sweep(truth, scores)
            self.threshold = sweep["best_threshold"]
            metrics = {
                "valid_loss": F.binary_cross_entropy_with_logits(logits, targets),
                "valid_acc": accuracy,
                "valid_f1_micro": torch.tensor(sweep["best_f1_micro"]),
                "valid_threshold": torch.tensor(self.threshold),
            }
            if self.config.stage == "pretrain":  # many classes: how well it ranks them too
                metrics["valid_lrap"] = torch.tensor(lrap(truth, scores))
        self.log_dict(metrics, prog_bar=True, sync_dist=True)  # identical on every rank already
        name, score, chance = self._score_and_chance(metrics, targets)
        self._stop_if(self.divergence.collapsed(name, score, chance))

    def _score_and_chance(
        self, metrics: dict[str, torch.Tensor], targets: torch.Tensor
    ) -> tuple[str, float, float]:
        """The stage's validation score and the score of a constant model: the most frequent
        class's share (accuracy), or F1 of calling every class present (F1-micro)."""
        if not self.multi_label:
            counts = torch.bincount(targets.argmax(1), minlength=targets.shape[1])
            return "valid_acc", float(metrics["valid_acc"]), float(counts.max()) / len(targets)
        positive = float(targets.float().mean())
        return "valid_f1_micro", float(metrics["valid_f1_micro"]), 2 * positive / (1 + positive)

    def _gathered(self, x: torch.Tensor) -> torch.Tensor:
        """(this rank's validation items, classes) -> (every validation item once, classes):
        EpochSampler deals item k to rank k % world_size, so the ranks' shares are
        interleaved back and the wrap-around padding (duplicates) is cut."""
        if self.trainer.world_size == 1:
            return x
        gathered = typing.cast(torch.Tensor, self.all_gather(x))  # (world, per rank, classes)
        total = len(self.trainer.datamodule.valid_items)  # type: ignore[attr-defined]
        return gathered.transpose(0, 1).reshape(-1, x.shape[-1])[:total]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["instrec_threshold"] = self.threshold
        checkpoint["instrec_divergence"] = self.divergence.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.threshold = float(checkpoint.get("instrec_threshold", DEFAULT_THRESHOLD))
        self.divergence.load_state_dict(checkpoint.get("instrec_divergence", {}))


class Divergence:
    """The signs of a diverging run that keeps every value finite (bounds above).

    Each check returns what it found, or None. The first values and the best validation
    gain travel in checkpoints, so a resumed run is judged against its own start.
    """

    def __init__(self) -> None:
        self.first: dict[str, float] = {}  # "training loss", "gradient norm": the first step's
        self.streak: dict[str, int] = {}  # steps in a row over the bound
        self.best_gain = 0.0  # the best validation score's margin over chance
        self.weight_names: list[str] = []
        self.weight_limits: torch.Tensor | None = None  # (parameter tensors,)

    def rising(self, name: str, value: float, factor: float, floor: float) -> str | None:
        """`name` above `factor` x its first value and above `floor`, SUSTAIN steps in a row."""
        first = self.first.setdefault(name, value)
        high = value > max(factor * first, floor)
        self.streak[name] = self.streak.get(name, 0) + 1 if high else 0
        if self.streak[name] < SUSTAIN:
            return None
        return (
            f"the {name} has been over {factor:g}x its first value ({first:.3g}) for "
            f"{SUSTAIN} steps (now {value:.3g})"
        )

    def limit_weights(self, names: list[str], sizes: torch.Tensor) -> None:
        """Bounds for the parameter tensors `names`, from their largest |w| now."""
        self.weight_names = names
        self.weight_limits = WEIGHT_FACTOR * sizes.clamp(min=1.0)

    def exploded(self, sizes: torch.Tensor) -> str | None:
        """The first parameter tensor whose largest |w| is beyond its limit, if any."""
        if self.weight_limits is None:
            return None
        over = (sizes > self.weight_limits) | ~torch.isfinite(sizes)
        if not bool(over.any()):
            return None
        k = int(over.nonzero()[0, 0])
        return (
            f"the weights {self.weight_names[k]} reached |w| = {float(sizes[k]):.3g}, beyond "
            f"{float(self.weight_limits[k]):.3g} ({WEIGHT_FACTOR:g}x their size at the start)"
        )

    def collapsed(self, name: str, score: float, chance: float) -> str | None:
        """The validation score back at a constant model's after clearly rising above it."""
        gain = score - chance
        self.best_gain = max(self.best_gain, gain)
        if self.best_gain < CHANCE_GAIN or gain > KEPT_GAIN * self.best_gain:
            return None
        return (
            f"{name} fell to {score:.3f}, a constant model's score ({chance:.3f}), after "
            f"reaching {chance + self.best_gain:.3f}"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"first": dict(self.first), "best_gain": self.best_gain}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first = dict(state.get("first", {}))
        self.best_gain = float(state.get("best_gain", 0.0))
