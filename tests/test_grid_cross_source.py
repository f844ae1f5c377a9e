"""The cross-source benchmark in the grid: on rendered data every fine-tuned model is also
scored on test songs whose labelled instruments come from families no training data plays,
at the model's threshold and at the one best on the benchmark's own valid songs.

Training and evaluation are the fakes of tests/test_reproduce.py (an evaluation here also
records its store, validation store and split); rendering is replaced by recorders of the
options each render gets, so the stores' wiring is checked without a soundfont.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_reproduce import TINY, FakeSteps, fake_f1

from instrec.data.corpus import MANIFEST as CORPUS_MANIFEST
from instrec.data.store import Entry, StoreWriter
from instrec.errors import InstrecError
from instrec.experiments import grid as gr
from instrec.experiments import reproduce as rp
from instrec.experiments import stores as st
from instrec.labels import IRMAS_CLASSES
from instrec.synth import benchmark, corpus, ensembles, notes

DROP = {"model": 0.2, "validation": 0.15}  # how much lower the fake scores cross-source


def _store(path: Path, kind: str, splits: dict[str, int]) -> Path:
    with StoreWriter(path, kind, IRMAS_CLASSES) as writer:
        for k, split in enumerate(s for s, n in splits.items() for _ in range(n)):
            entry = Entry(Path(f"{k}.wav"), f"{k}.wav", (k % 3,), split, k)
            writer.add(entry, [np.zeros(16_000, dtype=np.float32)], [{}])
        writer.finish(16_000, {})
    return path


@pytest.fixture
def stores(tmp_path: Path) -> gr.Stores:
    return gr.Stores(
        _store(tmp_path / "notes", "nsynth", {"train": 4}),
        _store(tmp_path / "music", "irmas-train", {"train": 4, "valid": 2}),
        _store(tmp_path / "test", "irmas-test", {"test": 2}),
        cross_source=_store(tmp_path / "cross", "folder", {"valid": 2, "test": 2}),
    )


class CrossSteps(FakeSteps):
    """FakeSteps whose evaluations record every argument and score the cross-source store
    lower (by DROP of the threshold's origin), with a threshold sweep above both."""

    def evaluate(
        self, model: Path, test: Path, out: Path, threshold_from: str, validation: Path, split: str
    ) -> dict[str, Any]:
        self.calls.append(("evaluate", test.name, threshold_from, validation.name, split, out.name))
        info = json.loads(model.read_text())
        f1 = fake_f1(info["init"], info["fraction"], info["seed"])
        f1 -= DROP[threshold_from] if test.name == "cross" else 0.0
        metrics = {
            "f1_micro": f1, "f1_macro": f1 - 0.1, "lrap": f1 + 0.1,
            "sweep": {"best_f1_micro": f1 + 0.05},
        }  # fmt: skip
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(metrics))
        return metrics


def evaluations(calls: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The evaluate calls without their directory's data key."""
    return [(*c[1:5], c[5].rsplit("-", 1)[0]) for c in calls if c[0] == "evaluate"]


def test_each_fine_tuning_is_scored_on_the_test_store_and_twice_on_the_cross_source_one(
    stores: gr.Stores, tmp_path: Path
) -> None:
    grid = gr.plan_grid(["table2"], TINY, [0], stores)
    fake = CrossSteps()
    outcome = gr.run_grid(grid, stores, tmp_path / "out", "validation", fake.steps())
    assert Counter(call[0] for call in fake.calls) == {"pretrain": 1, "finetune": 2, "evaluate": 6}
    assert evaluations(fake.calls) == 2 * [
        ("test", "validation", "music", "auto", "eval-validation"),
        ("cross", "model", "cross", "test", "eval-cross-source-model"),
        ("cross", "validation", "cross", "test", "eval-cross-source-valid"),
    ]
    pre = next(c for c in grid.finetune_cells() if c.init is not None)
    metrics = outcome.metrics[pre.key]
    assert metrics["f1_micro"] == pytest.approx(0.7)  # the test store's, as without
    assert metrics["cross_source"]["model"]["f1_micro"] == pytest.approx(0.5)
    assert metrics["cross_source"]["valid"]["f1_micro"] == pytest.approx(0.55)

    again = CrossSteps()
    outcome = gr.run_grid(grid, stores, tmp_path / "out", "validation", again.steps())
    assert again.calls == [] and (outcome.ran, outcome.cached) == (0, 3)
    assert outcome.metrics[pre.key]["cross_source"]["valid"]["f1_micro"] == pytest.approx(0.55)

    # one cross-source evaluation lost: that one again, from the trained model
    shutil.rmtree(next(pre.directory(tmp_path / "out").glob("eval-cross-source-valid-*")))
    missing = CrossSteps()
    gr.run_grid(grid, stores, tmp_path / "out", "validation", missing.steps())
    assert evaluations(missing.calls) == [
        ("cross", "validation", "cross", "test", "eval-cross-source-valid")
    ]
    assert [call[0] for call in missing.calls] == ["evaluate"]


def test_real_data_has_no_cross_source_evaluation(stores: gr.Stores, tmp_path: Path) -> None:
    real = dataclasses.replace(stores, cross_source=None)
    grid = gr.plan_grid(["table2"], TINY, [0], real)
    fake = CrossSteps()
    outcome = gr.run_grid(grid, real, tmp_path / "out", "test", fake.steps())
    assert evaluations(fake.calls) == 2 * [("test", "test", "music", "auto", "eval-test")]
    assert all("cross_source" not in metrics for metrics in outcome.metrics.values())


def test_the_tables_show_the_cross_source_columns_and_a_fresh_clone_keeps_them(
    stores: gr.Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rp, "rendered_stores", lambda data, preset, workers: stores)
    job = rp.Job(tmp_path / "out", ("table2",), seeds=2, results=tmp_path / "results")
    fake = CrossSteps()
    rp.reproduce(job, fake.steps())
    assert Counter(call[0] for call in fake.calls)["evaluate"] == 12
    results = tmp_path / "results"
    assert len(sorted(results.glob("cells/finetune/*/eval-cross-source-*/metrics.json"))) == 8

    report = (results / "report.md").read_text()
    assert "- cross-source: rendered test songs whose labelled instruments all come" in report
    assert f"`{stores.cross_source}` (4 folder items: valid 2, test 2)" in report
    header = (results / "table2.md").read_text().splitlines()[0]
    assert header.startswith(
        "| initialisation | F1-micro | F1-macro | LRAP | cross-source F1-micro | cross-source "
        "best F1-micro | cross-source F1-macro | cross-source LRAP | cross-source F1-micro, "
        "its valid threshold | seeds |"
    )
    # seeds 0 and 1 of the pre-trained row: 0.70, 0.71 in-source
    row = next(line for line in report.splitlines() if line.startswith("| pre-trained on notes"))
    assert row.startswith(
        "| pre-trained on notes | 0.705 ± 0.007 | 0.605 ± 0.007 | 0.805 ± 0.007 | 0.505 ± 0.007 "
        "| 0.555 ± 0.007 | 0.405 ± 0.007 | 0.605 ± 0.007 | 0.555 ± 0.007 | 2 |"
    )
    saved = json.loads((results / "results.json").read_text())["results"]["table2"][1]
    assert saved["cross_source_f1_micro"] == pytest.approx([0.5, 0.51])
    assert saved["cross_source_best_f1_micro"] == pytest.approx([0.55, 0.56])
    assert saved["cross_source_f1_micro_valid"] == pytest.approx([0.55, 0.56])
    table = (results / "table2.md").read_text()

    shutil.rmtree(tmp_path / "out")  # a fresh clone: every evaluation comes from --results
    again = CrossSteps()
    _, outcome, _ = rp.reproduce(job, again.steps())
    assert again.calls == [] and outcome.cached == 6
    assert (results / "table2.md").read_text() == table


# ---- the rendered stores: the benchmark first, its families kept out of training --------


class Renders:
    """Stand-ins for every render and `prepare`: each records its options in order and
    leaves what marks it finished, so a second call finds it cached."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, Path, dict[str, Any]]] = []
        monkeypatch.setattr(benchmark, "render_cross_source", self.render_cross_source)
        monkeypatch.setattr(notes, "render_notes", self.recorder("notes", "render-notes.json"))
        monkeypatch.setattr(
            ensembles, "render_ensembles", self.recorder("music", "render-ensembles.json")
        )
        monkeypatch.setattr(corpus, "render_corpus", self.recorder("corpus", CORPUS_MANIFEST))
        monkeypatch.setattr(st, "prepare_store", self.prepare)

    def render_cross_source(self, out: Path, **options: Any) -> Path:
        self.calls.append(("cross-source", out, options))
        out.mkdir(parents=True)
        benchmark.families_file(out).write_text("{}")
        (out / "labels.csv").write_text("path,labels,split,group\n")
        return out

    def recorder(self, name: str, manifest: str) -> Any:
        def render(out: Path, **options: Any) -> Path:
            self.calls.append((name, out, options))
            out.mkdir(parents=True)
            (out / manifest).write_text(json.dumps({"summary": {}}))
            return out

        return render

    def prepare(self, dataset: str, root: Path, out: Path, workers: int, *extra: str) -> Path:
        self.calls.append((f"prepare {dataset}", out, {"root": root, "extra": extra}))
        return out


@pytest.mark.parametrize("music_seed", [None, 7])
def test_the_benchmark_is_rendered_first_with_the_musics_seed_and_held_out_of_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, music_seed: int | None
) -> None:
    music = {**TINY.music, **({} if music_seed is None else {"seed": music_seed})}
    preset = dataclasses.replace(TINY, music=music)
    renders = Renders(monkeypatch)
    made = st.rendered_stores(tmp_path, preset, 2)
    made.corpus_store()
    rendered = tmp_path / "rendered-cross-source"
    families = benchmark.families_file(rendered)
    assert [call[0] for call in renders.calls] == [
        "cross-source", "prepare folder", "notes", "music",
        "prepare nsynth", "prepare irmas-train", "prepare irmas-test", "corpus", "prepare corpus",
    ]  # fmt: skip
    options = {name: opts for name, _, opts in renders.calls}
    assert options["cross-source"] == {"seed": music_seed or 0, "workers": 2, "songs": 24}
    assert options["music"]["seed"] == (music_seed or 0)
    assert all(options[name]["holdout_from"] == families for name in ("notes", "music", "corpus"))
    # the corpus plays neither the music's test scores nor the benchmark's
    assert options["corpus"]["exclude_from"] == [tmp_path / "rendered-music", rendered]
    assert options["prepare folder"] == {
        "root": benchmark.cross_source_folder(rendered),
        "extra": ("--csv", str(rendered / "labels.csv"), "--classes", benchmark.BENCHMARK_CLASSES),
    }
    assert made.cross_source == tmp_path / "cross-source"

    rerun = Renders(monkeypatch)  # everything rendered: only the (cached) stores again
    st.rendered_stores(tmp_path, preset, 2).corpus_store()
    assert {call[0] for call in rerun.calls} == {
        "prepare folder", "prepare nsynth", "prepare irmas-train", "prepare irmas-test",
        "prepare corpus",
    }  # fmt: skip


def test_a_render_the_preset_no_longer_describes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Renders(monkeypatch)
    st.rendered_stores(tmp_path, TINY, 2)
    recorded = json.loads((tmp_path / "rendered-music" / st.REQUEST).read_text())
    assert recorded["train_songs"] == TINY.music["train_songs"]

    varied = dataclasses.replace(TINY, music={**TINY.music, "timbre_options": ("all",)})
    rerun = Renders(monkeypatch)
    with pytest.raises(InstrecError, match=r"rendered-music: .*timbre_options: \[\] there"):
        st.rendered_stores(tmp_path, varied, 2)
    assert [call[0] for call in rerun.calls] == ["prepare folder"]  # nothing rendered over it


@pytest.mark.parametrize(("timbre", "refused"), [([], False), (["eq"], True)])
def test_a_render_from_before_requests_were_kept_is_checked_by_its_manifest(
    tmp_path: Path, timbre: list[str], refused: bool
) -> None:
    music = tmp_path / "rendered-music"
    music.mkdir()
    options = {"train_songs": TINY.music["train_songs"], "timbre": timbre, "sources": ["x"]}
    (music / "render-ensembles.json").write_text(json.dumps({"options": options, "summary": {}}))
    requested = {"seed": 0, **TINY.music}
    if refused:
        with pytest.raises(InstrecError, match=r"timbre_options: \['eq'\] there, \[\] now"):
            st._rendered(music, "render-ensembles.json", requested)
    else:
        assert st._rendered(music, "render-ensembles.json", requested)
    more_songs = {**requested, "train_songs": TINY.music["train_songs"] + 1}
    with pytest.raises(InstrecError, match="train_songs"):
        st._rendered(music, "render-ensembles.json", more_songs)


def test_real_data_has_no_cross_source_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = Renders(monkeypatch)
    made = st.real_stores(tmp_path / "nsynth", tmp_path / "irmas", tmp_path, TINY, 1)
    made.corpus_store()
    assert made.cross_source is None
    assert [call[0] for call in renders.calls][-2:] == ["corpus", "prepare corpus"]
    assert renders.calls[-2][2]["holdout_from"] is None
