"""Type stubs for oomd._fastcg (the C reader). Dtypes of columns are in Reader.cols."""

from typing import Iterable

import numpy as np

CGROUP2_SUPER_MAGIC: int
FILE_NAMES: tuple[str, ...]      # by file kind (K values); the last one is "xattr"
STAT_KEYS: tuple[str, ...]       # memory.stat keys kept, by column of cols["memory_stat"]
STATUS_NAMES: tuple[str, ...]    # ok, malformed, unreadable, vanished
ERROR_NAMES: tuple[str, ...]     # STATUS_NAMES + "missing"
K: dict[str, int]                # file kind numbers (bits of Reader.load's `kinds`)
V: dict[str, int]                # bits of cols["valid"]
D: dict[str, int]                # derived-value bits of cols["loaded"]
SYS: dict[str, int]              # system file bits (Reader.ensure_system)
ST_OK_: int
ST_MALFORMED_: int
ST_UNREADABLE_: int
ST_VANISHED_: int
NFILE_: int
ABSENT_RETRY: float             # default Reader.absent_retry (seconds)
CONFIG_KINDS_: int               # kinds kept across ticks by a watched row (keep_config)

def default_watch_budget() -> int: ...           # half of fs.inotify.max_user_watches

def psi_line_avgs(line: bytes) -> tuple[float, float, float] | None: ...
def parse_meminfo_dict(data: bytes) -> dict[str, int]: ...
def parse_vmstat_dict(data: bytes) -> tuple[dict[str, int], int]: ...
def system_values(data: bytes, meminfo: bool) -> tuple[bytes, np.ndarray]: ...
def pick_psi(values: np.ndarray, valid: np.ndarray) -> int: ...
def fnmatch_name(pattern: bytes, name: bytes) -> bool: ...
def raw_read_loop(paths: list[str | bytes], reps: int = ...) -> int: ...

class Reader:
    cgroup_fs: bytes
    proc_root: bytes
    capacity: int
    nrows: int
    root_row: int                # -1 while cgroup-fs cannot be opened
    tick: int
    cache_files: bool
    is_cgroup2: bool
    fd_budget: int
    open_fds: int                # directory + cached file fds held
    fd_tight: bool               # the budget refused a cache last tick: leaves park
    cacheable: int               # file kinds whose fds may be kept (the monitored ones)
    ino_fd: int
    n_events: int
    n_overflows: int
    keep_config: bool            # configuration values of watched rows are kept across ticks
    watch_budget: int            # most inotify watches held
    n_watches: int
    watch_full: bool             # the budget or the kernel refused a watch; retried when one frees
    n_watch_refused: int
    n_invalidations: int         # kept values dropped by an event
    n_parks: int
    absent_retry: float          # seconds between safety retries of files known absent
    n_unparks: int
    cols: dict[str, np.ndarray]  # columns, indexed by row; rebuilt when capacity grows
                                 # ("wd": directory watch, "fwd": (N, NFILE) file watches,
                                 #  "keep": kinds kept across ticks)

    def __init__(
        self,
        cgroup_fs: bytes,
        proc_root: bytes,
        *,
        fd_budget: int,
        cache_files: bool | None = ...,                   # None: cache on cgroup2 only
        devices: Iterable[tuple[int, int, bool]] = ...,  # (major, minor, is_hdd)
        ssd_coeffs: Iterable[float] = ...,               # 6 floats
        hdd_coeffs: Iterable[float] = ...,               # 6 floats
        capacity: int = ...,
        keep_config: bool | None = ...,                   # None: with cache_files
        watch_budget: int | None = ...,                   # None: default_watch_budget()
        file_names: dict[str, bytes] | None = ...,        # {kind name: file read instead}
        remember_absent: bool | None = ...,               # None: on cgroup2
    ) -> None: ...
    def set_devices(self, devices: Iterable[tuple[int, int, bool]],
                    ssd_coeffs: Iterable[float], hdd_coeffs: Iterable[float]) -> None: ...
    def open_root(self) -> int: ...                      # row or -errno
    def open_child(self, parent_row: int, name: bytes) -> int: ...   # row or -errno
    def close_row(self, r: int) -> None: ...
    def close(self) -> None: ...
    def set_parent(self, r: int, p: int) -> None: ...
    def dirfd_of(self, r: int) -> int: ...               # re-opens a parked directory
    def close_file_fds(self, kinds: int) -> None: ...
    def begin_tick(self) -> None: ...
    def root_alive_known(self) -> bool: ...      # root watched, no deletion reported since
    def check_alive(self, rows: np.ndarray) -> np.ndarray: ...       # const int32_t[::1] -> bool
    def poll_watches(self) -> int: ...
    def watch_rows(self, rows: np.ndarray, kinds: int) -> int: ...  # const int32_t[::1]
    def unlisted_rows(self) -> np.ndarray: ...                       # int32
    def take_valid(self, rows: np.ndarray, mask: int) -> np.ndarray: ...  # int32 -> bool
    def same_gens(self, rows: np.ndarray, gens: np.ndarray) -> bool: ...  # int32, uint32
    pending: bool                # drain_logs()/drain_system_problems() have something
    def scan_dirs(self, rows: np.ndarray) -> np.ndarray: ...         # const int32_t[::1] -> int32
    def dir_listing_raw(self, r: int) -> bytes: ...
    def dir_entries(self, r: int) -> list[tuple[bytes, int, int]]: ...  # (name, inode, d_type)
    def load(self, rows: np.ndarray, kinds: int) -> None: ...        # const int32_t[::1]
    def compute_average(self, rows: np.ndarray) -> None: ...         # const int32_t[::1]
    def compute_iocost(self, rows: np.ndarray) -> None: ...          # const int32_t[::1]
    def compute_pgscan(self, rows: np.ndarray) -> None: ...          # const int32_t[::1]
    def compute_rawprot(self, rows: np.ndarray) -> None: ...         # const int32_t[::1]
    def compute_protection(self, order: np.ndarray, sib_rows: np.ndarray,
                           sib_parent: np.ndarray) -> None: ...      # int32 x3, order by depth
    def compute_eswap(self, order: np.ndarray) -> None: ...          # int32, ancestors first
    def set_proc_paths(self) -> None: ...
    def ensure_system(self, need: int = ...) -> None: ...
    def drain_system_problems(self) -> list[tuple[str, str, int]]: ...
    def system(self) -> dict: ...
    def vmstat_sample(self) -> tuple[bool, int | None]: ...
    def meminfo_bytes(self) -> bytes | None: ...
    def vmstat_bytes(self) -> bytes | None: ...
    def drain_logs(self) -> tuple[list[tuple[int, int, int, int]], int, int]: ...
    def counters(self) -> dict: ...
    def file_fd_count(self) -> int: ...

class RawFds:
    n: int
    def __init__(self, dirs: list[str | bytes], names: list[str | bytes],
                 keep_files: bool = ...) -> None: ...
    def pread_all(self) -> int: ...
    def openat_all(self) -> int: ...
    def close(self) -> None: ...

class RawPaths:
    n: int
    kept: int
    def __init__(self, paths: list[str | bytes], max_fds: int) -> None: ...
    def read_all(self) -> int: ...
    def close(self) -> None: ...
