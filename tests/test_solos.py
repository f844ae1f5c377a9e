"""Solos: the model voices' solos as they were, the same melody on a held-out member, and
which member of a benchmark's families.json plays each class."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.labels import IRMAS_CLASSES
from instrec.synth import solos
from instrec.synth.csound import CsoundNote, available
from instrec.synth.models import cents_off, render_notes, voice
from instrec.synth.solos import (
    MAJOR_SCALE,
    SOLO_MODELS,
    held_out_members,
    render_solo,
    solo_part,
)

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
PIANO = "TimGM6mb.sf2:000:000 Piano 1"
TRUMPET = "csound:trumpet-fm"
NEEDS_CSOUND = pytest.mark.skipif(not available(), reason="csound")
NEEDS_TIM = pytest.mark.skipif(not Path(TIM).exists(), reason="timgm6mb-soundfont")


def _render_solo_as_shipped(code: str, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """render_solo before members could play it, kept verbatim: the shipped model's card
    scored these exact samples."""
    model, (low, high) = SOLO_MODELS[code]
    player = voice(model, seed)
    low, high = max(low, player.keys[0]), min(high, player.keys[1])
    rng = np.random.default_rng([seed, IRMAS_CLASSES.index(code)])
    tonic = int(rng.integers(low, max(low + 1, high - 12)))
    scale = [k for octave in range(-2, 4) for k in (tonic + 12 * octave + s for s in MAJOR_SCALE)]
    keys = [k for k in scale if low <= k <= high]
    position, onset, notes = len(keys) // 2, 0.0, []
    while onset < seconds - 0.2:
        duration = float(rng.uniform(0.3, 0.7))
        velocity = int(rng.integers(80, 111))
        notes.append(CsoundNote(onset, duration * 0.95, keys[position], velocity))
        position = int(np.clip(position + rng.integers(-2, 3), 0, len(keys) - 1))
        onset += duration
    return render_notes(player, notes, round(seconds * sample_rate), sample_rate)


@NEEDS_CSOUND
@pytest.mark.parametrize(("code", "seed", "rate"), [("cla", 0, 44_100), ("vio", 3, 22_050)])
def test_without_a_member_a_solo_is_as_it_was_shipped(code: str, seed: int, rate: int) -> None:
    expected = _render_solo_as_shipped(code, 1.5, rate, seed)
    assert np.array_equal(render_solo(code, 1.5, rate, seed), expected)
    assert np.array_equal(render_solo(code, 1.5, rate, seed, member=None), expected)


@NEEDS_TIM
@NEEDS_CSOUND
@pytest.mark.parametrize(
    ("code", "member", "rate"), [("pia", PIANO, 22_050), ("tru", TRUMPET, 44_100)]
)
def test_a_member_plays_the_model_voice_s_melody_at_its_pitch(
    code: str, member: str, rate: int
) -> None:
    audio = render_solo(code, 1.5, rate, 0, member)
    assert audio.shape == (round(1.5 * rate),) and audio.dtype == np.float32
    assert 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) > -40
    notes = solo_part(code, 1.5, 0, member)[1]
    assert notes == solo_part(code, 1.5, 0)[1]  # it sounds every key of the register
    first = notes[0]
    cents = cents_off(audio[round(0.05 * rate) : round(first.duration * rate)], first.key, rate)
    assert cents is not None and abs(cents) < 40
    assert not np.array_equal(audio, render_solo(code, 1.5, rate, 0))  # another instrument


def test_a_member_plays_the_melody_in_the_keys_it_sounds(monkeypatch: pytest.MonkeyPatch) -> None:
    sounding = set(range(70, 82))  # a member that sounds the register's top octave only
    monkeypatch.setattr(solos, "playable_keys", lambda _, keys: keys & sounding)
    melody = solo_part("tru", 4.0, 2)[1]
    played = solo_part("tru", 4.0, 2, TRUMPET)[1]
    assert {n.key for n in melody} - sounding  # some keys must move
    assert [replace(n, key=0) for n in played] == [replace(n, key=0) for n in melody]
    for note, heard in zip(melody, played, strict=True):
        assert heard.key in sounding and heard.key % 12 == note.key % 12


@pytest.mark.fault
@pytest.mark.parametrize("member", ["csound:no-such-model", "TimGM6mb.sf2:000:000 No Such"])
def test_an_unknown_member_is_refused_by_name(member: str) -> None:
    with pytest.raises(InstrecError, match=member):
        render_solo("pia", 1.0, member=member)


def _family(split: str, classes: list[str], members: list[object]) -> dict[str, object]:
    return {"split": split, "classes": classes, "members": members}


def _write(path: Path, families: object) -> Path:
    path.write_text(json.dumps({"catalogue": {}, "families": families}), encoding="utf-8")
    return path


def test_held_out_members_take_the_first_held_out_family_of_each_class(tmp_path: Path) -> None:
    families = {  # written out of order: the choice must not depend on it
        "sf:Z Violin": _family("held-out", ["vio"], ["Z.sf2:000:040 Violin"]),
        "sf:B Trumpet": _family("held-out", ["tru"], ["B.sf2:000:056 Trumpet"]),
        "sf:A Cello": _family("held-out", ["cel", "vio"], ["A.sf2:000:042 Cello", "A2"]),
        "csound:fm-brass": _family("held-out", ["tru"], [TRUMPET, "csound:other"]),
        "csound:clarinet-waveguide": _family("train", ["cla"], ["csound:clarinet-wg"]),
        "sf:0 Piano": _family("train", ["pia"], ["A.sf2:000:000 Piano"]),
    }
    chosen = held_out_members(_write(tmp_path / "families.json", families))
    assert chosen == {"cel": "A.sf2:000:042 Cello", "tru": TRUMPET, "vio": "A.sf2:000:042 Cello"}
    assert list(chosen) == ["cel", "tru", "vio"]  # in IRMAS class order


BAD_FAMILIES: dict[str, object] = {
    "not json": "{families",
    "a list": [],
    "no families": {"catalogue": {}},
    "no split": {"families": {"f": {"classes": ["tru"], "members": ["m"]}}},
    "an unknown split": {"families": {"f": _family("maybe", ["tru"], ["m"])}},
    "no members": {"families": {"f": _family("held-out", ["tru"], [])}},
    "a member not text": {"families": {"f": _family("held-out", ["tru"], [3])}},
    "nothing held out": {"families": {"f": _family("train", ["tru"], ["m"])}},
}


@pytest.mark.fault
@pytest.mark.parametrize("case", BAD_FAMILIES)
def test_a_file_that_is_no_families_json_is_refused_by_name(tmp_path: Path, case: str) -> None:
    path = tmp_path / "families.json"
    content = BAD_FAMILIES[case]
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(InstrecError, match=r"families\.json"):
        held_out_members(path)


@pytest.mark.fault
@pytest.mark.parametrize("name", ["missing.json", "folder.json"])
def test_a_missing_or_unreadable_families_json_is_refused_by_name(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(InstrecError, match=name):
        held_out_members(tmp_path / name)
