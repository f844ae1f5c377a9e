"""Training data from a clip store: items as (waveform, target) pairs, and their order.

`ClipDataset` reads fixed-length clips (NSynth notes, IRMAS 1 s clips) and, for
pre-training, joins same-instrument notes with `concatenate_notes`. `EpochSampler` gives
each device its share of a permutation that depends only on (seed, epoch), so a run
resumed mid-epoch can skip exactly the clips it already trained on. Every random draw of
an item is seeded by (seed, epoch, item): a resumed run sees the same data as an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from instrec.data.store import ClipStore
from instrec.errors import InstrecError
from instrec.train.augment import AugmentConfig, concatenate_notes

PARTNERS_PER_NOTE = 4  # same-instrument notes offered to one concatenation


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
        return self.__getitems__([key])[0]

    def __getitems__(
        self, keys: Sequence[tuple[int, int]]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The clips of many keys at once; the DataLoader passes a whole batch's keys here.

        The notes come from one `ClipStore.batch` read and the partners of the notes that
        concatenation joins from another, instead of one read per clip and per partner, so
        a worker keeps up with a GPU step (benchmarks/loader_throughput.py, docs/gpu.md).
        Items, order and random draws are those of one key at a time. Reads follow the
        sampler's order: sorting them costs more (a gather of the batch) than it saves once
        the store is in the page cache, and random notes of a large store are not
        contiguous either way.
        """
        items = np.fromiter((item for item, _ in keys), dtype=np.int64, count=len(keys))
        waves = self.store.batch(items)  # (keys, samples) float32, a fresh array
        if self.augment is not None and self.augment.concat_p > 0:
            self._concatenate(waves, keys, self.augment)
        targets = np.array(self.store.targets[items], dtype=np.float32)  # (keys, classes)
        return list(zip(torch.from_numpy(waves), torch.from_numpy(targets), strict=True))

    def _concatenate(
        self, waves: np.ndarray, keys: Sequence[tuple[int, int]], augment: AugmentConfig
    ) -> None:
        """Join rows of `waves` (in place) to same-group partners. A row's draws are seeded
        by (seed, epoch, item): first its partners, then concatenate_notes' own, whose first
        draw decides whether the note is joined at all (u < concat_p). Peeking at that draw
        lets only the joined rows' partners be read (in one store read): at concat_p 0.5,
        half the partner reads, which are most of a batch's cost."""
        joined: list[tuple[int, np.random.Generator, np.ndarray]] = []
        for row, (item, epoch) in enumerate(keys):
            rng = np.random.default_rng([self.seed, epoch, item])
            partners = self._partners(item, rng)
            if partners.size and _peek_uniform(rng) < augment.concat_p:
                joined.append((row, rng, partners))
        if not joined:
            return
        wanted = np.concatenate([partners for _, _, partners in joined])
        distinct, where = np.unique(wanted, return_inverse=True)
        notes = self.store.batch(distinct)  # (distinct partners, samples)
        ends = np.cumsum([partners.size for _, _, partners in joined])
        for (row, rng, _), rows in zip(joined, np.split(where, ends[:-1]), strict=True):
            waves[row] = concatenate_notes(
                waves[row],
                [notes[k] for k in rows],
                rng,
                length=waves.shape[1],
                sr=self.store.sample_rate,
                p=augment.concat_p,
                mode=augment.concat_mode,
                trim_db=augment.concat_trim_db,
                seconds=augment.concat_seconds,
            )

    def _partners(self, item: int, rng: np.random.Generator) -> np.ndarray:
        """Up to PARTNERS_PER_NOTE other items of `item`'s group, drawn from `rng`."""
        group = self.partners.get(int(self.store.groups[item]), np.zeros(0, dtype=np.int64))
        others = group[group != item]
        if others.size == 0:
            return others
        return rng.choice(others, size=min(PARTNERS_PER_NOTE, others.size), replace=False)


def _peek_uniform(rng: np.random.Generator) -> float:
    """The uniform [0, 1) draw `rng.random()` would give next, leaving `rng` where it was."""
    state = rng.bit_generator.state
    value = rng.random()
    rng.bit_generator.state = state
    return value


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
