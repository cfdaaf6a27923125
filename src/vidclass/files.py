"""Checks on the files a user names before anything reads or writes them, the one way
vidclass writes a file whole, and how it reads back the files of its own (caches).

Only regular files are read: a FIFO would block, /dev/zero or /dev/full never end.
Every failure (missing, a folder, no permission, a name too long or with a NUL) is a
VidclassError naming the path, never a traceback.

A file of vidclass's own (a converted model, a compiled one) is written whole with its
sha256 beside it (`NAME.sha256`: the digest and the size) and read back whole, from
one descriptor, only when it is a regular file that matches them: a damaged file is
`Damaged` (the caller makes it again, or goes without it, and says so), never a wrong
answer or a crash in the library that reads it. sha256 runs at about 1.5 GB/s here
(SHA-NI; blake2b 1.1, md5 0.6, crc32 4.5 but no digest): 30 ms for a 50 MB graph.
A cache that cannot be written (full, read-only) is said once in a run, which goes on
from memory (`store`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import VidclassError

log = logging.getLogger("vidclass")

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


# -- files of vidclass's own -------------------------------------------------------------
DIGEST_SUFFIX = ".sha256"  # beside a file of ours: "SHA256 SIZE\n"
DIGEST_BYTES = 256  # a digest file is one short line
HASH_CHUNK = 1 << 22


class Damaged(VidclassError):
    """A file vidclass wrote that does not read back as written: changed, cut, not a
    regular file, or leading out of its folder. `path` names it."""

    def __init__(self, path, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = Path(path), why

    def __reduce__(self):
        return (type(self), (self.path, self.why))


class Unrecorded(Damaged):
    """A file of ours without its digest beside it: an older vidclass wrote it, or its
    writer died before recording it. Made again without a warning."""


def digest_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def sha256_hex(data) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(fd: int) -> tuple[str, int]:
    """sha256 and length of what an open descriptor reads from where it stands."""
    h, size = hashlib.sha256(), 0
    while chunk := os.read(fd, HASH_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def _inside(path: Path, folder: str | os.PathLike) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


def read_user_file(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """The bytes of `path`, a user's file of a model folder: a regular file of at most
    `max_bytes`, read from one descriptor; a VidclassError saying why not otherwise."""
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY, what), "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise VidclassError(f"{path}: not a readable {what} ({exc})") from None
    if len(raw) > max_bytes:
        raise VidclassError(f"{path}: not a readable {what} (larger than {max_bytes >> 20} MB)")
    return raw


def read_json_file(path: str | os.PathLike, what: str, max_bytes: int):
    """The JSON in `path`, a user's small file (a model's config, an export's manifest)
    (read_user_file)."""
    raw = read_user_file(path, what, max_bytes)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise VidclassError(f"{path}: not a readable {what} ({exc})") from None


def read_own(
    path: str | os.PathLike, what: str, folder=None, max_bytes: int | None = None
) -> bytes:
    """The whole of `path`, a file vidclass wrote: FileNotFoundError where there is none
    (a dangling link too), Damaged where it is not a regular file, leads out of `folder`
    (where given) or holds more than `max_bytes`. Read from one non-blocking descriptor,
    so a FIFO swapped in cannot hang it."""
    path = Path(path)
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise Damaged(path, _reason(exc)) from None
    if folder is not None and not _inside(path, folder):
        raise Damaged(path, f"leads out of {folder}")
    try:
        fd = open_regular(path, os.O_RDONLY, what)
    except VidclassError as exc:
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None
        raise Damaged(path, str(exc).removeprefix(f"{path}: ")) from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if max_bytes is not None and size > max_bytes:
            raise Damaged(path, f"{size} bytes, more than the {max_bytes} it was written with")
        # One byte more than it should hold: a file growing while read is caught.
        limit = size if max_bytes is None else max_bytes
        data = f.read(limit + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise Damaged(path, f"more than the {max_bytes} bytes it was written with")
    return data


def recorded_digest(path: str | os.PathLike) -> tuple[str, int]:
    """(sha256, size) recorded beside `path` when it was written: Unrecorded where there
    is none, Damaged where it does not read as one."""
    side = digest_path(path)
    try:
        raw = read_own(side, "digest file", side.parent, DIGEST_BYTES)
    except FileNotFoundError:
        raise Unrecorded(path, "no digest recorded beside it") from None
    except Damaged as exc:  # the file it is for is what is made again
        raise Damaged(path, f"its digest {exc.why}") from None
    try:
        digest, size = raw.decode("ascii").split()
        if len(digest) != 64 or int(digest, 16) < 0 or int(size) < 0:
            raise ValueError
        return digest, int(size)
    except (ValueError, UnicodeDecodeError):
        raise Damaged(path, f"{side.name} is not a digest") from None


def read_checked(path: str | os.PathLike, what: str, folder=None, adopt: bool = False) -> bytes:
    """The bytes of `path` exactly as written by write_checked: its size and sha256 as
    recorded beside it, a regular file (within `folder` where given). FileNotFoundError
    where it is missing; Damaged (Unrecorded without a digest) otherwise. A file and its
    digest just being replaced by another writer are read again once. `adopt`: a file
    without a digest (an older vidclass's) is taken as it is and its digest recorded
    now, so that any later change to it is seen."""
    path = Path(path)
    for attempt in (0, 1):
        try:
            digest, size = recorded_digest(path)
            data = read_own(path, what, folder, size)
            if len(data) != size:
                raise Damaged(path, f"{len(data)} bytes, not the {size} written")
            if sha256_hex(data) != digest:
                raise Damaged(path, "its sha256 differs from the one recorded when it was written")
            return data
        except Unrecorded:
            if not adopt:
                if attempt:
                    raise
                time.sleep(0.05)
                continue
            data = read_own(path, what, folder)
            with contextlib.suppress(OSError):
                _write_digest(path, sha256_hex(data), len(data))
            return data
        except Damaged:
            if attempt:
                raise
            time.sleep(0.05)  # another writer between its two renames
    raise AssertionError("unreachable")


def _write_all(path: Path, data) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _write_digest(path: Path, digest: str, size: int) -> None:
    with written_whole(digest_path(path)) as partial:
        _write_all(partial, f"{digest} {size}\n".encode("ascii"))


def write_checked(path: str | os.PathLike, data, digest: bool = True) -> None:
    """Write `data` to `path` whole (written_whole), its folder made where missing, and
    with `digest` its sha256 and size beside it (NAME.sha256) for read_checked. The old
    digest goes first, so that a reader never takes a new file for an old one's digest
    (it finds none, or the new one). OSError where the cache cannot take it; nothing is
    left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, digest_path(path)):  # a folder under its name would refuse the rename
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
    with written_whole(path) as partial:
        _write_all(partial, data)
        if digest:
            digest_path(path).unlink(missing_ok=True)
    if digest:
        _write_digest(path, sha256_hex(data), memoryview(data).nbytes)


_unwritable = threading.Lock()
_said_unwritable = False


def cannot_write(path: str | os.PathLike, exc: BaseException) -> None:
    """Say, once in the whole run, that the cache cannot be written and the run goes on
    from memory; later failures are debug logging."""
    global _said_unwritable
    why = _reason(exc) if isinstance(exc, OSError | ValueError) else str(exc)
    with _unwritable:
        said, _said_unwritable = _said_unwritable, True
    if said:
        log.debug(f"{path}: not cached ({why})")
        return
    log.warning(
        f"{Path(path).parent}: cannot write to the cache ({why}); this run goes on from "
        "memory, and later runs redo its work"
    )


def store(path: str | os.PathLike, data, digest: bool = True) -> bool:
    """write_checked into a cache: where it fails (a full disk, a read-only folder, a
    file where a folder should be) that is said once in the run (cannot_write) and False
    is returned; the caller goes on with `data` from memory."""
    try:
        write_checked(path, data, digest)
    except OSError as exc:
        cannot_write(path, exc)
        return False
    return True


def discard(path: str | os.PathLike) -> None:
    """Remove a file of ours and its digest, where the folder allows (a read-only cache
    keeps them: they are checked again at the next read)."""
    for p in (Path(path), digest_path(path)):
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
