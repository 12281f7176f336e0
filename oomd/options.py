"""``Options``: what the command line asks the daemon to do (reference §9.1), as plain data.

``oomd.cli`` fills it from oomd's flags; ``oomd.daemon`` and the commands read it. It lives
apart from both so that the daemon depends on the options, not on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oomd.plugin import DEFAULT_HDD_COEFFS, DEFAULT_SSD_COEFFS

DEFAULT_CONFIG = "/etc/oomd.json"
DEFAULT_RUNTIME_DIR = "/run/oomd"
DEFAULT_KMSG = "/dev/kmsg"
DEFAULT_INTERVAL = 5.0


@dataclass
class Options:
    config: str = DEFAULT_CONFIG
    interval: float = DEFAULT_INTERVAL
    cgroup_fs: str | None = None
    check_config: bool = False
    list_plugins: bool = False
    drop_in_dir: str | None = None
    runtime_dir: str = DEFAULT_RUNTIME_DIR
    dump_stats: bool = False
    reset_stats: bool = False
    devices: tuple = ()
    ssd_coeffs: tuple = DEFAULT_SSD_COEFFS
    hdd_coeffs: tuple = DEFAULT_HDD_COEFFS
    kmsg_path: str = DEFAULT_KMSG
    dry_run: bool = False
    plugin_modules: list[str] = field(default_factory=list)
    max_ticks: int | None = None
    metrics_textfile: str | None = None
    metrics_listen: str | None = None
    protect: bool = True
    fast_interval: float = 0.1  # oomd.wakeup.DEFAULT_FAST_INTERVAL
    max_psi_triggers: int = 32  # oomd.wakeup.DEFAULT_MAX_TRIGGERS
    compat: str = "0.5.0"   # oomd.compat mode
    trust_user_xattrs: bool = False  # user.oomd_avoid from anyone counts (oomd.xattr_trust)
    flight_ticks: int | None = None  # oomd.flight: None = as the detectors need, 0 = off
    record_dir: str | None = None  # --record: oomd.record.writer.Recorder's directory
    record_max_bytes: int = 512 << 20  # oomd.record.writer.DEFAULT_MAX_BYTES
    assume_cgroup2: bool = False  # read --cgroup-fs as cgroup2 whatever statfs says (benches)
