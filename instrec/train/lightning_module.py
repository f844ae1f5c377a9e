"""`Training`: the whole recipe of a training step, as a LightningModule.

Augment the batch, forward, the loss, the warm-up + cosine schedule, and a stop before a
NaN/inf loss or gradient reaches the weights:

    pre-training: CE with label smoothing 0.05 over instrument ids, mixup's soft targets
    fine-tuning:  a new sigmoid head over the IRMAS classes, element-wise BCE

After each fine-tuning validation the threshold that maximises F1-micro is kept, and saved
with the model file.
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
from instrec.metrics import threshold_sweep
from instrec.model.zoo import Recognizer
from instrec.train.augment import BatchAugmenter
from instrec.train.config import Config
from instrec.train.schedule import warmup_cosine

DEFAULT_THRESHOLD = 0.5  # sigmoid probability, kept when there is no validation split


class Training(L.LightningModule):
    """One training stage of a Recognizer: the loss is the only difference between them."""

    def __init__(self, model: Recognizer, config: Config) -> None:
        super().__init__()
        self.model = model
        self.config = config
        augment = config.augment
        self.augmenter = (
            BatchAugmenter(augment, model.config.sample_rate)
            if augment.mixup_p > 0 or augment.effects_ratio > 0
            else None
        )
        self.threshold = DEFAULT_THRESHOLD  # chosen on validation after each fine-tuning epoch
        self._valid: list[tuple[torch.Tensor, torch.Tensor]] = []

    # ---- the step -------------------------------------------------------------------

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        waves, targets = batch  # (batch, samples), (batch, classes)
        if self.augmenter is not None:
            with torch.autocast(self.device.type, enabled=False):  # effects and LUFS in fp32
                waves, targets = self.augmenter(waves, targets, generator=self._step_generator())
        logits = self.model(waves)  # (batch, classes)
        loss = self.loss(logits, targets)
        value = float(loss.detach())  # a NaN/inf loss must not reach the weights
        self._stop_if(not math.isfinite(value), f"the training loss is {value} (not finite)")
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Pre-training: softmax CE against (soft, mixed) targets with label smoothing;
        fine-tuning: one sigmoid per class, binary CE against the multi-hot targets."""
        if self.config.stage == "pretrain":
            return F.cross_entropy(
                logits, targets, label_smoothing=self.config.optim.label_smoothing
            )
        return F.binary_cross_entropy_with_logits(logits, targets)

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

    def _stop_if(self, bad: bool, what: str) -> None:
        """Stop every rank, if any rank saw `bad`, before the value reaches the weights;
        the last checkpoint stays good."""
        if self.trainer.strategy.reduce_boolean_decision(bad, all=False):
            raise InstrecError(
                f"step {self.global_step}: {what}; stopped. The last good checkpoint is kept "
                "for inspection; lower optim.peak_lr before training again"
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop before a NaN/inf gradient reaches the weights (a finite loss can still
        give one, e.g. through a zero-variance LDE component). fp16's grad scaler skips
        overflowing steps by itself, so its infinities are left to it."""
        if self.trainer.precision.startswith("16"):
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        bad = bool(grads) and not bool(
            torch.isfinite(torch.stack([torch.linalg.vector_norm(g) for g in grads])).all()
        )
        self._stop_if(bad, "a gradient is not finite (the loss was)")

    # ---- validation -----------------------------------------------------------------

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        waves, targets = batch
        self._valid.append((self.model(waves).float(), targets))  # (batch, classes) twice

    def on_validation_epoch_end(self) -> None:
        """Metrics over the whole validation split, gathered from every GPU."""
        logits, targets = (self._gathered(torch.cat(p)) for p in zip(*self._valid, strict=True))
        self._valid.clear()
        accuracy = (logits.argmax(1) == targets.argmax(1)).float().mean()
        if self.config.stage == "pretrain":
            metrics = {"valid_loss": F.cross_entropy(logits, targets), "valid_acc": accuracy}
        else:
            sweep = threshold_sweep(targets.cpu().numpy(), torch.sigmoid(logits).cpu().numpy())
            self.threshold = sweep["best_threshold"]
            metrics = {
                "valid_loss": F.binary_cross_entropy_with_logits(logits, targets),
                "valid_acc": accuracy,
                "valid_f1_micro": torch.tensor(sweep["best_f1_micro"]),
                "valid_threshold": torch.tensor(self.threshold),
            }
        self.log_dict(metrics, prog_bar=True, sync_dist=True)  # identical on every rank already

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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.threshold = float(checkpoint.get("instrec_threshold", DEFAULT_THRESHOLD))
