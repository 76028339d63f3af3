"""Writing output folders safely: one writer per folder, and files that appear whole.

Two commands writing one folder (two ``harmowam eval --out X``) interleave their
records and race on temporary files. :class:`FolderLock` holds an OS lock on
``<folder>/.harmowam.lock`` while a command writes; a second writer is refused
with a message naming the holder. The lock is ``flock``-based, so a killed holder
releases it with its process: no stale lock to delete by hand.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Callable

LOCK_FILE = ".harmowam.lock"


class FolderLockedError(RuntimeError):
    """Another process is writing the folder."""


class FolderLock:
    """``with FolderLock(folder, "harmowam eval"):`` holds the folder for this process."""

    def __init__(self, folder: str | Path, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.command = command or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))
        self._fd: int | None = None

    def __enter__(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockedError(f"'{self.folder}' is being written by {self._holder(path)}; wait for it to finish "
                                    "or write elsewhere") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd
        return self

    @staticmethod
    def _holder(path: Path) -> str:
        try:
            h = json.loads(path.read_text())
            return f"process {h['pid']} on {h['host']} ('{h['command']}', since {h['since']})"
        except (OSError, ValueError, KeyError):
            return "another process"

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def temporary_name(path: str | Path) -> Path:
    """A sibling of ``path`` that no other writer uses: ``<name>.<pid>-<random>.tmp<suffix>``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` so that ``path`` appears whole or not at all."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_folder(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(folder)`` on a fresh temporary sibling of ``target``, then swap it in: a reader sees the
    old folder or the new one, never half of one (the world-model export)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = temporary_name(target), temporary_name(target.with_name(target.name + ".old"))
    try:
        write(tmp)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
