"""Training data from a clip store: items as (waveform, target) pairs, and their order.

`ClipDataset` reads fixed-length clips (NSynth notes, IRMAS 1 s clips) and, for
pre-training, joins same-instrument notes with `concatenate_notes`. `EpochSampler` gives
each device its share of a permutation that depends only on (seed, epoch), so a run
resumed mid-epoch can skip exactly the clips it already trained on. Every random draw of
an item is seeded by (seed, epoch, item): a resumed run sees the same data as an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.train.augment import AugmentConfig, concatenate_notes

PARTNERS_PER_NOTE = 4  # same-instrument notes offered to one concatenation (each 0.2-0.6 s)


class ClipDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Clips of a fixed-length store keyed by (item, epoch): float32 (samples,), (classes,).

    With `augment.concat_p > 0`, a note is joined with probability concat_p to notes of
    the same group (NSynth: the same instrument) drawn from `items`, the training items.
    """

    def __init__(
        self,
        store: ClipStore,
        items: np.ndarray,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        if store.clip_length is None:
            raise InstrecError(
                f"{store.path}: training needs clips of one length (an nsynth or irmas-train "
                f"store), this {store.kind} store has whole files"
            )
        self.store = store
        self.augment = augment
        self.seed = seed
        self.partners = _members_by_group(store.groups[items], items)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        item, epoch = key
        wave = self.store.audio(item)  # (samples,)
        if self.augment is not None and self.augment.concat_p > 0:
            rng = np.random.default_rng([self.seed, epoch, item])
            wave = concatenate_notes(
                wave,
                self._partner_notes(item, rng),
                rng,
                length=wave.size,
                sr=self.store.sample_rate,
                p=self.augment.concat_p,
                seconds=self.augment.concat_seconds,
            )
        target = np.array(self.store.targets[item], dtype=np.float32)  # (classes,), a copy
        return torch.from_numpy(wave), torch.from_numpy(target)

    def _partner_notes(self, item: int, rng: np.random.Generator) -> list[np.ndarray]:
        group = self.partners.get(int(self.store.groups[item]), np.zeros(0, dtype=np.int64))
        others = group[group != item]
        if others.size == 0:
            return []
        chosen = rng.choice(others, size=min(PARTNERS_PER_NOTE, others.size), replace=False)
        return [self.store.audio(int(i)) for i in chosen]


def _members_by_group(groups: np.ndarray, items: np.ndarray) -> dict[int, np.ndarray]:
    """group id -> the items in it, from parallel (N,) arrays (an empty split has none)."""
    if items.size == 0:
        return {}
    order = np.argsort(groups, kind="stable")
    ids, starts = np.unique(groups[order], return_index=True)
    return {
        int(group): members
        for group, members in zip(ids, np.split(items[order], starts[1:]), strict=True)
    }


class EpochSampler(Sampler[tuple[int, int]]):
    """(item, epoch) keys: this rank's share of the items, shuffled by (seed, epoch).

    Every rank gets ceil(len(items) / world_size) keys (the permutation is padded by
    wrapping around, as DistributedSampler does). `resume(epoch, skip)` makes the next
    iteration start `skip` keys into `epoch`; later iterations start at the beginning.
    Lightning calls `set_epoch` before each epoch.
    """

    def __init__(
        self,
        items: np.ndarray,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(items) == 0:
            raise InstrecError("no items to iterate over (is the split empty?)")
        self.items = np.asarray(items, dtype=np.int64)
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def __len__(self) -> int:
        return -(-len(self.items) // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.items
        if self.shuffle:
            order = order[np.random.default_rng([self.seed, self.epoch]).permutation(len(order))]
        order = np.resize(order, len(self) * self.world_size)  # pad by wrapping around
        mine = order[self.rank :: self.world_size]
        skip, self.skip = self.skip, 0
        epoch = self.epoch
        for item in mine[skip:]:
            yield int(item), epoch
