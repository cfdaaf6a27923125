"""One writer per results file or folder.

Two runs appending to one file would each record every video (and an SQLite file would
fail one of them halfway), so a store holds an exclusive flock on the file itself, or on
a results folder itself, from before it reads what is done until it is closed. The lock
is on the file, not its name: a symlink (or hard link) to it is the same file, and the
kernel releases it when the process dies, however it dies. A second run is refused in
one line that names the holder's process where Linux says it (/proc/locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from ..errors import VidclassError
from ..files import open_regular, path_error


class Held:
    """An open file (or folder) holding a writer's lock: `close` lets go, and so does
    dropping it (a store a caller forgot to close)."""

    def __init__(self, fd: int):
        self.fd: int | None = fd

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self):
        self.close()


def hold(path: str | os.PathLike, folder: bool = False) -> Held:
    """The open file that holds the writer's lock on `path` (made if missing; `folder`:
    a results folder, which must exist); close it to let go. A VidclassError if
    another run (or another store in this process) holds it."""
    if folder:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError) as exc:
            raise path_error(path, exc) from None
    else:
        fd = open_regular(path, os.O_RDONLY | os.O_CREAT, "results file")
    lock = Held(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = holder(fd)
        lock.close()
        by = f" (pid {pid})" if pid is not None else ""
        raise VidclassError(
            f"{path} is being written by another run{by}; "
            "wait for it to finish, or write to another file"
        ) from None
    except OSError as exc:  # a file system without locks
        lock.close()
        raise VidclassError(f"{path}: cannot lock it for writing ({exc.strerror})") from None
    return lock


def holder(fd: int) -> int | None:
    """The process holding an flock on the file open as `fd`, where /proc/locks says."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError), open("/proc/locks", "rb") as f:
        for line in f:
            fields = line.split()
            # b"1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF" (waiters have b"->")
            if len(fields) >= 6 and fields[1] == b"FLOCK" and fields[5] == where.encode():
                with contextlib.suppress(ValueError):
                    return int(fields[4])
    return None
