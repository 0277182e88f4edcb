"""Run claims for the SQLite store: one byte-range lock per run id in a file beside the database.

Why a byte-range (POSIX ``fcntl``) lock: the kernel drops it when its process ends in any way,
SIGKILL included, so a dead process never leaves a run locked; one file serves every run id
(offset = a 62-bit hash of the id), so no lock files pile up and none is ever unlinked (the
unlink-while-locked race of per-run lock files does not exist). Two facts of POSIX locks shape
the code: a process never conflicts with itself (so claims within this process are tracked
here too), and closing *any* descriptor of the file drops all the process's locks on it (so
this process opens the lock file once, and keeps it open while it holds claims).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading

if sys.platform != "win32":
    import fcntl

_registry_lock = threading.Lock()
_files: dict[str, _LockFile] = {}


class _LockFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.held: set[int] = set()
        self.users = 0


def supported() -> bool:
    return sys.platform != "win32"


def offset(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") >> 2


class ClaimLocks:
    """Claims in one lock file. `acquire` never blocks: it answers whether it got the lock."""

    def __init__(self, path: str) -> None:
        self.key = os.path.realpath(path)
        with _registry_lock:
            lock_file = _files.get(self.key)
            if lock_file is None:
                lock_file = _files[self.key] = _LockFile(self.key)  # OSError goes to the caller
            lock_file.users += 1
        self._file = lock_file

    def acquire(self, run_id: str) -> bool:
        at = offset(run_id)
        with _registry_lock:
            if at in self._file.held:
                return False
            try:
                fcntl.lockf(self._file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, at, os.SEEK_SET)
            except OSError:  # EACCES or EAGAIN: another process holds it
                return False
            self._file.held.add(at)
            return True

    def release(self, run_id: str) -> None:
        at = offset(run_id)
        with _registry_lock:
            if at in self._file.held:
                fcntl.lockf(self._file.fd, fcntl.LOCK_UN, 1, at, os.SEEK_SET)
                self._file.held.discard(at)
            self._close_if_unused()

    def close(self) -> None:
        """Stop using the file; it is closed once no store in this process holds claims in it."""
        with _registry_lock:
            self._file.users -= 1
            self._close_if_unused()

    def _close_if_unused(self) -> None:
        lock_file = self._file
        if lock_file.users <= 0 and not lock_file.held and _files.get(self.key) is lock_file:
            os.close(lock_file.fd)
            del _files[self.key]
