"""Tiny dataset trees in the official NSynth and IRMAS layouts, written by the tests.

Other tests import these to build small stores, e.g.

    root = write_irmas_train_tree(tmp_path / "irmas")
    store = prepare_store("irmas-train", root, tmp_path / "store")

Audio is synthetic (harmonic tones whose fundamental encodes the class, plus a little
noise), so a loader can be checked against what was written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import soundfile

from instrec.labels import IRMAS_CLASSES, NSYNTH_FAMILIES, NSYNTH_QUALITIES, NSYNTH_SOURCES

IRMAS_RATE = 44_100  # Hz, stereo: IRMAS as distributed
NSYNTH_RATE = 16_000  # Hz, mono: NSynth as distributed

# Training names with the real naming patterns: optional numeric prefix, [dru]/[nod],
# genre, excerpt number. Each song has all three excerpts unless noted.
IRMAS_TRAIN_SONGS: dict[str, tuple[str, ...]] = {
    "cel": ("115__[cel][nod][cla]0055", "[cel][cla]0001", "[cel][pop_roc]0111"),
    "gel": ("081__[gel][dru][pop_roc]0966", "[gel][jaz_blu]1002", "235__[gel][nod][jaz_blu]0802"),
    "vio": ("[vio][cla]2122", "115__[vio][nod][cla]2150", "[vio][jaz_blu]2242"),
    "pia": ("[pia][cla]1300", "044__[pia][nod][cla]1301", "[pia][jaz_blu]1302"),
}
# Test files with awkward real-world names: spaces, brackets, dashes, non-ASCII.
IRMAS_TEST_FILES: dict[str, tuple[str, ...]] = {
    "Part1/(02) dont kill the whale-1": ("pia", "voi"),
    "Part1/02 - Café Müller [live]-3": ("gel",),
    "Part2/(12) Sinfonía nº 5-2": ("vio", "cel", "flu"),
}


def tone(f0: float, seconds: float, sr: int, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    """A decaying harmonic tone (5 partials) plus faint noise, float32 mono."""
    t = np.arange(round(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    return (amplitude * (wave * np.exp(-t / 2) + noise) / 2).astype(np.float32)


def class_f0(code: str) -> float:
    """A distinct fundamental (Hz) per IRMAS class."""
    return 110.0 * 2 ** (IRMAS_CLASSES.index(code) / 4)


def write_wav(path: Path, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write a (samples,) or (samples, channels) wav, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, sr, subtype=subtype)
    return path


def stereo(mono: np.ndarray) -> np.ndarray:
    """(samples, 2): left louder than right, so averaging matters."""
    return np.stack([mono, 0.5 * mono], axis=1)


def write_irmas_train_tree(
    root: Path,
    songs: Mapping[str, Sequence[str]] | None = None,
    excerpts: int = 3,
    seconds: float = 3.0,
) -> Path:
    """IRMAS-TrainingData/<cls>/<song>__<k>.wav, 44.1 kHz stereo; returns `root`."""
    for code, names in (songs or IRMAS_TRAIN_SONGS).items():
        for s, song in enumerate(names):
            for k in range(1, excerpts + 1):
                audio = tone(class_f0(code), seconds, IRMAS_RATE, 0.1 + 0.05 * k, seed=s * 7 + k)
                path = root / "IRMAS-TrainingData" / code / f"{song}__{k}.wav"
                write_wav(path, stereo(audio), IRMAS_RATE)
    return root


def write_irmas_train_names(root: Path, names: Iterable[str], seconds: float = 3.0) -> Path:
    """One short excerpt per `cls/name` (as in fixtures/irmas-train-names.txt)."""
    for name in names:
        code = name.split("/")[0]
        audio = tone(class_f0(code), seconds, IRMAS_RATE)
        write_wav(root / "IRMAS-TrainingData" / f"{name}.wav", stereo(audio), IRMAS_RATE)
    return root


def write_irmas_test_tree(
    root: Path, files: Mapping[str, Sequence[str]] | None = None, seconds: Sequence[float] = (5, 20)
) -> Path:
    """IRMAS-TestingData-Part<n>/<name>.wav + .txt (one code per line, a tab after some),
    44.1 kHz stereo, durations cycling through `seconds`; returns `root`."""
    for k, (name, codes) in enumerate((files or IRMAS_TEST_FILES).items()):
        part, stem = name.split("/")
        folder = root / f"IRMAS-TestingData-{part}" / part
        mix = sum(tone(class_f0(c), seconds[k % len(seconds)], IRMAS_RATE, seed=k) for c in codes)
        write_wav(folder / f"{stem}.wav", stereo(np.asarray(mix)), IRMAS_RATE)
        lines = [f"{code}\t" if i % 2 else code for i, code in enumerate(codes)]
        (folder / f"{stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def nsynth_note(instrument: str, pitch: int, velocity: int = 100) -> dict:
    """An examples.json record as NSynth writes it."""
    family, source, _ = instrument.rsplit("_", 2)
    return {
        "note": pitch * 1000 + velocity,
        "sample_rate": NSYNTH_RATE,
        "instrument_family": NSYNTH_FAMILIES.index(family),
        "instrument_family_str": family,
        "instrument_source": NSYNTH_SOURCES.index(source),
        "instrument_source_str": source,
        "instrument": 0,
        "instrument_str": instrument,
        "pitch": pitch,
        "velocity": velocity,
        "qualities": [0] * len(NSYNTH_QUALITIES),
        "qualities_str": [],
        "note_str": f"{instrument}-{pitch:03d}-{velocity:03d}",
    }


def write_nsynth_tree(
    root: Path,
    splits: Mapping[str, Sequence[str]] | None = None,
    pitches: Sequence[int] = (48, 55, 60, 67, 72),
    silent: int = 0,
) -> Path:
    """nsynth-<split>/examples.json + audio/<note_str>.wav, 4 s 16 kHz mono 16-bit notes.

    `splits` maps the official split to its instruments (train/valid instruments disjoint,
    as in NSynth). The last `silent` notes of each instrument are written near-silent
    (about -90 dBFS), the notes the energy filter must drop. Returns `root`.
    """
    splits = splits or {
        "train": ("bass_synthetic_000", "guitar_acoustic_001", "keyboard_electronic_002"),
        "valid": ("flute_acoustic_003",),
        "test": ("flute_acoustic_003",),
    }
    for split, instruments in splits.items():
        folder = root / f"nsynth-{split}"
        examples = {}
        for i, instrument in enumerate(instruments):
            for n, pitch in enumerate(pitches):
                velocity = 100 if split != "test" else 50
                record = nsynth_note(instrument, pitch, velocity)
                amplitude = 3e-5 if n >= len(pitches) - silent else 0.5
                f0 = 440.0 * 2 ** ((pitch - 69) / 12)
                audio = tone(f0, 4.0, NSYNTH_RATE, amplitude, seed=i * 100 + n)
                write_wav(folder / "audio" / f"{record['note_str']}.wav", audio, NSYNTH_RATE)
                examples[record["note_str"]] = record
        (folder / "examples.json").write_text(json.dumps(examples, indent=1), encoding="utf-8")
    return root


def write_folder_tree(root: Path, rows: Mapping[str, Sequence[str]], seconds: float = 2.5) -> Path:
    """Audio files (any names) plus labels.csv (path,labels with ';'); returns the CSV path."""
    lines = ["path,labels"]
    for k, (name, codes) in enumerate(rows.items()):
        write_wav(root / name, tone(110.0 * (k + 1), seconds, 22_050, seed=k), 22_050)
        lines.append(f'"{name}",{";".join(codes)}')
    csv_path = root / "labels.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path


def prepare_store(dataset: str, root: Path, out: Path, *extra: str) -> Path:
    """Run `instrec prepare DATASET ROOT --out OUT --workers 1 ...`; returns OUT."""
    from instrec.cli import main

    code = main(["prepare", dataset, str(root), "--out", str(out), "--workers", "1", *extra])
    assert code == 0, f"instrec prepare {dataset} failed with {code}"
    return out
