"""`ClipData`: training and validation batches from a clip store, for Lightning.

Each device gets its share of every batch from `EpochSampler`, which also resumes the
training order mid-epoch after a restart (Lightning's own samplers are off). A store whose
items may hold several labels (`multi_label`: a rendered music corpus) makes a
pre-training multi-label (instrec.train.lightning_module).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.train.config import Config
from instrec.train.dataset import ClipDataset, EpochSampler


class ClipData(L.LightningDataModule):
    """Training and validation batches from a store; the training order resumes mid-epoch."""

    def __init__(self, store: ClipStore, config: Config) -> None:
        super().__init__()
        self.config = config
        self.multi_label = store.multi_label
        if self.multi_label and config.augment.concat_p > 0:
            raise InstrecError(
                f"{store.path}: augment.concat_p is {config.augment.concat_p:g}, but concatenation "
                "joins clips of one group under the first clip's labels, wrong where a clip "
                "holds several instruments: set augment.concat_p=0 (the *pretrain_music configs do)"
            )
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
        return clip_loader(dataset, sampler, batch, drop_last, self.config.trainer.num_workers)


def clip_loader(
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]],
    sampler: EpochSampler,
    batch_size: int,
    drop_last: bool,
    num_workers: int,
    pin_memory: bool | None = None,
) -> DataLoader:
    """The DataLoader training uses (timed by benchmarks/loader_throughput.py).

    Each worker gets a whole batch's keys (ClipDataset.__getitems__ reads them together).
    Workers stay up between epochs: a spawned worker takes seconds to start (it imports
    torch), which every epoch's first batch and every validation would otherwise wait for;
    EpochSampler runs in this process, so the order of each epoch is unaffected.
    `pin_memory` defaults to whether CUDA is available."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        multiprocessing_context="spawn" if num_workers else None,
    )
