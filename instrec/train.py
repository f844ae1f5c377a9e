"""Pre-training on isolated notes and fine-tuning on music, with Lightning.

Read top to bottom: the LightningModule (`Training`) holds the whole recipe of a step:
augment the batch, forward, the loss, the warm-up + cosine schedule. `ClipData` serves
the batches, `fit` wires model, data, run directory and Trainer together, and the two
commands sit at the end.

    pre-training: CE with label smoothing 0.05 over instrument ids, mixup's soft targets
    fine-tuning:  a new sigmoid head over the IRMAS classes, element-wise BCE

Lightning supplies what we do not want to hand-write: DDP over GPUs and nodes (SLURM or
torchrun), synchronised batch norm, bf16 mixed precision, checkpoints, loggers, progress.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from instrec.augment import BatchAugmenter
from instrec.config import Config, builtin_names, config_to_dict, dump_config, load_config
from instrec.data.dataset import ClipDataset, EpochSampler
from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.metrics import threshold_sweep
from instrec.model.io import load_model_file, save_model_file
from instrec.model.zoo import Recognizer, build_model
from instrec.run_dir import CHECKPOINTS, LAST_CHECKPOINT, LOGS, MODEL, open_run_dir
from instrec.schedule import warmup_cosine

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


class ClipData(L.LightningDataModule):
    """Training and validation batches from a store; the training order resumes mid-epoch."""

    def __init__(self, store: ClipStore, config: Config) -> None:
        super().__init__()
        self.config = config
        self.train_items = store.indices("train", config.data.fraction, config.seed)
        self.valid_items = store.indices("valid")
        concat = config.augment if config.augment.concat_p > 0 else None
        self.train_set = ClipDataset(store, self.train_items, concat, config.seed)
        self.valid_set = ClipDataset(store, self.valid_items)

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch (incomplete last batches are dropped)."""
        per_device_items = -(-len(self.train_items) // self.world_size)
        return per_device_items // self.batch_per_device(per_device_items)

    def train_dataloader(self) -> DataLoader:
        # called after a checkpoint is restored, so global_step says where to resume
        sampler = EpochSampler(
            self.train_items, True, self.config.seed, self.fitting.global_rank, self.world_size
        )
        batch = self.batch_per_device(len(sampler))
        epoch, done = divmod(self.fitting.global_step, self.steps_per_epoch())
        sampler.resume(epoch, done * batch)  # (0, 0) on a fresh run
        return self._loader(self.train_set, sampler, batch, drop_last=True)

    def val_dataloader(self) -> Any:
        if len(self.valid_items) == 0:
            return []
        sampler = EpochSampler(
            self.valid_items, False, 0, self.fitting.global_rank, self.world_size
        )
        return self._loader(self.valid_set, sampler, self.batch_per_device(), drop_last=False)

    @property
    def fitting(self) -> L.Trainer:
        assert self.trainer is not None, "used before Trainer.fit"
        return self.trainer

    @property
    def world_size(self) -> int:
        return self.fitting.world_size

    def batch_per_device(self, items_per_device: int | None = None) -> int:
        """trainer.batch_size clips per step shared by all devices; checks it fits the data."""
        batch_size = self.config.trainer.batch_size
        if batch_size % self.world_size:
            raise InstrecError(
                f"trainer.batch_size {batch_size} does not divide over {self.world_size} devices"
            )
        per_device = batch_size // self.world_size
        if items_per_device is not None and items_per_device < per_device:
            raise InstrecError(
                f"{len(self.train_items)} training clips are fewer than one batch of "
                f"{batch_size}: lower trainer.batch_size"
            )
        return per_device

    def _loader(self, dataset: ClipDataset, sampler: EpochSampler, batch: int, drop_last: bool):
        workers = self.config.trainer.num_workers
        return DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
            multiprocessing_context="spawn" if workers else None,
        )


class ClipsPerSecond(L.Callback):
    """Shows training throughput (clips/s over all devices) next to the progress bar's ETA."""

    def __init__(self, clips_per_step: int) -> None:
        self.clips_per_step = clips_per_step
        self.last: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *_: Any) -> None:
        now = time.perf_counter()
        if self.last is not None:
            rate = self.clips_per_step / (now - self.last)
            module.log("clips/s", rate, prog_bar=True, logger=False)
        self.last = now

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.last = None  # do not count validation time as training time


# ---- a whole run ------------------------------------------------------------------------


def pretrain(
    config: Config | str,
    data: str | Path,
    out: str | Path,
    resume: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> Path:
    """Pre-train a fresh model on a note store (softmax over its classes); returns RUN/model.pt."""
    config = load_config(config) if isinstance(config, str) else config
    return fit(_with_stage(config, "pretrain"), data, out, None, resume, callbacks)


def finetune(
    config: Config | str,
    data: str | Path,
    init: str | Path,
    out: str | Path,
    resume: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> Path:
    """Fine-tune a pre-trained model file (or "scratch": a fresh model) on a music store with
    a new sigmoid head over its classes; returns RUN/model.pt with the validation threshold."""
    config = load_config(config) if isinstance(config, str) else config
    return fit(_with_stage(config, "finetune"), data, out, str(init), resume, callbacks)


def _with_stage(config: Config, stage: str) -> Config:
    if config.stage != stage:
        raise InstrecError(
            f"this is a {config.stage} config; `instrec {stage}` needs a {stage} one"
        )
    return config


def fit(
    config: Config,
    data: str | Path,
    out: str | Path,
    init: str | None,
    resume: bool,
    callbacks: Sequence[L.Callback] = (),
) -> Path:
    """Run one training stage into the run directory `out`; returns the model file."""
    out, data = Path(out), Path(data)
    L.seed_everything(config.seed, verbose=False)
    store = ClipStore.open(data)
    model, init_text = initial_model(config, store.classes, init)
    info = {"stage": config.stage, "seed": config.seed, "data": str(data.resolve()),
            "init": init_text, "command": sys.argv}  # fmt: skip
    if getattr(rank_zero_only, "rank", 0) == 0:
        checkpoint = open_run_dir(out, dump_config(config), info, resume)
    else:  # ranks started by torchrun/SLURM: rank 0 prepares the directory
        checkpoint = out / LAST_CHECKPOINT if resume and (out / LAST_CHECKPOINT).is_file() else None
    module = Training(model, config)
    trainer = make_trainer(config, out, callbacks)
    with warnings.catch_warnings():
        # Lightning cannot see that EpochSampler resumes the data order itself
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, datamodule=ClipData(store, config), ckpt_path=checkpoint)
    if trainer.interrupted:
        raise InstrecError(f"{out}: training was interrupted; continue it with --resume")
    path = out / MODEL
    if trainer.is_global_zero:
        meta = {"stage": config.stage, "init": init_text, "data": str(data.resolve()),
                "config": config_to_dict(config), "metrics": _plain(trainer.callback_metrics),
                "steps": trainer.global_step}  # fmt: skip
        save_model_file(path, model, store.classes, module.threshold, meta)
        print(f"instrec {config.stage}: wrote {path}", file=sys.stderr)
    return path


def initial_model(
    config: Config, classes: Sequence[str], init: str | None
) -> tuple[Recognizer, str]:
    """The model a stage starts from and how it was made: a fresh `config.model` (pre-training,
    `scratch`), or a model file's body with a new head for `classes`."""
    if init is None or init == "scratch":
        model = build_model(config.model.name, len(classes), **config.model.options)
        return model, "scratch"
    path = Path(init) / MODEL if Path(init).is_dir() else Path(init)
    model = load_model_file(path).model
    model.replace_head(len(classes))
    model.train()
    return model, str(path.resolve())


def make_trainer(config: Config, out: Path, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """A Trainer for this machine: DDP when there are several devices or nodes, bf16 on GPU."""
    t = config.trainer
    on_gpu = t.accelerator in ("gpu", "cuda") or (
        t.accelerator == "auto" and torch.cuda.is_available()
    )
    precision = t.precision if t.precision != "auto" else ("bf16-mixed" if on_gpu else "32-true")
    checkpoints = ModelCheckpoint(
        dirpath=out / CHECKPOINTS,
        save_top_k=0,
        save_last=True,
        every_n_train_steps=t.checkpoint_every_steps,
        enable_version_counter=False,
    )
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        precision=precision,  # type: ignore[arg-type]
        sync_batchnorm=t.sync_batchnorm and on_gpu,  # torch's SyncBatchNorm is GPU-only
        max_epochs=t.epochs,
        use_distributed_sampler=False,  # EpochSampler shards the data itself
        num_sanity_val_steps=0,
        log_every_n_steps=t.log_every_steps,
        default_root_dir=out,
        logger=[
            CSVLogger(out / LOGS, name="csv"),
            TensorBoardLogger(out / LOGS, name="tensorboard", default_hp_metric=False),
        ],
        callbacks=[
            checkpoints,
            LearningRateMonitor(logging_interval="step"),
            ClipsPerSecond(t.batch_size),
            *callbacks,
        ],
        enable_model_summary=False,
    )


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items() if math.isfinite(float(value))}


# ---- `instrec pretrain`, `instrec finetune` ---------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    default = "pretrain" if command == "pretrain" else "finetune"
    parser.add_argument(
        "--config",
        default=default,
        help=f"a YAML config file or a built-in name ({', '.join(builtin_names())})",
    )
    parser.add_argument("--data", required=True, help="the clip store to train on")
    if command == "finetune":
        parser.add_argument(
            "--init",
            required=True,
            help="a pre-trained model file (or its run directory), or 'scratch' for random "
            "weights (then the config's model section picks the architecture)",
        )
        parser.add_argument(
            "--fraction",
            type=float,
            default=None,
            help="train on this share of the training songs, drawn per class with the seed "
            "(same as --set data.fraction=F)",
        )
    parser.add_argument("--out", required=True, help="the run directory to create")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set trainer.epochs=2 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=None, help="same as --set seed=N")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (same config and data)",
    )


def run(args: argparse.Namespace) -> int:
    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "fraction", None) is not None:
        overrides.append(f"data.fraction={args.fraction}")
    config = load_config(args.config, overrides)
    if args.command == "pretrain":
        pretrain(config, args.data, args.out, resume=args.resume)
    else:
        finetune(config, args.data, args.init, args.out, resume=args.resume)
    return 0
