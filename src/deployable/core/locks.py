"""What lets several runs share one cache: advisory file locks, atomic writes, and folders built once.

Two runs of one project at once (two CI jobs on one runner, ``deployable gate`` while ``deployable run`` is going)
share ``cache_dir``. Every shared write goes through this module:

- a file is written to a uniquely named temporary file beside it, flushed to disk, and renamed into place with
  ``os.replace``, so a reader sees the old file or the new one, never half of one;
- a folder (a variant artifact) is built in a uniquely named temporary folder and renamed into place under a lock,
  so it is built once while the other run waits for it, and a build that dies leaves nothing that looks finished;
- the lock is ``fcntl.flock`` on a lock file beside what it guards. The lock is held by the open file, not by the
  file's existence, so the kernel releases it when the holder exits or is killed: a crash never leaves a stale lock.
  Lock files are left in place (empty); deleting one while another process waits on it would let a third process
  lock a new file of the same name at the same time.

Without ``fcntl`` (Windows) there is no lock: a warning says so once, folders are still published by an atomic
rename where the first finished writer wins, but the same artifact may be built twice at once.

This module imports only the standard library.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_held = threading.local()  # lock files this thread holds: taking one twice would wait for itself forever
_warned = False


def _held_paths() -> set[str]:
    if not hasattr(_held, "paths"):
        _held.paths = set()
    return _held.paths


@contextlib.contextmanager
def file_lock(path: str | Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``path`` (made if missing) for the block, waiting while another has it.

    Args:
        path: the lock file, beside what it guards (``<folder>.lock``).
        on_wait: called once, before waiting, when another process holds the lock (to say why the run pauses).

    Yields:
        True when the lock is real; False on a platform without ``fcntl``, where nothing is locked.

    Raises:
        RuntimeError: this thread already holds the lock (it would wait for itself forever).
    """
    global _warned
    path = Path(path)
    key = os.path.abspath(path)
    held = _held_paths()
    if key in held:
        raise RuntimeError(f"{path} is already locked by this thread")
    if fcntl is None:  # pragma: no cover - Windows
        if not _warned:
            _warned = True
            warnings.warn(
                "no fcntl on this platform: runs sharing one cache_dir at once are not serialized (each builds "
                "its own copy and the first finished one is kept)",
                RuntimeWarning,
                stacklevel=3,
            )
        yield False
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield True
        finally:
            held.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | Path, write: Callable[[object], None], *, binary: bool = True, durable: bool = True
) -> Path:
    """Write ``path`` through ``write(file)`` on a uniquely named temporary file beside it, then ``os.replace``.

    A reader sees the old file or the new one, never half of one; two writers at once each write their own
    temporary file and the last rename wins; a failure leaves no temporary file. The temporary file is opened
    with ``"x"`` (not ``mkstemp``) so it gets the usual umask permissions. ``durable`` also fsyncs the file before
    the rename, so a power cut cannot leave an empty file under the final name; a cache that can recompute what it
    loses (the prediction store) skips it, since it writes once per forward pass.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        text_kw = {} if binary else {"encoding": "utf-8", "newline": "\n"}
        with open(tmp, "xb" if binary else "x", **text_kw) as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda fh: fh.write(text), binary=False)  # type: ignore[attr-defined]


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _remove_aside(folder: Path) -> None:
    """Rename ``folder`` to a unique hidden name, then delete it (a reader with files open keeps them)."""
    aside = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.old")
    try:
        os.replace(folder, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def build_once(folder: str | Path, build: Callable[[Path], None], *, finished: Callable[[Path], bool]) -> bool:
    """Make ``folder`` with ``build(tmp_folder)`` unless it is finished; at most one process builds it at a time.

    Check finished, take the lock ``<folder>.lock``, check again (another run may have built it while we waited),
    delete temporary folders of builds that died (nobody else builds this folder while we hold the lock), build in
    a uniquely named temporary folder beside ``folder``, flush it to disk and rename it into place. A folder at
    ``folder`` that is not ``finished`` (a damaged one) is replaced; a finished one that appeared meanwhile (only
    possible without a lock) is kept and ours dropped. A failed or killed build leaves nothing that looks finished.

    Args:
        folder: where the finished artifact lives.
        build: fills the temporary folder it is given; it must make ``finished`` true of that folder's contents.
        finished: whether a folder holds a finished artifact (e.g. its metadata file exists and parses).

    Returns:
        True when this call built the folder, False when it was already there (or another run built it).
    """
    folder = Path(folder)
    if finished(folder):
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.with_name(f"{folder.name}.lock")) as locked:
        if finished(folder):
            return False
        prefix = f".{folder.name}."
        if locked:  # every temporary folder of this name belongs to a build that died
            for orphan in folder.parent.glob(f"{prefix}*"):
                if orphan.is_dir():
                    shutil.rmtree(orphan, ignore_errors=True)
        tmp = folder.with_name(f"{prefix}{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
        tmp.mkdir(0o777)  # mkdir, not mkdtemp: the usual umask permissions, like any folder of the cache
        try:
            build(tmp)
            if not finished(tmp):
                raise RuntimeError(f"building {folder.name} did not make a finished artifact")
            _fsync_tree(tmp)
            if folder.exists() and not finished(folder):
                _remove_aside(folder)
            try:
                os.replace(tmp, folder)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not finished(folder):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another writer finished first: keep theirs
                return False
            _fsync_dir(folder.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return True
