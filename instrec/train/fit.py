"""A whole training stage: model, data, run directory and Trainer wired together.

`pretrain` and `finetune` are the two stages (the Python API of `instrec pretrain` and
`instrec finetune`); `fit` runs one into a run directory and writes its model file.
Lightning supplies what we do not want to hand-write: DDP over GPUs and nodes (SLURM or
torchrun), synchronised batch norm, bf16 mixed precision, checkpoints, loggers, progress.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.model.io import load_model_file, save_model_file
from instrec.model.registry import resolve
from instrec.model.zoo import Recognizer, build_model
from instrec.train.config import Config, config_to_dict, dump_config, load_config
from instrec.train.data_module import ClipData
from instrec.train.lightning_module import Training
from instrec.train.run_dir import CHECKPOINTS, LAST_CHECKPOINT, LOGS, MODEL, open_run_dir


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
    init: str | Path | None = None,
) -> Path:
    """Pre-train on a note store (softmax over its instruments) or a music corpus (a
    sigmoid per label): a fresh model, or `init`'s body (the chain notes, then music);
    returns RUN/model.pt."""
    config = load_config(config) if isinstance(config, str) else config
    start = None if init is None else str(init)
    return fit(_with_stage(config, "pretrain"), data, out, start, resume, callbacks)


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
    with quiet_third_parties():
        trainer = make_trainer(config, out, callbacks)
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
    path = Path(init) / MODEL if Path(init).is_dir() else resolve(init, "pt")
    model = load_model_file(path).model
    model.replace_head(len(classes))
    model.train()
    return model, str(path.resolve())


class _LightningChatter(logging.Filter):
    """Drops Lightning's promotional tips, its banner lines for device kinds this machine
    does not have ("TPU available: False, ...") and its note that the last epoch was
    reached (our own line says the model was written); everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (
            text.startswith("💡")
            or re.match(r"\w+ available: False", text)
            or text.startswith("`Trainer.fit` stopped: `max_epochs")
        )


_CHATTER = _LightningChatter()


@contextlib.contextmanager
def quiet_third_parties() -> Iterator[None]:
    """Keep a run's output to its progress bar and our own lines: no promotional tips, no
    deprecation warnings raised inside Lightning or torch (theirs to fix, not the user's),
    no advice that does not apply to how instrec drives Lightning."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addFilter(_CHATTER)
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, FutureWarning):
                warnings.filterwarnings("ignore", category=category, module=r"(lightning|torch)\.")
            # EpochSampler resumes the data order and shards itself; tiny runs have fewer
            # batches than the logging interval and use no loader workers on purpose
            for message in (
                "dataloader is not resumable",
                "does not have many workers",
                "smaller than the logging interval",
            ):
                warnings.filterwarnings("ignore", message=f".*{message}.*")
            yield
    finally:
        logger.removeFilter(_CHATTER)


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
