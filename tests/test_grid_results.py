"""A grid longer than one session: its finished cells are kept in a results folder (--results)
and a fresh clone, with an empty OUT and its data prepared again, resumes from it.

Training is faked (tests/test_reproduce.py's FakeSteps count every call); the data is
prepared for real, so "prepared again" really is new stores with new headers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from datetime import datetime, tzinfo
from pathlib import Path

import numpy as np
import pytest
from dataset_trees import (
    prepare_store,
    tone,
    write_irmas_test_tree,
    write_irmas_train_tree,
    write_nsynth_tree,
    write_wav,
)
from test_reproduce import FakeSteps

from instrec.data import prepare
from instrec.data import store as st
from instrec.errors import InstrecError
from instrec.experiments import grid as gr
from instrec.experiments import reproduce as rp
from instrec.train.config import Config


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sources")
    nsynth = write_nsynth_tree(root / "nsynth")
    irmas = write_irmas_test_tree(write_irmas_train_tree(root / "irmas"), seconds=(3,))
    return nsynth, irmas


def job(tmp_path: Path, sources: tuple[Path, Path], **settings: object) -> rp.Job:
    """Table II and Fig. 3 at two seeds: 2 pre-trainings, then 2 random and 2 pre-trained
    fine-tunings."""
    nsynth, irmas = sources
    return rp.Job(
        tmp_path / "out", ("table2", "fig3"), seeds=2, nsynth=nsynth, irmas=irmas, workers=1,
        results=tmp_path / "results", **settings,  # type: ignore[arg-type]
    )  # fmt: skip


def kept(results: Path, pattern: str) -> list[Path]:
    return sorted((results / "cells").glob(pattern))


def check_sums(cell: Path) -> None:
    """What `sha256sum -c SHA256SUMS` checks in a kept cell's folder."""
    for line in (cell / gr.SUMS).read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((cell / name).read_bytes()).hexdigest() == digest


def test_a_fresh_clone_runs_no_finished_cell_again(
    sources: tuple[Path, Path], tmp_path: Path
) -> None:
    first = FakeSteps()
    rp.reproduce(job(tmp_path, sources), first.steps())
    assert Counter(call[0] for call in first.calls) == {"pretrain": 2, "finetune": 4, "evaluate": 4}
    results = tmp_path / "results"
    assert len(kept(results, "pretrain/*/run/model.pt")) == 2
    assert len(kept(results, "finetune/*/eval-validation-*/metrics.json")) == 4
    assert len(kept(results, "finetune/*/run/model.pt")) == 4  # the fakes' are tiny
    for cell in kept(results, "*/*"):
        assert (cell / "cell.json").is_file()
        check_sums(cell)
    tables = {name: (results / name).read_text() for name in ("table2.md", "fig3.md")}
    numbers = json.loads((results / "results.json").read_text())["results"]

    shutil.rmtree(tmp_path / "out")  # a fresh clone: no runs, the stores prepared again
    again = FakeSteps()
    _, outcome, _ = rp.reproduce(job(tmp_path, sources), again.steps())
    assert again.calls == [] and (outcome.ran, outcome.cached) == (0, 6)
    for name, text in tables.items():
        assert (results / name).read_text() == text == (tmp_path / "out" / name).read_text()
    assert json.loads((results / "results.json").read_text())["results"] == numbers


class Killed(FakeSteps):
    """Killed in the middle of its second fine-tuning (a run folder, no model file)."""

    def finetune(self, config: Config, data: Path, init: str, out: Path, resume: bool) -> Path:
        if sum(call[0] == "finetune" for call in self.calls) == 1:
            self.calls.append(("killed",))
            out.mkdir(parents=True)
            (out / "config.yaml").write_text("fake\n")
            raise KeyboardInterrupt
        return super().finetune(config, data, init, out, resume)


def test_an_interrupted_cell_runs_again_and_the_partial_tables_are_readable(
    sources: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(KeyboardInterrupt):
        rp.reproduce(job(tmp_path, sources), Killed().steps())
    results = tmp_path / "results"
    assert len(kept(results, "*/*")) == 3  # two pre-trainings, one fine-tuning
    table = (results / "table2.md").read_text()  # written after each cell: 1 seed so far
    assert "| random init | 0.600 | 0.500 | 0.700 | 1 |" in table
    assert "| pre-trained on notes | – | – | – | 0 |" in table

    shutil.rmtree(tmp_path / "out")
    again = FakeSteps()
    _, outcome, _ = rp.reproduce(job(tmp_path, sources), again.steps())
    assert Counter(call[0] for call in again.calls) == {"finetune": 3, "evaluate": 3}
    assert again.calls[0] == ("finetune", "sharesnet18", "scratch", "False")  # from the start
    assert (outcome.ran, outcome.cached) == (3, 3)
    assert len(kept(results, "*/*")) == 6


def test_big_fine_tuned_models_stay_out_but_their_scores_are_kept(
    sources: tuple[Path, Path], tmp_path: Path
) -> None:
    rp.reproduce(job(tmp_path, sources, model_limit=0), FakeSteps().steps())
    results = tmp_path / "results"
    assert kept(results, "finetune/*/run/model.pt") == []
    assert len(kept(results, "finetune/*/eval-*/metrics.json")) == 4
    assert len(kept(results, "pretrain/*/run/model.pt")) == 2  # fine-tunings start from them

    shutil.rmtree(tmp_path / "out")
    again = FakeSteps()
    _, outcome, _ = rp.reproduce(job(tmp_path, sources, model_limit=0), again.steps())
    assert again.calls == [] and outcome.cached == 6


def test_the_model_limit_is_an_option_in_mib() -> None:
    parser = rp.argparse.ArgumentParser()
    rp.add_arguments(parser, "reproduce")
    args = parser.parse_args(["--results", "kept", "--results-model-limit", "0.5"])
    made = rp.job_from_args(args, args.experiments, args.preset, args.seeds)
    assert (made.results, made.model_limit) == (Path("kept"), 2**19)
    default = parser.parse_args([])
    made = rp.job_from_args(default, default.experiments, default.preset, default.seeds)
    assert (made.results, made.model_limit) == (None, 8 * 2**20)


@pytest.mark.fault
def test_a_damaged_kept_file_is_refused_in_one_line_naming_it(
    sources: tuple[Path, Path], tmp_path: Path
) -> None:
    rp.reproduce(job(tmp_path, sources), FakeSteps().steps())
    shutil.rmtree(tmp_path / "out")
    model = kept(tmp_path / "results", "pretrain/*/run/model.pt")[0]
    original = model.read_bytes()
    model.write_bytes(original + b" ")
    again = FakeSteps()
    with pytest.raises(InstrecError) as refused:
        rp.reproduce(job(tmp_path, sources), again.steps())
    message = str(refused.value)
    assert message.startswith(f"{model}: missing or damaged") and "\n" not in message
    assert again.calls == []  # refused before anything ran

    model.unlink()  # listed in SHA256SUMS, gone: the same
    with pytest.raises(InstrecError, match=f"^{model}: missing or damaged"):
        rp.reproduce(job(tmp_path, sources), FakeSteps().steps())


@pytest.mark.fault
def test_a_different_file_of_the_same_cell_is_never_replaced(
    sources: tuple[Path, Path], tmp_path: Path
) -> None:
    rp.reproduce(job(tmp_path, sources), FakeSteps().steps())
    metrics = kept(tmp_path / "out", "finetune/*/eval-*/metrics.json")[0]
    metrics.write_text(metrics.read_text().replace("0.", "0.9", 1))  # evaluated otherwise
    with pytest.raises(InstrecError, match=f"^{metrics}: differs from .*metrics.json, a file"):
        rp.reproduce(job(tmp_path, sources), FakeSteps().steps())

    sums = kept(tmp_path / "results", "pretrain/*")[0] / gr.SUMS
    sums.write_text(f"{'0' * 64}  ../../elsewhere\n")
    with pytest.raises(InstrecError, match=f"^{sums}: line 1 is not"):
        rp.reproduce(job(tmp_path, sources), FakeSteps().steps())


# ---- the stores' content digest, which the cells' keys rest on --------------------------


class Later:
    """datetime, a year on: the header's creation time of a store prepared later."""

    @staticmethod
    def now(tz: tzinfo) -> datetime:
        return datetime(2031, 1, 1, tzinfo=tz)


def test_the_same_files_prepared_twice_get_the_same_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = write_nsynth_tree(tmp_path / "here" / "nsynth", pitches=(55, 60))
    there = shutil.copytree(tree, tmp_path / "there" / "nsynth")  # another machine's copy
    one = prepare_store("nsynth", tree, tmp_path / "one")
    monkeypatch.setattr(prepare, "datetime", Later)
    two = prepare_store("nsynth", there, tmp_path / "two")
    headers = [json.loads((store / st.HEADER).read_text()) for store in (one, two)]
    assert [h["created"][:4] for h in headers] != ["2031", "2031"]
    assert headers[0]["root"] != headers[1]["root"]
    assert st.content_digest(one) == st.content_digest(two)

    # one sample changed in one source file: another digest
    wav = sorted(there.glob("nsynth-train/audio/*.wav"))[0]
    write_wav(wav, tone(220.0, 4.0, 16_000, 0.5, seed=99), 16_000)
    changed = prepare_store("nsynth", there, tmp_path / "changed")
    assert st.content_digest(changed) != st.content_digest(one)

    # one label changed: another digest
    targets = np.load(two / st.TARGETS)
    targets[0] = np.roll(targets[0], 1)
    np.save(two / st.TARGETS, targets)
    assert st.content_digest(two) != st.content_digest(one)


def test_the_digest_is_cached_beside_the_store_until_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = prepare_store("nsynth", write_nsynth_tree(tmp_path / "nsynth", pitches=(60,)),
                          tmp_path / "store")  # fmt: skip
    digest = st.content_digest(store)
    assert json.loads((store / st.CONTENT).read_text())["sha256"] == digest
    hashed: list[Path] = []
    real = st.file_sha256

    def counted(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(st, "file_sha256", counted)
    assert st.content_digest(store) == digest and hashed == []  # nothing read again

    audio = store / st.AUDIO
    os.utime(audio, ns=(audio.stat().st_atime_ns, audio.stat().st_mtime_ns + 1))
    assert st.content_digest(store) == digest  # touched, not changed: hashed, same digest
    assert len(hashed) == len(st.CONTENT_FILES) - 1


def test_the_digest_of_a_folder_that_is_no_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstrecError, match="not a clip store"):
        st.content_digest(tmp_path)
    (tmp_path / st.HEADER).write_text("{}")
    with pytest.raises(InstrecError, match=f"{tmp_path / st.AUDIO}: missing from the store"):
        st.content_digest(tmp_path)
