"""Outputs under fault: --force never deletes what instrec did not write, two runs never
write one output at once, unwritable or full disks give one line and leave nothing
half-written, stores are readable like other outputs, killed runs' leftovers are cleaned,
and bad --threads is one line. Every command is driven through `instrec.cli.main`."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from dataset_trees import write_folder_tree

from instrec.atomic import claim, replace_folder
from instrec.cli import main
from instrec.data.store import ClipStore, Entry, StoreWriter
from instrec.errors import InstrecError
from instrec.labels import IRMAS_CLASSES
from instrec.model.io import save_model_file
from instrec.model.zoo import build_model
from instrec.predict import SKIPPED_EXIT_CODE
from instrec.tagging import tagger as tagger_module

pytestmark = pytest.mark.fault

SR = 16_000
COMMANDS = ("predict", "prepare", "evaluate", "export")


# ---- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained slim IRMAS model (predict, evaluate and export accept it)."""
    torch.manual_seed(0)
    model = build_model("sharesnet18", width_multiplier=0.25, sinc_filters=16, sinc_stride=48)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_model_file(path, model, IRMAS_CLASSES, threshold=0.5)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 1 s test items, one label each."""
    path = tmp_path_factory.mktemp("store") / "store"
    rng = np.random.default_rng(0)
    with StoreWriter(path, "irmas-test", IRMAS_CLASSES) as writer:
        for k in range(3):
            entry = Entry(Path(f"item{k}.wav"), f"item{k}.wav", (k,), "test", k)
            writer.add(entry, [0.1 * rng.standard_normal(SR).astype(np.float32)], [{}])
        writer.finish(SR, {})
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder dataset of two 1 s files; returns its labels.csv."""
    root = tmp_path_factory.mktemp("dataset")
    return write_folder_tree(root, {"a.wav": ["cel"], "b.wav": ["flu"]}, seconds=1.0)


def tone(path: Path, seconds: float = 1.5) -> Path:
    t = np.arange(round(seconds * SR)) / SR
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    return path


def command_line(command: str, out: Path, model: Path, data: Path, csv: Path) -> list[str]:
    """`instrec COMMAND ...` writing to `out` (inputs may be bogus where the output is
    checked first)."""
    return {
        "predict": ["predict", str(model), str(data), "--output", str(out)],
        "prepare": [
            "prepare",
            "folder",
            str(csv.parent),
            "--csv",
            str(csv),
            "--out",
            str(out),
            "--workers",
            "1",
        ],
        "evaluate": ["evaluate", str(model), str(data), "--out", str(out)],
        "export": ["export", str(model), "--onnx", str(out)],
    }[command]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, the one error line, or '' when there is none)."""
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith(f"instrec {args[0]}: error:")]
    assert len(errors) <= 1, err
    return code, errors[0] if errors else ""


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders): to prove nothing moved."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def strays(folder: Path) -> list[str]:
    """Lock files, temporary files and folders that a run must not leave behind."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name.endswith((".lock", ".tmp", ".onnx.tmp")) or ".tmp-" in p.name or ".old-" in p.name
    )


@pytest.fixture
def without_root_override() -> Iterator[None]:
    """Permission bits bind root too: drop CAP_DAC_OVERRIDE from this thread for the test
    (Linux), so a read-only folder is read-only whoever runs the tests."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if not hasattr(libc, "capget") or libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("running as root without a way to drop CAP_DAC_OVERRIDE")
    saved = data[0].effective
    data[0].effective &= ~(1 << 1)  # CAP_DAC_OVERRIDE
    assert libc.capset(ctypes.byref(header), data) == 0
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


# ---- 1. --force replaces only what instrec wrote ---------------------------------------------


def user_folder(path: Path, name: str, text: str) -> None:
    path.mkdir()
    (path / name).write_text(text)


NOT_OURS = {  # what is at --out: (why it is refused, how to make it given the marker's name)
    "a plain file": ("it is a file", lambda p, marker: p.write_text("my notes")),
    "a folder of user files": (
        "no {marker}",
        lambda p, marker: user_folder(p, "thesis.tex", "years of work"),
    ),
    "a folder with another tool's marker": (
        "its {marker} is not instrec's",
        lambda p, marker: user_folder(p, marker, '{"format": "other"}'),
    ),
}
FOLDER_OUTPUTS = {
    "prepare": ("store.json", "a clip store"),
    "evaluate": ("metrics.json", "an evaluation"),
}


@pytest.mark.parametrize("force", [True, False], ids=["force", "no-force"])
@pytest.mark.parametrize("kind", sorted(NOT_OURS))
@pytest.mark.parametrize("command", sorted(FOLDER_OUTPUTS))
def test_force_never_replaces_what_instrec_did_not_write(
    command: str,
    kind: str,
    force: bool,
    tmp_path: Path,
    model_path: Path,
    store_path: Path,
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker, what = FOLDER_OUTPUTS[command]
    reason, make = NOT_OURS[kind]
    out = tmp_path / "out"
    make(out, marker)
    before = snapshot(tmp_path)
    args = command_line(command, out, model_path, store_path, dataset) + ["--force"] * force
    code, error = run(args, capsys)
    assert code == 2
    assert error == (
        f"instrec {command}: error: {out}: is not {what} written by instrec "
        f"({reason.format(marker=marker)}); refusing to replace it"
    )
    assert snapshot(tmp_path) == before


def test_force_replaces_a_store_and_says_so(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "store"
    args = command_line("prepare", out, Path(), Path(), dataset)
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--force"]) == 0
    err = capsys.readouterr().err
    assert f"replacing {out}, a clip store written by instrec (--force)" in err.splitlines()
    assert len(ClipStore.open(out)) == 2 and strays(tmp_path) == []


def test_force_replaces_an_evaluation_and_says_so(
    tmp_path: Path, model_path: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    args = command_line("evaluate", out, model_path, store_path, Path())
    assert main([*args, "--threshold-from", "0.2"]) == 0
    capsys.readouterr()
    assert main([*args, "--threshold-from", "0.3", "--force"]) == 0
    err = capsys.readouterr().err
    assert f"replacing {out}, an evaluation written by instrec (--force)" in err.splitlines()
    assert json.loads((out / "metrics.json").read_text())["threshold"] == 0.3
    assert strays(tmp_path) == []


@pytest.mark.parametrize("command", ["predict", "export"])
def test_overwrite_never_writes_over_an_input_or_a_folder(
    command: str, tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    song = tone(tmp_path / "song.wav")
    victim = song if command == "predict" else tmp_path / model_path.name
    if command == "export":
        victim.write_bytes(model_path.read_bytes())
    folder = tmp_path / "results"
    (folder / "keep").mkdir(parents=True)
    before = snapshot(tmp_path)
    for out, message in ((victim, "is one of the inputs"), (folder, "is a folder")):
        args = command_line(command, out, victim if command == "export" else model_path, song, song)
        code, error = run([*args, "--overwrite"], capsys)
        assert code == 2 and error.startswith(f"instrec {command}: error: {out}: {message}")
    assert snapshot(tmp_path) == before


# ---- 2. two runs never write one output at once ----------------------------------------------


def test_a_second_claim_fails_at_once_and_every_exit_releases_it(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    lock = tmp_path / ".report.json.lock"
    with claim(out) as held:
        assert held == lock and lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(InstrecError) as refused, claim(out):
            pass
    assert str(refused.value) == (
        f"{out}: is being written by another instrec run (process {os.getpid()}, lock file "
        f"{lock}); if no run is active, remove {lock}"
    )
    assert not lock.exists()
    for interruption in (RuntimeError("failed"), KeyboardInterrupt()):
        with pytest.raises(type(interruption)), claim(out):
            raise interruption
        assert not lock.exists()
    with claim(out):  # free again
        pass


@pytest.mark.parametrize("flag", ["", "overwrite"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_run_fails_at_once_on_an_output_another_run_is_writing(
    command: str, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Claimed here as another run would: refused before the (bogus) inputs are read, with
    --overwrite / --force too."""
    out = tmp_path / "out"
    args = command_line(command, out, tmp_path / "m.pt", tmp_path / "in", tmp_path / "x.csv")
    if flag:
        args.append("--force" if command in FOLDER_OUTPUTS else "--overwrite")
    with claim(out) as lock:
        code, error = run(args, capsys)
        assert lock.exists()
    assert code == 2
    assert error.startswith(f"instrec {command}: error: {out}: is being written by another")
    assert error.endswith(f"if no run is active, remove {lock}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


HOLD = """
import sys
from instrec.atomic import claim, replace_folder
with claim(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_another_process_holding_the_output_blocks_a_run_until_it_ends_or_dies(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, lock = tmp_path / "tags.json", tmp_path / ".tags.json.lock"
    args = command_line("predict", out, model_path, tone(tmp_path / "s.wav"), Path())

    def hold() -> subprocess.Popen[str]:
        other = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert other.stdout is not None and other.stdout.readline() == "held\n"
        return other

    other = hold()
    code, error = run(args, capsys)
    assert code == 2 and f"(process {other.pid}, lock file {lock})" in error
    other.communicate("")  # ends normally: the lock file goes with it
    assert not lock.exists()

    other = hold()
    other.kill()  # killed: its lock file stays, but the lock died with it
    other.wait()
    assert lock.exists()
    assert run(args, capsys) == (0, "")
    assert out.is_file() and strays(tmp_path) == []


# ---- 3. unwritable destinations and full disks -----------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_file_is_one_line_before_any_work(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("a file where a folder would go")
    out = tmp_path / "notes.txt" / "sub" / "out"
    args = command_line(command, out, tmp_path / "m.pt", tmp_path / "in", tmp_path / "x.csv")
    code, error = run(args, capsys)
    assert code == 2
    assert error.startswith(f"instrec {command}: error: {out.parent}: cannot create this folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.usefixtures("without_root_override")
@pytest.mark.parametrize("command", [*COMMANDS, "predict --timeline"])
def test_a_read_only_destination_is_one_line_before_any_work(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inputs are bogus: the output is checked before they are read (for predict, before
    any file is tagged)."""
    locked = tmp_path / "read-only"
    locked.mkdir()
    out = locked / "out"
    args = command_line(command.split()[0], out, tmp_path / "m.pt", tmp_path / "in", tmp_path)
    if command == "predict --timeline":
        args = [*args[:3], "--timeline", str(out)]
    locked.chmod(0o555)
    try:
        code, error = run(args, capsys)
    finally:
        locked.chmod(0o755)
    assert code == 2
    assert error == f"instrec {args[0]}: error: {out}: cannot write in {locked} (Permission denied)"
    assert list(locked.iterdir()) == []


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from instrec.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_while_preparing_is_one_line_and_leaves_nothing(
    tmp_path: Path, dataset: Path
) -> None:
    """A file-size limit stands in for a full disk: the store's audio outgrows it."""
    out = tmp_path / "store"
    args = command_line("prepare", out, Path(), Path(), dataset)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    assert hard == resource.RLIM_INFINITY or hard > 4096
    result = subprocess.run(
        [sys.executable, "-c", LIMITED, "4096", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 2, result.stderr
    assert f"instrec prepare: error: {out}: cannot write (File too large)" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def disk_full(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_the_report_keeps_the_old_one_and_no_temporary(
    tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "tags.txt"
    out.write_text("yesterday's report")
    args = command_line("predict", out, model_path, tone(tmp_path / "s.wav"), Path())
    monkeypatch.setattr(Path, "write_text", disk_full)
    code, error = run([*args, "--overwrite"], capsys)
    assert code == 2
    assert error == f"instrec predict: error: {out}: cannot write (No space left on device)"
    assert out.read_bytes() == b"yesterday's report" and strays(tmp_path) == []


def test_a_full_disk_while_evaluating_keeps_the_old_results(
    tmp_path: Path,
    model_path: Path,
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "eval"
    args = command_line("evaluate", out, model_path, store_path, Path())
    assert main(args) == 0
    before = snapshot(tmp_path)
    monkeypatch.setattr(Path, "write_text", disk_full)
    code, error = run([*args, "--force"], capsys)
    assert code == 2
    assert error.startswith("instrec evaluate: error: ") and "No space left on device" in error
    assert snapshot(tmp_path) == before and strays(tmp_path) == []


def test_a_full_disk_while_exporting_leaves_no_file(
    tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from instrec.export import onnx_graph

    out = tmp_path / "model.onnx"
    monkeypatch.setattr(onnx_graph, "_write_onnx", disk_full)
    code, error = run(command_line("export", out, model_path, Path(), Path()), capsys)
    assert code == 2
    assert error == f"instrec export: error: {out}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_swap_puts_the_earlier_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination, finished = tmp_path / "store", tmp_path / "store.tmp-1-abcdefgh"
    user_folder(destination, "store.json", "earlier")
    user_folder(finished, "store.json", "new")
    real_replace = os.replace

    def fails_moving_in(source: Path, target: Path) -> None:
        if Path(source) == finished:
            disk_full()
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", fails_moving_in)
    with pytest.raises(OSError, match="No space left"):
        replace_folder(finished, destination)
    assert (destination / "store.json").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", finished.name]


# ---- predict: a failing file never stops the batch or leaves half an output ------------------


def test_a_bad_file_mid_batch_is_skipped_and_the_rest_written_whole(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    tone(songs / "a.wav")
    (songs / "b.wav").write_bytes(b"RIFF, but no wave")
    tone(songs / "c.wav")
    out, timeline = tmp_path / "tags.json", tmp_path / "timeline"
    code = main(
        [
            "predict",
            str(model_path),
            str(songs),
            "--format",
            "json",
            "--output",
            str(out),
            "--timeline",
            str(timeline),
        ]
    )
    assert code == SKIPPED_EXIT_CODE
    results = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert [name for name, r in results.items() if r["error"] is None] == ["a.wav", "c.wav"]
    assert "cannot decode" in results["b.wav"]["error"]
    assert sorted(p.name for p in timeline.iterdir()) == ["a.csv", "a.png", "c.csv", "c.png"]
    assert strays(tmp_path) == []


def test_an_interrupted_batch_writes_no_report_and_releases_its_outputs(
    tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    for name in ("a", "b"):
        tone(songs / f"{name}.wav")
    original = tagger_module.Tagger.predict_files

    def interrupted(self: tagger_module.Tagger, *args: object, **kwargs: object) -> Iterator:
        iterator = original(self, *args, **kwargs)
        yield next(iterator)
        raise KeyboardInterrupt

    monkeypatch.setattr(tagger_module.Tagger, "predict_files", interrupted)
    out, timeline = tmp_path / "tags.json", tmp_path / "timeline"
    args = ["predict", str(model_path), str(songs), "--output", str(out)]
    assert main([*args, "--timeline", str(timeline)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists() and strays(tmp_path) == [] and strays(timeline) == []


# ---- 4. stores are as readable as every other output -----------------------------------------


def test_stores_and_evaluations_get_the_modes_of_other_outputs(
    tmp_path: Path, dataset: Path, model_path: Path
) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    store = tmp_path / "store"
    assert main(command_line("prepare", store, Path(), Path(), dataset)) == 0
    evaluation = tmp_path / "eval"
    assert main(command_line("evaluate", evaluation, model_path, store, Path())) == 0
    for folder in (store, evaluation):
        assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, folder
        for file in folder.iterdir():
            assert file.stat().st_mode & 0o777 == 0o666 & ~umask, file


# ---- 5. what killed runs left is cleaned, and nothing else -----------------------------------


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


@pytest.mark.parametrize("command", sorted(FOLDER_OUTPUTS))
def test_leftovers_of_killed_runs_are_removed_and_named(
    command: str,
    tmp_path: Path,
    dead_pid: int,
    model_path: Path,
    store_path: Path,
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out[1]"  # brackets: no glob may match what it should not
    leftovers = [
        "out[1].tmp-k3j_x9qz",
        "out[1].tmp-99999999999999999999-abcd1234",
        f"out[1].tmp-{dead_pid}-abcd1234",
        f"out[1].old-{dead_pid}-zz9_0000",
    ]
    kept = [
        f"out[1].tmp-{os.getpid()}-live0000",
        "out[1].tmp-backup",
        "out[1].tmpfolder1",
        "out1.tmp-abcd1234",
        "out[1].tmp-abcd12345",
    ]
    for name in leftovers + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "audio.i16").write_bytes(b"\0" * 8)
    (tmp_path / "out[1].tmp-filefile").write_text("a file, not a folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_text("precious")
    (tmp_path / "out[1].tmp-linklink").symlink_to(tmp_path / "mine")
    args = command_line(command, out, model_path, store_path, dataset)
    assert main(args) == 0
    err = capsys.readouterr().err
    named = [line for line in err.splitlines() if line.startswith("removed what interrupted")]
    assert named == [
        f"removed what interrupted runs left beside {out}: {', '.join(sorted(leftovers))}"
    ]
    left = {p.name for p in tmp_path.iterdir()}
    assert not left & set(leftovers)
    assert set(kept) | {"out[1].tmp-filefile", "out[1].tmp-linklink", "mine"} <= left
    assert (tmp_path / "mine" / "data.txt").read_text() == "precious"


def test_a_store_cut_off_mid_swap_is_put_back_not_removed(
    tmp_path: Path, dataset: Path, dead_pid: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed between moving the old store aside and moving the new one in: the old one
    is the only copy; the next run restores it (and, without --force, keeps it)."""
    out = tmp_path / "store"
    args = command_line("prepare", out, Path(), Path(), dataset)
    assert main(args) == 0
    aside = tmp_path / f"store.old-{dead_pid}-abcdefgh"
    aside.mkdir()
    out.rename(aside / "store")
    before = snapshot(aside / "store")
    capsys.readouterr()
    code, error = run(args, capsys)
    assert code == 2 and error.endswith(f"{out}: already exists (use --force to replace it)")
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["store"]


# ---- 6. option values ------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["-1", "0"])
def test_threads_below_one_is_one_line(
    threads: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error = run(
        ["predict", str(tmp_path / "m.pt"), str(tmp_path), "--threads", threads], capsys
    )
    assert code == 2
    assert error == f"instrec predict: error: --threads must be at least 1, got {threads}"
