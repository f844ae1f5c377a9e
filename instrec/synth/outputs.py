"""Writing rendered datasets safely: atomic files, a manifest per run, resumable work.

Every file appears under its final name only when complete (temp file + rename), so an
interrupted render leaves nothing truncated and a rerun skips what exists. A manifest
records a run's options; rerunning into the same folder with other options is refused
rather than mixing two datasets silently.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile
from tqdm import tqdm

from instrec.atomic import atomic_path, write_text_atomic
from instrec.errors import InstrecError

Task = TypeVar("Task")
Result = TypeVar("Result")


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM wav atomically; `audio` is (samples,) or (samples, channels) float.
    Audio with NaN or infinity is a renderer fault: refused, never written as noise."""
    if not np.isfinite(audio).all():
        raise InstrecError(f"{path}: the rendered audio is not finite (a renderer fault)")
    with atomic_path(path) as temp:
        soundfile.write(
            temp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV"
        )


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def claim_folder(out_dir: Path, manifest_name: str, options: dict[str, Any]) -> Path:
    """Create `out_dir` (or resume in it) and return its manifest path.

    A folder whose manifest holds other options was rendered differently: refuse it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / manifest_name
    if manifest.exists():
        try:
            earlier = json.loads(manifest.read_text(encoding="utf-8")).get("options")
        except (OSError, ValueError) as error:
            raise InstrecError(f"{manifest}: unreadable manifest ({error})") from None
        if earlier != options:
            raise InstrecError(
                f"{manifest}: this folder was rendered with other options; "
                "choose a new output folder (or the same options to resume)"
            )
    write_json(manifest, {"options": options, "summary": None})
    return manifest


def run_tasks(
    function: Callable[[Task], Result],
    tasks: Sequence[Task],
    *,
    workers: int,
    desc: str,
    unit: str,
    progress: bool = True,
) -> Iterator[Result]:
    """Yield `function(task)` for every task (in completion order) under a progress bar.

    `workers` > 1 uses 'spawn' processes: a process forked after libfluidsynth has started
    hangs. Each process keeps its own long-lived synth between tasks.
    """
    bar = tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress)
    results: Iterable[Result]
    with bar:
        if workers == 1:
            results = map(function, tasks)
            for result in results:
                bar.update()
                yield result
            return
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, max(len(tasks), 1))) as pool:
            for result in pool.imap_unordered(function, tasks):
                bar.update()
                yield result
