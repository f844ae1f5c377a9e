"""Outputs written safely: claimed against a concurrent run, built beside their place and
renamed in (nothing half-written), and replacing only what instrec itself wrote.

Imports nothing heavy, so the user-facing commands can use it as freely as training does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from instrec.errors import InstrecError

LOCK_ATTEMPTS = 5  # a lock file can be removed by its holder just as another run opens it


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Report an OSError raised in the block (disk full, read-only, no permission) as one
    line naming the output `path` instead of a traceback."""
    try:
        yield
    except OSError as error:
        raise InstrecError(f"{path}: cannot write ({error.strerror or error})") from None


def make_folder(folder: str | Path) -> Path:
    """Create `folder` and its parents, or say in one line why it cannot be."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InstrecError(f"{folder}: cannot create this folder ({error.strerror})") from None
    return folder


def check_writable(folder: str | Path) -> None:
    """Create `folder` if needed and prove a file can be written in it, before any work."""
    folder = make_folder(folder)
    with writing(folder), tempfile.TemporaryFile(dir=folder):
        pass


@contextlib.contextmanager
def claim(path: str | Path) -> Iterator[Path]:
    """Hold the sole right to write `path` for the block: an exclusive lock on the hidden
    file `.NAME.lock` beside it, released on success, error and Ctrl-C.

    A second run writing the same output fails at once rather than silently replacing the
    first's work. The lock (flock) dies with its process, so a killed run's leftover lock
    file blocks nobody. Creating the lock also proves the folder writable before any work.
    Yields the lock file's path.
    """
    path = Path(path)
    lock = make_folder(path.parent) / f".{path.name}.lock"
    handle = _lock(path, lock)
    try:
        yield lock
    finally:
        _unlock(lock, handle)


def _lock(path: Path, lock: Path) -> int:
    """Open and flock `lock`, write our pid in it; returns the open descriptor."""
    for _ in range(LOCK_ATTEMPTS):
        try:
            handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise InstrecError(
                f"{path}: cannot write in {lock.parent} ({error.strerror})"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(handle)
            if not isinstance(error, BlockingIOError):
                raise InstrecError(f"{path}: cannot lock {lock} ({error.strerror})") from None
            holder = _read_pid(lock)
            by = f"process {holder}, " if holder else ""
            raise InstrecError(
                f"{path}: is being written by another instrec run ({by}lock file {lock}); "
                f"if no run is active, remove {lock}"
            ) from None
        if _same_file(handle, lock):
            try:
                os.ftruncate(handle, 0)
                os.write(handle, f"{os.getpid()}\n".encode())
            except OSError as error:
                _unlock(lock, handle)
                raise InstrecError(f"{path}: cannot write {lock} ({error.strerror})") from None
            return handle
        os.close(handle)  # its holder removed it as we opened it: lock the next one
    raise InstrecError(f"{path}: could not lock {lock} after {LOCK_ATTEMPTS} attempts")


def _unlock(lock: Path, handle: int) -> None:
    """Remove the lock file (if it is still ours) while holding it, then let go."""
    try:
        if _same_file(handle, lock):
            with contextlib.suppress(OSError):
                lock.unlink()
    finally:
        os.close(handle)


def _same_file(handle: int, path: Path) -> bool:
    try:
        here, there = os.fstat(handle), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (perhaps another user's)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    except PermissionError:  # another user's
        pass
    return True


def refuse_to_overwrite(path: str | Path, overwrite: bool) -> None:
    """An existing output file is replaced only when the user said --overwrite, and a
    folder never is."""
    path = Path(path)
    if path.is_dir():
        raise InstrecError(f"{path}: is a folder; give a file name")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise InstrecError(f"{path}: already exists (use --overwrite to replace it)")


def refuse_inputs_as_output(output: str | Path, inputs: Sequence[str | Path]) -> None:
    """An output never replaces one of the command's own input files."""
    target = Path(output).resolve()
    for given in inputs:
        if Path(given).resolve() == target:
            raise InstrecError(f"{output}: is one of the inputs; refusing to write over it")


def check_replaceable(
    path: Path, marker: str, what: str, force: bool, owned: Callable[[dict[str, Any]], bool]
) -> bool:
    """Whether `path` holds an earlier output to replace; refuses anything else.

    Nothing there or an empty folder: nothing to replace. A folder holding `marker` (a
    JSON object that `owned` recognises as instrec's): replaced with `force` only, and said
    on stderr. Anything else (a file, a folder of other files) is refused even with
    `force`: --force replaces what instrec made, never the user's own files.
    """
    if not (path.exists() or path.is_symlink()):
        return False
    if path.is_dir() and not any(path.iterdir()):
        return False
    reason = _not_ours(path, marker, owned)
    if reason:
        raise InstrecError(
            f"{path}: is not {what} written by instrec ({reason}); refusing to replace it"
        )
    if not force:
        raise InstrecError(f"{path}: already exists (use --force to replace it)")
    print(f"replacing {path}, {what} written by instrec (--force)", file=sys.stderr)
    return True


def _not_ours(path: Path, marker: str, owned: Callable[[dict[str, Any]], bool]) -> str:
    """Why `path` is not an output of ours ('' when it is)."""
    if not path.is_dir():
        return "it is a file"
    try:
        content = json.loads((path / marker).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {marker}"
    except (OSError, ValueError):
        content = None
    if isinstance(content, dict) and owned(content):
        return ""
    return f"its {marker} is not instrec's"


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside `path`, renamed onto it only if the block succeeds.

    The name is hidden and ends in `suffix`, so a leftover from a killed process matches
    no data glob such as `*.wav`. OSErrors pass through: wrap the block in `writing(path)`
    to report them as one line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    temp = Path(name)
    try:
        os.chmod(temp, 0o666 & ~_umask())  # readable like any other output (mkstemp: 0600)
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename."""
    with writing(path), atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_folder(destination: Path, kind: str = "tmp") -> Path:
    """An empty folder beside `destination` named NAME.KIND-PID-XXXXXXXX, readable like any
    other output (mkdtemp makes it private). The pid tells a later run whether the maker
    still lives (see remove_leftovers)."""
    prefix = f"{destination.name}.{kind}-{os.getpid()}-"
    make_folder(destination.parent)
    with writing(destination):
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=destination.parent))
        os.chmod(folder, 0o777 & ~_umask())
    return folder


def replace_folder(finished: Path, destination: Path) -> None:
    """Swap a finished folder in for `destination`; an older one is removed only after,
    and put back if the swap fails."""
    if not (destination.exists() or destination.is_symlink()):
        os.replace(finished, destination)
        return
    old = temp_folder(destination, "old")
    os.replace(destination, old / destination.name)
    try:
        os.replace(finished, destination)
    except BaseException:
        os.replace(old / destination.name, destination)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(destination: Path) -> list[Path]:
    """Remove the NAME.tmp-* and NAME.old-* folders that killed runs left beside
    `destination`, unless their maker still runs; say on stderr what was removed.

    Only names of temp_folder's exact pattern (or the older NAME.tmp-XXXXXXXX) are
    touched. An old-* folder still holding the only copy of `destination` (a run killed
    mid-swap) is moved back into place instead of removed.
    """
    pattern = re.compile(rf"{re.escape(destination.name)}\.(tmp|old)-(?:(\d+)-)?[a-z0-9_]{{8}}")
    if not destination.parent.is_dir():
        return []
    removed = []
    for folder in sorted(destination.parent.iterdir()):
        found = pattern.fullmatch(folder.name)
        if not found or folder.is_symlink() or not folder.is_dir():
            continue
        if found[2] is not None and _alive(int(found[2])):
            continue
        kept = folder / destination.name
        if found[1] == "old" and kept.is_dir() and not destination.exists():
            with writing(destination):
                os.replace(kept, destination)
            print(f"restored {destination} from {folder} (a swap was cut short)", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        names = ", ".join(p.name for p in removed)
        print(f"removed what interrupted runs left beside {destination}: {names}", file=sys.stderr)
    return removed
