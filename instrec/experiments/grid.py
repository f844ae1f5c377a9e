"""The grid's cells: planned from the experiments, keyed by their settings, run and cached.

One seed of a recipe is a fine-tuning *cell* (fine-tune, then evaluate on the test
store, and on the cross-source store where there is one), which starts from a
pre-training cell unless it starts from random weights; a pre-training cell may itself
start from another (notes, then music). Each cell lives in its own directory, named by
its settings and keyed by a digest of its resolved config, its data and its initial
weights:

    OUT/cells/pretrain/<model>-<augmentations>-s<seed>-<key>/run/model.pt
    OUT/cells/pretrain/<model>-music|notes-half|notes+music-s<seed>-<key>/run/model.pt
    OUT/cells/finetune/<model>-<init>-f<fraction>-s<seed>-<key>/run/model.pt
    (<model> is e.g. sharesnet18x2 for a model twice the preset's width: `widths`)
    OUT/cells/finetune/<...>/eval-<threshold protocol>-<data key>/metrics.json
    OUT/cells/finetune/<...>/eval-cross-source-model|valid-<data key>/metrics.json

so a rerun skips every finished cell, resumes an interrupted one from its checkpoint, and
a pre-trained checkpoint is shared by every fine-tuning that starts from it (Table II's
pre-trained row is Table III's "all" row, Fig. 4's 100 % point and `init`'s notes row).
The data's part of a key is each store's content digest (instrec.data.store), not where
or when it was prepared, so the same data prepared on another machine keeps the keys.

A grid longer than one session carries its finished cells in a results folder kept with
the code (`Results`): each finished cell is copied there, and a fresh OUT is seeded from
it, so those cells count as cached.

Equal pre-training compute (`init`): the note pre-training takes E epochs of S steps; the
music pre-training takes the same E x S optimiser steps on the corpus (music_schedule:
the fewest epochs, each of a seeded, exactly sized share of the corpus), and the chain
E // 2 epochs of notes, then the remaining steps on music from that model. Every stage
warms up over the same share of its steps as the note pre-training. Fig. 4's curve for
the best two initialisations is a *follow-up*: planned in run_grid once `init`'s cells
have their scores.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from instrec.atomic import atomic_path, write_text_atomic, writing
from instrec.data.store import ClipStore, content_digest, file_sha256
from instrec.errors import InstrecError
from instrec.experiments.presets import (
    ABLATIONS,
    CURVE_ROWS,
    DEFAULT_FRACTIONS,
    INIT_CURVE,
    Preset,
    Recipe,
    experiment_rows,
)
from instrec.train.config import Config, config_to_dict, load_config
from instrec.train.run_dir import CONFIG, MODEL

METRICS = "metrics.json"  # instrec.evaluate.METRICS (not imported: it loads torch)


@dataclass(frozen=True)
class Stores:
    """The prepared clip stores a grid runs on; the music corpus is made on first need."""

    notes: Path  # pre-training (NSynth or rendered notes)
    music: Path  # fine-tuning, with a validation split (IRMAS-train or rendered)
    test: Path  # evaluation (IRMAS-test or rendered)
    corpus: Path | None = None  # pre-training on music (instrec synth corpus), or:
    make_corpus: Callable[[], Path] | None = field(default=None, compare=False, repr=False)
    # rendered data only: test songs of instrument families no training data plays, with
    # a valid split to pick a threshold on (instrec.synth.benchmark)
    cross_source: Path | None = None

    def corpus_store(self) -> Path:
        """The corpus store (rendered and prepared now if it has to be)."""
        if self.corpus is not None:
            return self.corpus
        if self.make_corpus is None:
            raise InstrecError(
                "the init experiment pre-trains on rendered music: these stores have no corpus"
            )
        return self.make_corpus()


def store_digest(path: Path) -> str:
    """A digest of a store's content: what training reads, not when or where it was made."""
    return content_digest(path)[:16]


# trainer settings that change how fast a cell runs, not what it computes
SPEED_SETTINGS = ("channels_last", "compile")


def _result_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config without its speed-only settings: turning one on (or a newer
    instrec adding one) leaves every cell's key as it was."""
    trainer = {k: v for k, v in config["trainer"].items() if k not in SPEED_SETTINGS}
    return {**config, "trainer": trainer}


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Cell:
    """One training run (pre-training, or fine-tuning + evaluation) with every setting."""

    stage: str  # "pretrain" | "finetune"
    config_name: str
    overrides: tuple[str, ...]
    data: str  # the training store
    data_digest: str
    label: str  # readable settings, the first part of the directory name
    init: Cell | None = None  # the pre-training it starts from; None: scratch
    steps: int = 0  # a pre-training's optimiser steps (one device); 0 for fine-tuning

    @property
    def pretrain_steps(self) -> int:
        """Optimiser steps of every pre-training this cell's weights went through."""
        own = self.steps if self.stage == "pretrain" else 0
        return own + (0 if self.init is None else self.init.pretrain_steps)

    def config(self) -> Config:
        return load_config(self.config_name, self.overrides)

    @cached_property
    def key(self) -> str:
        """Digest of the resolved config, the training data and the initial weights."""
        return _digest(
            {
                "stage": self.stage,
                "config": _result_settings(config_to_dict(self.config())),
                "data": self.data_digest,
                "init": None if self.init is None else self.init.key,
            }
        )[:10]

    @property
    def name(self) -> str:
        return f"{self.label}-{self.key}"

    def directory(self, out: Path) -> Path:
        return out / "cells" / self.stage / self.name


Rows = dict[Recipe, tuple[Cell, ...]]


@dataclass(frozen=True)
class FollowUp:
    """An experiment planned once another's scores are in: Fig. 4's curve (one seed) for
    the `count` rows of `source` with the best mean F1-micro."""

    experiment: str
    source: str
    fractions: tuple[float, ...]
    plan: Callable[[Recipe], Cell]  # a recipe's fine-tuning cell for the curve's seed
    count: int = CURVE_ROWS

    def rows(self, source: Rows, metrics: dict[str, dict[str, Any]]) -> Rows:
        """The curve's rows for the best rows of `source` that have a finished seed."""
        scored = [
            (float(np.mean([metrics[c.key]["f1_micro"] for c in done])), k, recipe)
            for k, (recipe, cells) in enumerate(source.items())
            if (done := [c for c in cells if c.key in metrics])
        ]
        best = [recipe for _, _, recipe in sorted(scored, key=lambda s: (-s[0], s[1]))]
        return {
            replace(recipe, fraction=f): (self.plan(replace(recipe, fraction=f)),)
            for recipe in best[: self.count]
            for f in self.fractions
        }


@dataclass(frozen=True)
class Grid:
    """What to run: experiment -> recipe -> one fine-tuning cell per seed, and the
    experiments planned after those have run."""

    rows: dict[str, Rows]
    follow_ups: tuple[FollowUp, ...] = ()

    def finetune_cells(self) -> list[Cell]:
        return _unique(cell for rows in self.rows.values() for c in rows.values() for cell in c)

    def pretrain_cells(self) -> list[Cell]:
        """Every pre-training the fine-tunings need, each after the one it starts from."""
        return _pretrainings(self.finetune_cells())


def _pretrainings(finetunes: Iterable[Cell]) -> list[Cell]:
    chains: list[Cell] = []
    for cell in finetunes:
        chain, parent = [], cell.init
        while parent is not None:
            chain.append(parent)
            parent = parent.init
        chains += reversed(chain)
    return _unique(chains)


def _unique(cells: Iterable[Cell]) -> list[Cell]:
    return list(dict.fromkeys(cells))


def plan_grid(
    experiments: Sequence[str],
    preset: Preset,
    seeds: Sequence[int],
    stores: Stores,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    overrides: Sequence[str] = (),
) -> Grid:
    """Every cell the experiments need; cells with equal settings are one cell."""
    model = load_config(preset.pretrain, overrides).model.name
    planner = Planner(preset, stores, tuple(overrides))
    rows: dict[str, Rows] = {}
    follow_ups = []
    for experiment in experiments:
        rows[experiment] = {
            recipe: tuple(planner.finetune_cell(recipe, seed) for seed in seeds)
            for recipe in experiment_rows(experiment, model, fractions, preset.ship_init)
        }
        if experiment == "init":
            plan = functools.partial(planner.finetune_cell, seed=seeds[0])
            follow_ups.append(FollowUp(INIT_CURVE, "init", tuple(sorted(fractions)), plan))
    return Grid(rows, tuple(follow_ups))


def music_schedule(steps: int, items: int, batch: int) -> tuple[int, float]:
    """(epochs, data.fraction) that make a pre-training on a corpus of `items` training
    clips take exactly `steps` optimiser steps of `batch` clips: the fewest epochs whose
    steps divide `steps` and fit the corpus (one epoch where the corpus has steps x batch
    clips: every clip seen once), each of a seeded share of exactly steps/epochs x batch
    clips (ClipStore.indices draws a corpus fraction exactly)."""
    if items < batch:
        raise InstrecError(
            f"the corpus has {items} training clips, fewer than one batch of {batch}"
        )
    epochs = next(e for e in range(1, steps + 1) if steps % e == 0 and steps // e * batch <= items)
    return epochs, steps // epochs * batch / items


class Planner:
    """Turns recipes into cells for one preset, stores and overrides (digests and step
    counts worked out once)."""

    def __init__(self, preset: Preset, stores: Stores, overrides: tuple[str, ...]) -> None:
        self.preset, self.stores, self.overrides = preset, stores, overrides
        self.notes_digest = store_digest(stores.notes)
        self.music_digest = store_digest(stores.music)

    @functools.cached_property
    def corpus(self) -> tuple[Path, str, int]:
        """(the corpus store, its digest, its training clips)."""
        path = self.stores.corpus_store()
        return path, store_digest(path), int(ClipStore.open(path).indices("train").size)

    @functools.cached_property
    def notes_store(self) -> ClipStore:
        return ClipStore.open(self.stores.notes)

    def notes_steps(self, overrides: tuple[str, ...]) -> tuple[int, int]:
        """(epochs, steps per epoch) of the note pre-training with these overrides (on one
        device: its training items over the batch size, as ClipData counts them)."""
        config = load_config(self.preset.pretrain, overrides)
        items = self.notes_store.indices("train", config.data.fraction, config.seed)
        return config.trainer.epochs, items.size // config.trainer.batch_size

    @functools.cached_property
    def base_width(self) -> float:
        """The preset's model width multiplier (with the overrides): what `widths` scales."""
        options = load_config(self.preset.pretrain, self.overrides).model.options
        return float(options.get("width_multiplier", 1.0))

    def width_overrides(self, recipe: Recipe) -> tuple[str, ...]:
        """A wider recipe's model width; none at width 1, so those cells keep their keys."""
        if recipe.width == 1:
            return ()
        return (f"model.options.width_multiplier={self.base_width * recipe.width!r}",)

    def finetune_cell(self, recipe: Recipe, seed: int) -> Cell:
        backbone = (f"model.name={recipe.model}", *self.width_overrides(recipe))
        common = (*self.overrides, *backbone, f"seed={seed}")
        init = None if recipe.pretrain is None else self.pretrain_cell(recipe, seed, common)
        tag = "scratch" if init is None else f"pre-{recipe.init.replace('+', '-')}"
        return Cell(
            "finetune",
            self.preset.finetune if init is not None else self.preset.scratch,
            (*common, f"data.fraction={recipe.fraction}"),
            str(self.stores.music),
            self.music_digest,
            f"{recipe.backbone}-{tag}-f{recipe.fraction:g}-s{seed}",
            init,
        )

    def pretrain_cell(self, recipe: Recipe, seed: int, common: tuple[str, ...]) -> Cell:
        """The pre-training a recipe's fine-tuning starts from (the last of a chain)."""
        assert recipe.pretrain is not None
        notes = (*common, *ABLATIONS[recipe.pretrain])
        epochs, per_epoch = self.notes_steps(notes)
        name = recipe.backbone
        if recipe.data == "notes":
            return self._notes_cell(notes, epochs, f"{name}-{recipe.pretrain}-s{seed}")
        if recipe.data == "music":
            return self._music_cell(common, epochs * per_epoch, f"{name}-music-s{seed}")
        if epochs < 2:
            raise InstrecError(
                f"the notes-then-music chain splits the pre-training's epochs: it needs "
                f"trainer.epochs of 2 or more (got {epochs})"
            )
        half = self._notes_cell(
            notes, epochs // 2, f"{name}-notes-half-s{seed}", self._warmup(epochs // 2)
        )
        rest = (epochs - epochs // 2) * per_epoch
        return self._music_cell(common, rest, f"{name}-notes+music-s{seed}", half)

    def _warmup(self, epochs: int) -> tuple[str, ...]:
        """Warm-up over the note pre-training's share of a stage of `epochs` epochs."""
        config = load_config(self.preset.pretrain, self.overrides)
        share = config.optim.warmup_epochs / config.trainer.epochs
        return (f"trainer.epochs={epochs}", f"optim.warmup_epochs={share * epochs!r}")

    def _notes_cell(
        self, overrides: tuple[str, ...], epochs: int, label: str, extra: tuple[str, ...] = ()
    ) -> Cell:
        overrides = (*overrides, *extra)
        steps = epochs * self.notes_steps(overrides)[1]
        return Cell(
            "pretrain",
            self.preset.pretrain,
            overrides,
            str(self.stores.notes),
            self.notes_digest,
            label,
            steps=steps,
        )

    def _music_cell(
        self, common: tuple[str, ...], steps: int, label: str, init: Cell | None = None
    ) -> Cell:
        """`steps` optimiser steps on the corpus (music_schedule), from `init` or scratch."""
        if steps < 1:
            raise InstrecError("the notes store has fewer training items than one batch")
        path, digest, items = self.corpus
        batch = load_config(self.preset.pretrain_music, common).trainer.batch_size
        epochs, fraction = music_schedule(steps, items, batch)
        overrides = (*common, *self._warmup(epochs), f"data.fraction={fraction!r}")
        return Cell(
            "pretrain", self.preset.pretrain_music, overrides, str(path), digest, label, init, steps
        )


# ---- running cells ----------------------------------------------------------------------


def _real_pretrain(config: Config, data: Path, out: Path, resume: bool) -> Path:
    from instrec.train.fit import pretrain

    return pretrain(config, data, out, resume=resume)


def _real_pretrain_from(config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
    """A pre-training that starts from another's model file (its body; a new head)."""
    from instrec.train.fit import fit

    return fit(config, data, out, init, resume)


def _real_finetune(config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
    from instrec.train.fit import finetune

    return finetune(config, data, init, out, resume=resume)


def _real_evaluate(
    model: Path, test: Path, out: Path, threshold_from: str, validation: Path, split: str
) -> dict[str, Any]:
    """evaluate_model's metrics plus the model's trainable parameter count and its
    multiply-accumulates on one second of audio (Fig. 7, `widths`)."""
    from instrec.evaluate import evaluate_model
    from instrec.model.io import load_model_file
    from instrec.model.zoo import count_macs, count_parameters

    metrics = evaluate_model(
        model,
        test,
        out,
        threshold_from,
        split,
        validation_store=validation,
        tsne_points=0,
        force=True,
    )
    network = load_model_file(model).model
    metrics["parameters"] = count_parameters(network)
    metrics["macs_per_second"] = count_macs(network, 1.0, network.config.sample_rate)
    return metrics


@dataclass(frozen=True)
class Steps:
    """The work a cell does; tests swap in fakes."""

    pretrain: Callable[[Config, Path, Path, bool], Path] = _real_pretrain
    finetune: Callable[[Config, Path, str, Path, bool], Path] = _real_finetune
    evaluate: Callable[[Path, Path, Path, str, Path, str], dict[str, Any]] = _real_evaluate
    pretrain_from: Callable[[Config, Path, str, Path, bool], Path] = _real_pretrain_from


@dataclass
class Outcome:
    """What a grid run did: metrics per finished fine-tuning cell (by key), counts, and
    the rows of the follow-up experiments it planned."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    rows: dict[str, Rows] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # keys of cells that failed or could not run


def say(message: str) -> None:
    print(f"[instrec] {message}", file=sys.stderr, flush=True)


def _write_cell_info(cell: Cell, directory: Path) -> None:
    info = {
        "stage": cell.stage,
        "config": cell.config_name,
        "overrides": list(cell.overrides),
        "data": cell.data,
        "data_digest": cell.data_digest,
        "init": None if cell.init is None else cell.init.name,
        "key": cell.key,
    }
    write_text_atomic(directory / "cell.json", json.dumps(info, indent=2) + "\n")


def _train(cell: Cell, out: Path, steps: Steps, step_text: str) -> Path:
    """The cell's model file: trained now, resumed, or found finished."""
    directory = cell.directory(out)
    run = directory / "run"
    if (run / MODEL).is_file():
        say(f"{step_text} {cell.stage} {cell.name}: cached")
        return run / MODEL
    resume = (run / CONFIG).is_file()
    if run.exists() and not resume:
        shutil.rmtree(run)  # created but never configured: nothing to keep
    say(f"{step_text} {cell.stage} {cell.name}: {'resuming' if resume else 'training'}")
    directory.mkdir(parents=True, exist_ok=True)
    _write_cell_info(cell, directory)
    config = cell.config()
    assert cell.init is None or cell.init.directory(out).is_dir()
    init = "scratch" if cell.init is None else str(cell.init.directory(out) / "run" / MODEL)
    if cell.stage == "finetune":
        return steps.finetune(config, Path(cell.data), init, run, resume)
    if cell.init is None:
        return steps.pretrain(config, Path(cell.data), run, resume)
    return steps.pretrain_from(config, Path(cell.data), init, run, resume)


IN_SOURCE = "in_source"  # the test store's evaluation; the others are cross-source ones


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a fine-tuned model: evaluate_model's store, split, threshold_from
    and validation store, and the directory it goes to, keyed by that data."""

    name: str  # eval-<name>-<data key>
    store: Path
    threshold_from: str
    validation: Path
    split: str = "auto"

    def directory(self, cell: Cell, out: Path) -> Path:
        data = _digest([store_digest(self.store), store_digest(self.validation)])[:8]
        return cell.directory(out) / f"eval-{self.name}-{data}"


def evaluations(stores: Stores, threshold_from: str) -> dict[str, Evaluation]:
    """A fine-tuning cell's evaluations by results key: IN_SOURCE (the test store, the
    threshold by `threshold_from`), and with a cross-source store its test split twice:
    "model" (the model's threshold, picked on the fine-tuning validation split) and
    "valid" (the threshold best on the cross-source valid split)."""
    found = {IN_SOURCE: Evaluation(threshold_from, stores.test, threshold_from, stores.music)}
    cross = stores.cross_source
    if cross is not None:
        found["model"] = Evaluation("cross-source-model", cross, "model", cross, "test")
        found["valid"] = Evaluation("cross-source-valid", cross, "validation", cross, "test")
    return found


def evaluation_dir(cell: Cell, out: Path, stores: Stores, threshold_from: str) -> Path:
    """Where a fine-tuning cell's evaluation on the test store goes."""
    return evaluations(stores, threshold_from)[IN_SOURCE].directory(cell, out)


def _read_metrics(path: Path) -> dict[str, Any] | None:
    """A finished evaluation's metrics.json; None where there is none yet."""
    if not path.is_file():
        return None
    metrics: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return metrics


def _run_cell(
    cell: Cell, stores: Stores, out: Path, threshold_from: str, steps: Steps, step_text: str
) -> tuple[bool, dict[str, Any] | None]:
    """Train (and evaluate) one cell unless finished; returns (was it finished already,
    for a fine-tuning cell the test store's metrics with the cross-source ones, if any,
    under "cross_source" by evaluations' key)."""
    if cell.stage == "pretrain":
        finished = (cell.directory(out) / "run" / MODEL).is_file()
        _train(cell, out, steps, step_text)
        return finished, None
    planned = evaluations(stores, threshold_from)
    found = {key: _read_metrics(e.directory(cell, out) / METRICS) for key, e in planned.items()}
    finished = all(metrics is not None for metrics in found.values())
    if finished:
        say(f"{step_text} {cell.stage} {cell.name}: cached")
    else:
        model = _train(cell, out, steps, step_text)
        for key, e in planned.items():
            if found[key] is None:
                say(f"{step_text} evaluate {cell.name} on {e.store} ({e.threshold_from} threshold)")
                found[key] = steps.evaluate(
                    model, e.store, e.directory(cell, out), e.threshold_from, e.validation, e.split
                )
    metrics = found.pop(IN_SOURCE)
    assert metrics is not None
    if found:
        metrics = {**metrics, "cross_source": found}
    return finished, metrics


# ---- the results folder: finished cells carried from one session to the next ----------

SUMS = "SHA256SUMS"  # per kept cell: `sha256  relative path` per file (sha256sum -c reads it)
MODEL_LIMIT = 8 * 2**20  # bytes: a fine-tuned model file up to this size is kept
_SUM_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


@dataclass(frozen=True)
class Results:
    """A folder kept with the code (e.g. benchmarks/results/reproduce_small_init) that
    holds every finished cell's small files, so that a fresh clone resumes the grid:

        DIR/cells/<stage>/<cell name>/cell.json, SHA256SUMS
        DIR/cells/finetune/<cell name>/eval-<protocol>-<data key>/metrics.json (each
                                                      evaluation's, cross-source ones too)
        DIR/cells/<stage>/<cell name>/run/model.pt   (a pre-training's always: fine-tunings
                                                      start from it; a fine-tuning's when
                                                      at most `model_limit` bytes)

    The cell name ends in its key, so a different file under the same name is damage or
    another run of the same cell: refused, never replaced.
    """

    folder: Path
    model_limit: int = MODEL_LIMIT

    def cell_folder(self, cell: Cell) -> Path:
        return cell.directory(self.folder)

    def seed(self, cell: Cell, out: Path) -> bool:
        """Copy the cell's kept files into its OUT folder where they are missing, each
        checked against its recorded sha256 first; returns whether any is kept."""
        kept, sums = self.cell_folder(cell), _read_sums(self.cell_folder(cell))
        for relative, digest in sums.items():
            source, target = kept / relative, cell.directory(out) / relative
            if not source.is_file() or file_sha256(source) != digest:
                raise InstrecError(
                    f"{source}: missing or damaged (its sha256 is not the one in "
                    f"{kept / SUMS}); remove {kept} to run the cell again"
                )
            if not target.is_file():
                _copy(source, target)
            elif file_sha256(target) != digest:
                raise _differs(target, source)
        return bool(sums)

    def keep(self, cell: Cell, out: Path, evaluations: Sequence[Path] = ()) -> None:
        """Copy a finished cell's small files in (those already there are left alone)."""
        kept, sums = self.cell_folder(cell), _read_sums(self.cell_folder(cell))
        before = dict(sums)
        for relative in self._kept_files(cell, out, evaluations):
            source, target = cell.directory(out) / relative, kept / relative
            digest, recorded = file_sha256(source), sums.get(relative)
            if recorded is None and target.is_file():
                recorded = file_sha256(target)  # copied, then stopped before SHA256SUMS
            if recorded not in (None, digest):
                raise _differs(target, source)
            if not target.is_file():
                _copy(source, target)
            sums[relative] = digest
        if sums != before:
            lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
            write_text_atomic(kept / SUMS, lines)

    def _kept_files(self, cell: Cell, out: Path, evaluations: Sequence[Path]) -> list[str]:
        """The files of a finished cell to keep, relative to its folder."""
        directory = cell.directory(out)
        names = ["cell.json"]
        names += [f"{e.relative_to(directory).as_posix()}/{METRICS}" for e in evaluations]
        model = directory / "run" / MODEL
        if model.is_file() and (
            cell.stage == "pretrain" or model.stat().st_size <= self.model_limit
        ):
            names.append(f"run/{MODEL}")
        return [name for name in names if (directory / name).is_file()]


def _read_sums(kept: Path) -> dict[str, str]:
    """A kept cell's SHA256SUMS as relative path -> sha256; none yet: empty."""
    try:
        text = (kept / SUMS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise InstrecError(f"{kept / SUMS}: unreadable ({error})") from None
    sums = {}
    for number, line in enumerate(text.splitlines(), start=1):
        found = _SUM_LINE.fullmatch(line)
        if found is None or found[2].startswith("/") or ".." in found[2].split("/"):
            raise InstrecError(
                f"{kept / SUMS}: line {number} is not `SHA256  PATH` (a path inside the cell)"
            )
        sums[found[2]] = found[1]
    return sums


def _copy(source: Path, target: Path) -> None:
    with writing(target), atomic_path(target) as temp:
        shutil.copyfile(source, temp)


def _differs(target: Path, source: Path) -> InstrecError:
    return InstrecError(
        f"{target}: differs from {source}, a file of the same cell (its name holds the "
        "cell's key): damaged, or the cell ran twice; remove one of them to go on"
    )


def run_grid(
    grid: Grid,
    stores: Stores,
    out: Path,
    threshold_from: str = "validation",
    steps: Steps | None = None,
    results: Results | None = None,
    after_cell: Callable[[Outcome], object] | None = None,
) -> Outcome:
    """Run every unfinished cell (pre-trainings first) and collect the evaluations; then
    plan and run the follow-up experiments (their rows are in the outcome).

    A failing cell is reported and skipped (with the cells that need it); the others
    still run. With `results`, OUT is first seeded from its kept cells and every finished
    cell is kept there; `after_cell` is called after each cell that ran or failed (to
    rewrite the report as it stands).
    """
    outcome = Outcome()
    run = functools.partial(
        _run_cells,
        stores=stores,
        out=out,
        threshold_from=threshold_from,
        steps=steps or Steps(),
        outcome=outcome,
        results=results,
        after_cell=after_cell or (lambda _: None),
    )
    run([*grid.pretrain_cells(), *grid.finetune_cells()])
    for follow in grid.follow_ups:
        rows = follow.rows(grid.rows[follow.source], outcome.metrics)
        outcome.rows[follow.experiment] = rows
        cells = _unique(cell for c in rows.values() for cell in c)
        run([cell for cell in cells if cell.key not in outcome.metrics], follow.experiment)
    return outcome


def _run_cells(
    cells: Sequence[Cell],
    what: str = "cell",
    *,
    stores: Stores,
    out: Path,
    threshold_from: str,
    steps: Steps,
    outcome: Outcome,
    results: Results | None,
    after_cell: Callable[[Outcome], object],
) -> None:
    """Run `cells` in order into `outcome` (seeded from `results` first, each finished
    one kept there); a cell whose initial weights failed fails."""
    if results is not None:
        seeded = sum(results.seed(cell, out) for cell in cells)
        say(f"{seeded} of {len(cells)} cells found finished in {results.folder}")
    for number, cell in enumerate(cells, start=1):
        step_text = f"{what} {number}/{len(cells)}"
        if cell.init is not None and cell.init.key in outcome.broken:
            outcome.failed.append(f"{cell.name}: its pre-training failed")
            outcome.broken.add(cell.key)
            continue
        try:
            finished, metrics = _run_cell(cell, stores, out, threshold_from, steps, step_text)
        except InstrecError as error:
            say(f"{step_text} {cell.name} failed: {error}")
            outcome.failed.append(f"{cell.name}: {error}")
            outcome.broken.add(cell.key)
            after_cell(outcome)
            continue
        outcome.cached += finished
        outcome.ran += not finished
        if metrics is not None:
            outcome.metrics[cell.key] = {**metrics, "pretrain_steps": cell.pretrain_steps}
        if results is not None:
            planned = evaluations(stores, threshold_from) if cell.stage == "finetune" else {}
            results.keep(cell, out, [e.directory(cell, out) for e in planned.values()])
        if not finished:
            after_cell(outcome)


def collect(grid: Grid, outcome: Outcome) -> dict[str, dict[Recipe, list[dict[str, Any]]]]:
    """experiment -> recipe -> the metrics of its finished seeds (follow-ups last)."""
    return {
        experiment: {
            recipe: [outcome.metrics[c.key] for c in cells if c.key in outcome.metrics]
            for recipe, cells in rows.items()
        }
        for experiment, rows in {**grid.rows, **outcome.rows}.items()
    }
