"""Window logits of a signal: each 1 s window alone, or pooled from frames shared over chunks.

Windows are computed one of two ways (see Geometry): each window alone through the whole
network, in batches, exactly as evaluation does; or, for models whose receptive field is
narrow (or with `fast`), the convolutional body once over long chunks (with margins wider
than its receptive field, so chunk edges change nothing) and every window LDE-pooled from
the frames it covers, frames needed by windows that straddle a chunk boundary being
carried to the next chunk. `SampleReader` lets a file arrive block by block, so memory
does not grow with its length.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from instrec.audio import window_starts
from instrec.errors import AudioError
from instrec.tagging.geometry import HOP, WINDOW, WINDOW_BATCH, Engine


class SampleReader:
    """Samples [start, end) of a signal arriving as consecutive blocks, for readers whose
    `start` never moves back: what lies before the latest start is let go, so a file of
    any length costs about one chunk of memory."""

    def __init__(self, blocks: Iterable[np.ndarray], total: int, name: str = "<array>") -> None:
        self.total = total  # samples the blocks add up to
        self.name = name  # for errors
        self._blocks = iter(blocks)
        self._buffer = np.zeros(0, np.float32)
        self._offset = 0  # signal index of _buffer[0]

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) (end clipped to the signal's length) as float32."""
        if start < self._offset:
            raise ValueError(f"SampleReader cannot go back to {start} (at {self._offset})")
        end = min(end, self.total)
        drop = min(start - self._offset, self._buffer.size)
        pieces, offset = [self._buffer[drop:]], self._offset + drop
        have = offset + pieces[0].size
        while have < end:
            block = next(self._blocks, None)
            if block is None:
                raise AudioError(self.name, f"ended at sample {have} of {self.total}")
            pieces.append(block.astype(np.float32, copy=False))
            have += block.size
        self._buffer = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        self._offset = offset
        return self._buffer[start - offset : end - offset]


def window_logits(
    engine: Engine, signal: np.ndarray | SampleReader
) -> tuple[np.ndarray, np.ndarray]:
    """(windows, classes) logits of each 1 s window of a 16 kHz signal of >= 1 s, and the
    windows' start samples (evaluation's grid: hop 0.5 s, last window flush with the end)."""
    reader = SampleReader([signal], signal.size) if isinstance(signal, np.ndarray) else signal
    starts = window_starts(reader.total, WINDOW, HOP)
    if engine.geometry.pooled:
        return _pooled_logits(engine, reader, starts), starts
    return _lone_window_logits(engine, reader, starts), starts


def _lone_window_logits(engine: Engine, reader: SampleReader, starts: np.ndarray) -> np.ndarray:
    """Each window through the whole network on its own, WINDOW_BATCH at a time."""
    frames = engine.geometry.window_frames
    no_carry = np.zeros((0, engine.frame_dim), np.float32)
    results = []
    for i in range(0, starts.size, WINDOW_BATCH):
        first, last = starts[i], starts[i : i + WINDOW_BATCH][-1]
        span = reader.read(first, last + WINDOW)  # samples of this batch's windows
        batch = np.stack(
            [span[s - first : s - first + WINDOW] for s in starts[i : i + WINDOW_BATCH]]
        )
        index = np.arange(len(batch) * frames).reshape(len(batch), frames)  # window b's frames
        results.append(engine.run(batch, no_carry, index)[0])
    return np.concatenate(results)


def _pooled_logits(engine: Engine, reader: SampleReader, starts: np.ndarray) -> np.ndarray:
    """The body over chunks of `chunk_frames` frames plus `margin_frames` each side; a
    window is pooled from the frames starting nearest its start sample as soon as its
    last frame exists, so memory stays constant however long the file is."""
    g = engine.geometry
    total = g.frames_for(reader.total)
    first = np.round(starts / g.samples_per_frame).astype(np.int64)
    first = np.minimum(first, total - g.window_frames)  # each window's first frame
    ends = first + g.window_frames
    span = np.arange(g.window_frames)
    carry = np.zeros((0, engine.frame_dim), np.float32)  # frames [carry_start, core_start)
    carry_start, done, results = 0, 0, []
    for core_start in range(0, total, g.chunk_frames):
        core_end = min(core_start + g.chunk_frames, total)
        in_start = max(0, core_start - g.margin_frames)  # frames
        in_end = (core_end + g.margin_frames) * g.samples_per_frame  # samples
        wave = reader.read(in_start * g.samples_per_frame, in_end)[None]  # (1, samples)
        ready = int(np.searchsorted(ends, core_end, side="right"))  # windows complete so far
        wanted = first[done:ready, None] + span  # (windows, window_frames) frame numbers
        index = np.where(wanted < core_start, wanted - carry_start, len(carry) + wanted - in_start)
        logits, frames = engine.run(wave, carry, index)  # (windows, classes), (frames, dim)
        results.append(logits)
        keep_from = min(int(first[ready]), core_end) if ready < first.size else core_end
        kept = np.concatenate([carry, frames[core_start - in_start : core_end - in_start]])
        carry, carry_start, done = kept[keep_from - carry_start :], keep_from, ready
    return np.concatenate(results)
