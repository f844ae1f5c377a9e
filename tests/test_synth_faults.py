"""Rendering sources under fault: unknown names, missing programs and packages, broken
family files and impossible holdouts each give one line naming the cause."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from instrec.cli import main
from instrec.errors import InstrecError
from instrec.synth import csound, models, sources, timbre
from instrec.synth.csound import CsoundNote
from instrec.synth.ensembles import render_ensembles
from instrec.synth.soundfonts import EXTRA_SOUNDFONTS

pytestmark = pytest.mark.fault
TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
NEEDS_TIM = pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")
NEEDS_CSOUND = pytest.mark.skipif(not csound.available(), reason="csound")
SMALL: dict[str, Any] = {
    "train_songs": 1,
    "test_songs": 0,
    "composers": ("bach",),
    "soundfonts": [TIM],
    "progress": False,
}


def _one_line(error: pytest.ExceptionInfo[InstrecError]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: sources.parse_sources(["soundfonts", "tape"]), "tape"),
        (lambda: sources.parse_sources([""]), "no sources"),
        (lambda: timbre.parse_options(["eq", "loud"]), "loud"),
        (lambda: sources.source_models(["models"], ["theremin"]), "theremin"),
    ],
)
def test_unknown_names_are_refused(call: Any, words: str) -> None:
    with pytest.raises(InstrecError) as error:
        call()
    assert words in _one_line(error) and "known:" in str(error.value)


def test_an_uninstalled_named_soundfont_names_its_package() -> None:
    path, package = EXTRA_SOUNDFONTS["musescore-lossless"]
    if Path(path).exists():
        pytest.skip("the lossless MuseScore General is installed")
    with pytest.raises(InstrecError) as error:
        sources.source_soundfonts(["musescore-lossless"], None)
    assert path in _one_line(error) and package in str(error.value)


def test_missing_csound_program_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csound, "CSOUND", "/nonexistent/csound")
    with pytest.raises(InstrecError) as error:
        csound.render("instr 1\nout oscili:a(0.1, 440, 1)\nendin\n", [], 100, 44_100)
    assert "not installed" in _one_line(error) and "apt-get install csound" in str(error.value)


@NEEDS_CSOUND
def test_a_failing_orchestra_gives_csound_s_error_line() -> None:
    with pytest.raises(InstrecError) as error:
        csound.render("instr 1\naout nosuchopcode 1\nout aout\nendin\n", [], 100, 44_100)
    assert _one_line(error).startswith("csound: render failed (")


@NEEDS_CSOUND
def test_stk_models_without_the_plugin_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "stk_available", lambda: False)
    assert "clarinet-stk" not in sources.source_models(["models"], None)
    with pytest.raises(InstrecError) as error:
        sources.source_models(["models"], ["clarinet-wg", "clarinet-stk"])
    assert "clarinet-stk" in _one_line(error) and "csound-plugins" in str(error.value)


@NEEDS_CSOUND
def test_a_model_render_shorter_than_asked_is_padded_not_truncated() -> None:
    voice = models.voice("organ-additive", 0)
    audio = models.render_notes(voice, [CsoundNote(0.0, 0.05, 60, 90)], 3000, 44_100)
    assert audio.shape == (3000,) and audio[:100].any()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "not a families.json"),  # no file
        ("{not json", "not a families.json"),
        ('{"families": {"sf:x": {}}}', "not a families.json"),
        ('{"families": {"sf:x": {"split": "maybe"}}}', "unknown split for sf:x"),
        ("[1, 2]", "not a families.json"),
    ],
)
def test_broken_families_files_are_refused(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "families.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InstrecError) as error:
        sources.read_holdout(path)
    message = _one_line(error)
    assert message.startswith(str(path)) and words in message


@NEEDS_TIM
@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"holdout_share": 1.0}, "holdout_share"),
        ({"holdout_share": -0.2}, "holdout_share"),
        ({"holdout_share": 0.3, "holdout_from": "x.json"}, "not both"),
        ({"model_voices": 0}, "model_voices"),
        ({"train_songs": 0, "cross_source_songs": 2}, "cross-source songs need held-out"),
        ({"cross_source_songs": -1}, "songs must be >= 0"),
        ({"sources_used": ("tape",)}, "tape"),
        ({"timbre_options": ("loud",)}, "loud"),
    ],
)
def test_impossible_ensemble_options_are_refused(
    tmp_path: Path, options: dict[str, Any], words: str
) -> None:
    with pytest.raises(InstrecError) as error:
        render_ensembles(tmp_path / "out", **{**SMALL, **options})
    assert words in _one_line(error)
    assert not (tmp_path / "out").exists()  # refused before anything is written


@NEEDS_CSOUND
def test_a_class_without_training_source_is_refused(tmp_path: Path) -> None:
    options = {**SMALL, "sources_used": ("models",), "model_names": ("clarinet-wg",)}
    with pytest.raises(InstrecError) as error:
        render_ensembles(tmp_path / "out", **options)
    message = _one_line(error)
    assert message.startswith("no training source plays cel, flu") and "cla," not in message


@NEEDS_TIM
@pytest.mark.parametrize(
    "arguments",
    [
        ["--sources", "tape"],
        ["--timbre", "loud"],
        ["--holdout-share", "2"],
        ["--holdout-from", "/nonexistent/families.json"],
    ],
)
def test_cli_reports_bad_source_options_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, arguments: list[str]
) -> None:
    assert main(["synth", "ensembles", str(tmp_path / "out"), "--soundfonts", TIM, *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("instrec synth: error:") and "\n" not in error


def test_families_file_round_trips(tmp_path: Path) -> None:
    catalogue = sources.Catalogue((), ("clarinet-wg", "bowed-wg"))
    split = {"csound:clarinet-waveguide": sources.HELD_OUT, "csound:bowed-string": sources.TRAIN}
    path = tmp_path / "families.json"
    path.write_text(json.dumps(sources.families_record(catalogue, split)))
    assert sources.read_holdout(path) == split


def test_non_finite_audio_is_refused_not_written(tmp_path: Path) -> None:
    from instrec.synth.outputs import write_wav

    audio = np.zeros((100, 2), dtype=np.float32)
    audio[50, 1] = np.nan
    with pytest.raises(InstrecError, match="not finite"):
        write_wav(tmp_path / "x.wav", audio, 16_000)
    assert list(tmp_path.iterdir()) == []
