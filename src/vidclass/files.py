"""Checks on the files a user names before anything reads or writes them, and the one
way vidclass writes a file whole.

Only regular files are read: a FIFO would block, /dev/zero or /dev/full never end.
Every failure (missing, a folder, no permission, a name too long or with a NUL) is a
VidclassError naming the path, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import VidclassError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, ValueError):  # a NUL in the name, or a name the OS cannot take
        return "not a valid file name"
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return (exc.strerror or str(exc)).lower()


def path_error(path, exc: OSError | ValueError) -> VidclassError:
    return VidclassError(f"{path}: {_reason(exc)}")


def _not_regular(path, mode: int, what: str) -> VidclassError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return VidclassError(f"{path}: is {kind}, not a {what}")


def regular_file_size(path: str | os.PathLike, what: str = "file") -> int:
    """The size of `path`, which must be a regular file (links followed)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:
        raise path_error(path, exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, what)
    return st.st_size


def open_regular(path: str | os.PathLike, flags: int, what: str = "file") -> int:
    """os.open `path` with `flags`, refusing anything but a regular file. Opened
    non-blocking and checked on the open descriptor, so a FIFO cannot hang it and a
    file swapped in between the check and the open is still caught."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # said plainly, before opening can fail oddly
            raise _not_regular(path, mode, what)
    except FileNotFoundError:
        pass  # O_CREAT may make it
    except (OSError, ValueError) as exc:
        raise path_error(path, exc) from None
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o644)
    except (OSError, ValueError) as exc:
        raise path_error(path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, what)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exists(path: str | os.PathLike) -> bool:
    """Like os.path.exists, but an error for a name the OS refuses rather than False
    (a missing parent folder is still just False)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except (OSError, ValueError) as exc:
        raise path_error(path, exc) from None
    return True


# In the name of a file still being written (or left by a writer that was killed).
PARTIAL = ".partial-"


def is_partial(path: Path) -> bool:
    return path.name.startswith(".") and PARTIAL in path.name


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (setting it to
    read it back would race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_mode(partial: Path) -> None:
    """Give a written file the mode a new file of the user's gets (0666 less the umask),
    whatever its writer chose: some make their files 0600 (safetensors does, through a
    temporary file), which would leave a model folder's files unlike each other."""
    st = os.lstat(partial)
    mode = 0o666 & ~_umask()
    if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
        os.chmod(partial, mode)


@contextlib.contextmanager
def written_whole(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """A name beside `path` for the block to write; it becomes `path` in one step when
    the block succeeds, and is removed when it fails. Readers never see a half-written
    file, whatever kills the writer. The name is hidden (a dot first, which folder
    readers such as pyarrow's skip; see PARTIAL) and keeps the suffix, by which some
    writers pick the format. The file gets the mode of any new file of the user's (0666
    less the umask), whatever mode its writer gave it. `durable`: on disk before it is
    renamed, for results that must survive a power cut."""
    path = Path(path)
    # Random, not the pid: threads of one process (serve) may write the same file.
    partial = path.with_name(f".{path.stem}{PARTIAL}{secrets.token_hex(4)}{path.suffix}")
    try:
        yield partial
        _normal_mode(partial)
        if durable:
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
