"""The plan directory (`--out`): never delete what roadbike did not write.

A plan directory carries roadbike's marker, `.roadbike-plan.json`, listing every file the plan wrote.
Only an empty directory or one with that marker is replaced, and only when it holds nothing but the
files the marker lists (no other file, no symbolic link). The new tree is written into a hidden
directory beside it (`.<name>.roadbike-new-*`) and swapped in once complete, so an interrupted or failed
run leaves the previous plan, or nothing, never a tree that reads as a result. A lock beside the
directory (`.<name>.roadbike-lock`, held with flock for the whole run) makes a second plan into the same
directory refuse at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from roadbike import interrupt

MARKER = ".roadbike-plan.json"
MARKER_KIND = "roadbike-plan"


class OutDirError(Exception):
    """The directory cannot be used for a plan (exit 2): nothing was written or deleted."""


class OutDirWriteError(Exception):
    """Writing the plan failed (a full disk, a read-only file system; exit 3): nothing was replaced."""


def _marker_files(directory: Path) -> set[str] | None:
    """The files a marker lists, or None when the directory has no valid roadbike marker."""
    marker = directory / MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        document = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = document.get("files") if isinstance(document, dict) else None
    if document.get("kind") != MARKER_KIND or not isinstance(files, list):  # type: ignore[union-attr]
        return None
    listed = set()
    for name in files:
        if not isinstance(name, str) or name.startswith("/") or ".." in Path(name).parts or not name:
            return None
        listed.add(name)
    return listed


def _foreign_entries(directory: Path, listed: set[str]) -> list[str]:
    """What the directory holds that roadbike's marker does not list (symbolic links always count)."""
    foreign = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in dirs:
            path = Path(root, name)
            if path.is_symlink():
                foreign.append(str(path.relative_to(directory)))
        for name in files:
            path = Path(root, name)
            relative = str(path.relative_to(directory))
            if relative == MARKER:
                continue
            if path.is_symlink() or not path.is_file() or relative not in listed:
                foreign.append(relative)
    return sorted(foreign)


def check_replaceable(out_dir: Path) -> None:
    """Refuse (OutDirError) a target that is not absent, empty, or a plan directory of roadbike's own."""
    if out_dir.is_symlink():
        raise OutDirError(f"--out {out_dir}: is a symbolic link; give the directory itself")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutDirError(f"--out {out_dir}: exists and is not a directory")
    try:
        empty = not any(out_dir.iterdir())
    except OSError as exc:
        raise OutDirError(f"--out {out_dir}: cannot be read: {exc.strerror or exc}") from None
    if empty:
        return
    listed = _marker_files(out_dir)
    if listed is None:
        raise OutDirError(
            f"--out {out_dir}: not empty and not a roadbike plan directory (no {MARKER}); refusing to "
            "replace it: choose an empty or new directory, or remove this one yourself"
        )
    foreign = _foreign_entries(out_dir, listed)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutDirError(
            f"--out {out_dir}: holds files roadbike did not write ({shown}); refusing to replace it: "
            "move them away or choose another directory"
        )


def _remove_listed(directory: Path, listed: set[str]) -> None:
    """Delete the files roadbike wrote (and the directories they leave empty), nothing else."""
    for root, dirs, files in os.walk(directory, topdown=False, followlinks=False):
        for name in files:
            path = Path(root, name)
            relative = str(path.relative_to(directory))
            if (relative in listed or relative == MARKER) and not path.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for name in dirs:
            with contextlib.suppress(OSError):  # not empty, or a symbolic link: left as it is
                Path(root, name).rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()


class PlanDirectory:
    """`with PlanDirectory(out) as plan: plan.write(files)`: locked, written beside, swapped in on commit."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.parent = out_dir.parent
        self.staging: Path | None = None
        self._lock_fd: int | None = None
        self._lock_path = self.parent / f".{out_dir.name}.roadbike-lock"
        self._cleanup_key: int | None = None

    def __enter__(self) -> PlanDirectory:
        check_replaceable(self.out_dir)
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutDirError(f"--out {self.out_dir}: {exc.strerror or exc}") from None
        self._lock()
        try:
            check_replaceable(self.out_dir)  # again, now that no other plan can change it
            with interrupt.critical():
                self.staging = Path(
                    tempfile.mkdtemp(prefix=f".{self.out_dir.name}.roadbike-new-", dir=self.parent)
                )
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.staging, 0o777 & ~umask)  # as mkdir would make it, not mkdtemp's 0700
                self._cleanup_key = interrupt.on_interrupt(self._abandon)
        except OSError as exc:
            self._unlock()
            raise OutDirError(f"--out {self.out_dir}: {exc.strerror or exc}") from None
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._discard()
        if self._cleanup_key is not None:
            interrupt.forget(self._cleanup_key)
        self._unlock()

    def _lock(self) -> None:
        while True:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OutDirError(
                    f"--out {self.out_dir}: cannot create {self._lock_path}: {exc.strerror}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OutDirError(
                        f"--out {self.out_dir}: another roadbike plan is writing this directory "
                        f"(lock {self._lock_path}); wait for it to finish or choose another --out"
                    ) from None
                raise OutDirError(
                    f"--out {self.out_dir}: cannot lock {self._lock_path}: {exc.strerror}"
                ) from None
            # The lock file may have been removed by the plan that held it just before: retry on a new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self._lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            self._lock_path.unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    def _abandon(self) -> None:
        """On interrupt: nothing of this run stays, the staging tree nor the lock."""
        self._discard()
        self._unlock()

    def _discard(self) -> None:
        """Remove the staging tree (roadbike's own, freshly made) if it was not swapped in."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def write(self, files: dict[str, str]) -> None:
        """Write every file into the staging tree, the marker last (OutDirWriteError on failure)."""
        assert self.staging is not None
        try:
            for relative in sorted(files):
                parts = Path(relative).parts
                if not parts or Path(relative).is_absolute() or ".." in parts or relative == MARKER:
                    raise ValueError(f"the plan would write {relative!r}, outside its directory")
                path = self.staging / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(files[relative])
            marker = {"kind": MARKER_KIND, "files": sorted(files)}
            (self.staging / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            self._discard()
            raise OutDirWriteError(
                f"cannot write the plan into {self.out_dir.parent}: {exc.strerror or exc}"
                f"{' (' + exc.filename + ')' if isinstance(exc.filename, str) else ''}; "
                f"{self.out_dir} was left as it was"
            ) from None

    def commit(self) -> None:
        """Swap the finished tree in; the previous plan's files are then deleted (only those)."""
        assert self.staging is not None
        with interrupt.critical():
            check_replaceable(self.out_dir)
            previous: Path | None = None
            try:
                if self.out_dir.exists():
                    previous = Path(
                        tempfile.mkdtemp(prefix=f".{self.out_dir.name}.roadbike-old-", dir=self.parent)
                    )
                    os.replace(self.out_dir, previous / "plan")
                try:
                    os.rename(self.staging, self.out_dir)
                except OSError:
                    if previous is not None:
                        os.rename(previous / "plan", self.out_dir)
                        previous.rmdir()
                    raise
            except OSError as exc:
                self._discard()
                raise OutDirWriteError(
                    f"cannot put the plan in place at {self.out_dir}: {exc.strerror or exc}"
                ) from None
            self.staging = None
            if previous is not None:
                old = previous / "plan"
                _remove_listed(old, _marker_files(old) or set())
                with contextlib.suppress(OSError):
                    previous.rmdir()


@contextlib.contextmanager
def plan_directory(out_dir: Path) -> Iterator[PlanDirectory]:
    with PlanDirectory(out_dir) as directory:
        yield directory
