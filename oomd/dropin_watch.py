"""Watch the drop-in directory with inotify (reference §2.5, watching part).

Mirrors the watcher half of ``src/oomd/dropin/FsDropInService.cpp``, but instead of a thread
that reads files as events arrive, the daemon polls at the start of each tick and gets the
ordered operations to apply; reading, parsing and compiling each file is the engine's side::

    watcher = DropInWatcher(args.drop_in_dir, log=log)
    # every tick, first thing:
    for op, name in watcher.poll():
        if op == "add":
            engine.add_drop_in(name, watcher.path_of(name))   # read + compile + attach
        else:
            engine.remove_drop_in(name)

``poll()`` never blocks: inotify is opened with ``IN_NONBLOCK`` and read until ``EAGAIN``.

Events (watch mask: modify, moved-from/-to, delete, delete-self, move-self, only-dir):

* modify, moved-in → ``("add", name)``; delete, moved-out → ``("remove", name)``.
  File creation alone is no event (an empty ``touch`` does nothing), as in oomd.
* delete-self, move-self (and the watch vanishing: unmount, ignored) → the watch is torn
  down; each later poll checks whether the directory exists again and re-arms then.
* Arming (first poll, and every re-arm) lists the regular non-dot files (symlinks count, as
  in oomd's ``Fs::readDir``) in byte-wise sorted order and adds each, so the alphabetically
  last file ends up with the highest (LIFO) priority.
* A missing directory logs ``Error: <dir> is not a directory`` at each poll until it appears.
* Names starting with ``.`` are ignored (editors' swap files, atomic-write temp files).

Beyond oomd (docs/compat.md): consecutive duplicate operations from one poll are merged (a
file written in many ``write()`` calls is compiled once, not once per call; the result is the
same because every add of the same file in one poll reads the same content); on re-arm and on
inotify queue overflow, drop-ins whose files are gone are removed, so the engine's set always
converges to the directory's content; directories moved into the drop-in directory are not
offered as drop-ins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat
import struct
from typing import Callable

from oomd.logs_journal import SD_ERR, SD_INFO, SD_WARNING, stderr_log

IN_MODIFY = 0x00000002
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000

WATCH_MASK = (IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR | IN_MOVE_SELF
              | IN_DELETE_SELF)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
_READ_SIZE = 64 * 1024

ADD, REMOVE = "add", "remove"
Op = tuple[str, str]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


def _ignored(name: str) -> bool:
    return not name or name.startswith(".")


def list_drop_ins(directory: str) -> list[str]:
    """Non-dot entries that are regular files (or symlinks, as oomd's lstat test lets through),
    in byte-wise sorted order. Entries that vanish while listing are skipped."""
    names = []
    with os.scandir(directory) as it:
        for entry in it:
            if _ignored(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    names.append(entry.name)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    continue
                # oomd tests `st_mode & S_IFREG`, which symlinks (and sockets) also pass.
                if entry.stat(follow_symlinks=False).st_mode & stat.S_IFREG:
                    names.append(entry.name)
            except OSError:
                continue
    names.sort(key=os.fsencode)
    return names


class DropInWatcher:
    """Non-blocking inotify watcher of one drop-in directory; see the module docstring."""

    def __init__(self, directory: str, *, log: Callable[[str, int], None] | None = None) -> None:
        if len(directory) > 1 and directory.endswith("/"):
            directory = directory[:-1]
        self.directory = directory
        self._log = log or stderr_log
        self._libc = _libc()
        self._fd = -1
        self._active: set[str] = set()  # names whose last operation was an add

    # -- public API --------------------------------------------------------------------------

    @property
    def armed(self) -> bool:
        return self._fd >= 0

    def fileno(self) -> int:
        """The inotify fd (readable when events are pending), or -1 while not armed."""
        return self._fd

    def path_of(self, name: str) -> str:
        return self.directory + "/" + name

    def poll(self) -> list[Op]:
        """Operations since the last poll, in the order to apply them."""
        ops: list[Op] = []
        if not self.armed:
            if not self._arm():
                return []
            self._reconcile(ops)
        self._drain(ops)
        return self._emit(ops)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "DropInWatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _arm(self) -> bool:
        if not os.path.isdir(self.directory):
            self._log(f"Error: {self.directory} is not a directory", SD_ERR)
            return False
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            self._log(f"inotify_init1: {os.strerror(ctypes.get_errno())}", SD_ERR)
            return False
        wd = self._libc.inotify_add_watch(fd, os.fsencode(self.directory), WATCH_MASK)
        if wd < 0:
            self._log(f"inotify_add_watch: {os.strerror(ctypes.get_errno())}", SD_ERR)
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _reconcile(self, ops: list[Op]) -> None:
        """Remove drop-ins whose files are gone, then add every file (start-up order)."""
        try:
            present = list_drop_ins(self.directory)
        except OSError as e:
            self._log(f"Reading drop-in directory {self.directory}: {e.strerror}", SD_ERR)
            present = []
        active = set(self._active)
        for kind, name in ops:  # operations of this poll not yet emitted
            (active.add if kind == ADD else active.discard)(name)
        gone = active.difference(present)
        ops.extend((REMOVE, name) for name in sorted(gone, key=os.fsencode))
        ops.extend((ADD, name) for name in present)

    def _drain(self, ops: list[Op]) -> None:
        while self._fd >= 0:
            try:
                buf = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError as e:
                self._log(f"read: {e.strerror}", SD_ERR)
                self._teardown()
                return
            if not buf:
                return
            if not self._parse(buf, ops):
                return

    def _parse(self, buf: bytes, ops: list[Op]) -> bool:
        """Append the operations of one read; False once the watch has been torn down."""
        off = 0
        while off + _EVENT.size <= len(buf):
            wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
            raw = buf[off + _EVENT.size: off + _EVENT.size + length]
            off += _EVENT.size + length
            name = os.fsdecode(raw.split(b"\0", 1)[0])
            if mask & IN_Q_OVERFLOW:
                self._log(f"inotify queue overflowed on {self.directory}; re-reading it",
                          SD_WARNING)
                self._reconcile(ops)
            elif mask & (IN_MOVED_TO | IN_MODIFY):
                if not _ignored(name) and not mask & IN_ISDIR:
                    ops.append((ADD, name))
            elif mask & (IN_DELETE | IN_MOVED_FROM):
                if not _ignored(name):
                    ops.append((REMOVE, name))
            elif mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED):
                # The rest of the queue belongs to a watch that no longer exists.
                self._teardown()
                return False
        return True

    def _teardown(self) -> None:
        self.close()

    def _emit(self, ops: list[Op]) -> list[Op]:
        out: list[Op] = []
        for op in ops:
            if out and out[-1] == op:
                continue
            out.append(op)
            kind, name = op
            if kind == ADD:
                self._active.add(name)
                self._log(f"Adding drop in config={name}", SD_INFO)
            else:
                self._active.discard(name)
                self._log(f"Removing drop in config={name}", SD_INFO)
        return out
