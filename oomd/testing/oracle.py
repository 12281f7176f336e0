"""Run the real oomd 0.5.0 on a Scenario in lock-step and record what it decides, tick by tick.

``run_oomd(scenario)`` materialises the scenario's fake tree in a private work directory, starts
the binary with ``--interval 1``, ``--kmsg-override``, ``--runtime-dir`` and a ``--cgroup-fs``
that passes oomd's textual cgroup2 check but leads to the fake tree
(``<cgroup2 mount>/../../../..<tree>``), and returns an ``OomdRun``: per tick the kmsg kill
records written during that tick, the engine's log lines and every other log line, plus the whole
stdout/stderr and the exit status when oomd died by itself (it aborts on some inputs, reference
Appendix B).

Lock-step (reference §1.1, §5.1): oomd sleeps ``interval`` and then reads the tree lazily during
the tick, so the harness must rewrite the files for tick k+1 after every read of tick k and before
tick k+1 starts. Two rulesets are added to the scenario's config:

* first, ``__oracle_begin__``: its action ``kill_by_memory_size_or_growth`` (never run) reads, in
  its *prerun*, ``memory.current`` of a tick cgroup that lives beside the fake tree (pattern
  ``../oracle_tick``, so no glob of the scenario can see it); its detector ``memory_above`` with
  ``debug`` logs that value during the run phase. The harness writes the tick number there
  *after* the other files of the step, so a logged value equal to the tick number proves that
  the whole step was in place before the first prerun of the tick;
* last, ``__oracle_end__``: ``continue`` / ``continue``, not silenced; its three engine lines are
  the last thing oomd does in a tick (everything else of the tick has been read and logged by
  then), so on seeing them the harness reads the kmsg file and writes the next step.

``INLINE_LOGGING`` is set so oomd writes each log line synchronously (reference §0); marker lines
are removed from the observations. Any missed or repeated tick, or a marker out of place, raises
``LockstepError``; nothing is ever returned for a tick whose inputs are uncertain.

``run_many`` runs scenarios concurrently (each has its own tree, runtime dir and kmsg file; oomd
spends a tick asleep, so many runs share the two cores). ``compare(a, b)`` diffs two runs tick
by tick (the pyoomd runner returns the same ``OomdRun`` type). ``measure_cpu`` reports oomd's CPU
seconds per tick on a caller's tree, for benchmarks.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from oomd.fs import cgroup2_mount
from oomd.testing import faketree
from oomd.testing.realcg import readable
from oomd.testing.oomd_bin import find_oomd_binary, oomd_env, why_missing
from oomd.testing.scenario import Scenario

BEGIN = "__oracle_begin__"
END = "__oracle_end__"
TICK_DIR = "oracle_tick"
TICK_PATTERN = "../" + TICK_DIR

END_LINES = (
    f"DetectorGroup={END} has fired for Ruleset={END}. Running action chain.",
    "Running Action=continue",
    "Action=continue returned CONTINUE. Continuing action chain.",
)
_BEGIN_RE = re.compile(
    r'^cgroup "' + re.escape(TICK_PATTERN) + r'" memory\.current=(-?\d+)memory\.stat \(anon\)=-?\d+$'
)
# "[File.cpp:123] message" (oomd), "[module.py:45] message" or "[module] message" (pyoomd;
# "<6>" first when it logs for journald); oomd HEAD puts "MMDD HH:MM:SS " before the "[".
_LOG_RE = re.compile(
    r"^(?:\(inl\) |<\d>)?(?:\d{4} \d\d:\d\d:\d\d )?\[([^\]\s]+)\] (.*)$", re.S)
# oomd HEAD's "has fired" line names the ruleset cgroup and, for a resumed chain, says so.
ENGINE_RE = re.compile(
    r"^(?:DetectorGroup=(?P<dg>.*) has fired for Ruleset=(?P<rs>.*?)"
    r"(?: with ruleset cgroup `(?P<rscg>[^`]*)`)?\. Running action chain(?P<state> from state)?\."
    r"|Running Action=(?P<run>.*)"
    r"|Action=(?P<act>.*) returned (?P<ret>CONTINUE|STOP|ASYNC)\. "
    r"(?:Continuing|Terminating|Yielding) action chain\.)$"
)
_KILL_RE = re.compile(
    r"^oomd kill: (?P<m10>\S+) (?P<m60>\S+) (?P<m300>\S+) (?P<cgroup>.*) (?P<usage>-?\d+) "
    r"ruleset:\[(?P<rs>.*)\] detectorgroup:\[(?P<dg>.*)\] killer:(?P<dry>\(dry\))?(?P<plugin>\S+) v2$"
)
IMPLEMENTATION = "oomd 0.5.0"
DEFAULT_TICK_TIMEOUT = 30.0
DEFAULT_STARTUP_TIMEOUT = 15.0
_binary_lock = threading.Lock()
_binary_cache: list = []


def _is_end_marker(message: str) -> bool:
    """The end marker's "has fired" line, in oomd 0.5.0's form or HEAD's (which adds
    `` with ruleset cgroup ``""`` before the full stop)."""
    if message == END_LINES[0]:
        return True
    m = ENGINE_RE.match(message)
    return bool(m and m["dg"] == END and m["rs"] == END and m["rscg"] == "" and not m["state"])


def oracle_binary() -> Path | None:
    """find_oomd_binary(), checked once per process (it runs ``oomd --version``)."""
    with _binary_lock:
        if not _binary_cache:
            _binary_cache.append(find_oomd_binary())
        return _binary_cache[0]


HEAD_IMPLEMENTATION = "oomd HEAD"
HEAD_COMMIT = "88c28fd"


def head_binary() -> Path | None:
    """An oomd built from upstream main at 88c28fd (docs/reliability.md says how):
    ``$PYOOMD_OOMD_HEAD_BIN``, else ``../oomd-head-build/build/oomd`` beside the checkout.
    None when neither exists and runs."""
    env = os.environ.get("PYOOMD_OOMD_HEAD_BIN")
    repo = Path(__file__).resolve().parents[2]
    for c in ([Path(env)] if env else [repo.parent / "oomd-head-build" / "build" / "oomd"]):
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


def scratch_dir() -> str:
    """Where work directories go: ``$PYOOMD_ORACLE_TMP``, else /dev/shm (tmpfs: creating a
    fake tree there is ~50x cheaper than on a disk), else the system temporary directory."""
    env = os.environ.get("PYOOMD_ORACLE_TMP")
    if env:
        return env
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


# ---- errors -----------------------------------------------------------------------------------


class OracleError(RuntimeError):
    """The harness could not produce a trustworthy observation. ``run`` holds what was seen."""

    def __init__(self, message: str, run: "OomdRun | None" = None):
        super().__init__(message)
        self.run = run


class OracleUnavailable(OracleError):
    """No runnable oomd 0.5.0 binary or no cgroup2 mount / PSI on this host."""


class LockstepError(OracleError):
    """oomd and the trajectory fell out of step (a tick read the wrong step, or a marker is off)."""


class OracleTimeout(OracleError):
    """oomd neither finished a tick nor died within the timeout."""


# ---- observations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KillRecord:
    """One kmsg kill record (reference §7); fields keep oomd's text where it is text."""

    m10: str
    m60: str
    m300: str
    cgroup: str
    usage: int
    ruleset: str
    detectorgroup: str
    plugin: str
    dry: bool

    @classmethod
    def parse(cls, line: str) -> "KillRecord | None":
        m = _KILL_RE.match(line.rstrip("\n"))
        if not m:
            return None
        return cls(
            m10=m["m10"], m60=m["m60"], m300=m["m300"], cgroup=m["cgroup"],
            usage=int(m["usage"]), ruleset=m["rs"], detectorgroup=m["dg"],
            plugin=m["plugin"], dry=m["dry"] is not None,
        )

    def format(self) -> str:
        return (
            f"oomd kill: {self.m10} {self.m60} {self.m300} {self.cgroup} {self.usage} "
            f"ruleset:[{self.ruleset}] detectorgroup:[{self.detectorgroup}] "
            f"killer:{'(dry)' if self.dry else ''}{self.plugin} v2"
        )

    __str__ = format

    @property
    def pressure(self) -> tuple[float, float, float]:
        return float(self.m10), float(self.m60), float(self.m300)


def parse_kmsg(text: str) -> list[KillRecord]:
    """The kill records among the lines of a kmsg file (other records are skipped)."""
    return [r for r in map(KillRecord.parse, text.splitlines()) if r is not None]


class LogLine(NamedTuple):
    """A stderr line: ``source`` is oomd's ``File.cpp:line`` tag (pyoomd's module tag), or None
    for text that is not a log line (abort messages, continuation lines)."""

    source: str | None
    message: str


def parse_log_line(line: str) -> LogLine:
    line = line.rstrip("\n")
    m = _LOG_RE.match(line)
    if m:
        return LogLine(m[1], m[2])
    if line.startswith("(inl) "):
        line = line[len("(inl) "):]
    return LogLine(None, line)


@dataclass
class Tick:
    """What one tick produced. ``complete`` is False for a tick during which the process died."""

    number: int
    log: list = field(default_factory=list)     # [LogLine], marker lines removed
    kmsg: list = field(default_factory=list)    # raw kmsg lines written during the tick
    complete: bool = False
    observed_at: float | None = None            # time.monotonic() when the tick's end was seen

    @property
    def kills(self) -> list[KillRecord]:
        return [r for r in map(KillRecord.parse, self.kmsg) if r is not None]

    @property
    def engine(self) -> list[str]:
        """Engine messages (has fired / Running Action / returned ...), in order."""
        return [ll.message for ll in self.log if ENGINE_RE.match(ll.message)]

    @property
    def fired(self) -> list[tuple[str, str]]:
        """(ruleset, detector group) of every "has fired" line (ruleset chains started)."""
        out = []
        for msg in self.engine:
            m = ENGINE_RE.match(msg)
            if m["dg"] is not None and not m["state"]:
                out.append((m["rs"], m["dg"]))
        return out

    @property
    def plugin_log(self) -> list[str]:
        """Every other message (plugins, context, kill procedure), in order, without tags."""
        return [ll.message for ll in self.log if not ENGINE_RE.match(ll.message)]

    def to_dict(self) -> dict:
        return {
            "number": self.number, "complete": self.complete, "observed_at": self.observed_at,
            "log": [list(ll) for ll in self.log], "kmsg": list(self.kmsg),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Tick":
        return cls(number=d["number"], complete=d["complete"], observed_at=d.get("observed_at"),
                   log=[LogLine(*x) for x in d["log"]], kmsg=list(d["kmsg"]))


@dataclass
class OomdRun:
    """The observations of one run. ``returncode`` is None when the process was still alive
    after the last tick (the harness stopped it); otherwise it is subprocess's returncode
    (negative: killed by that signal) and the process died by itself."""

    scenario: str
    implementation: str = IMPLEMENTATION
    ticks: list = field(default_factory=list)       # [Tick]
    startup: list = field(default_factory=list)     # [LogLine] before "Running oomd"
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    cgroup_fs: str = ""
    argv: list = field(default_factory=list)
    write_latency: list = field(default_factory=list)  # s from end of tick k to step k+1 written
    started_at: float | None = None                     # time.monotonic() at spawn

    @property
    def died(self) -> bool:
        return self.returncode is not None

    @property
    def exit_status(self) -> int | None:
        """Shell-style status: exit code, or 128 + signal number (134 = SIGABRT)."""
        if self.returncode is None:
            return None
        return self.returncode if self.returncode >= 0 else 128 - self.returncode

    @property
    def signal(self) -> str | None:
        if self.returncode is not None and self.returncode < 0:
            return signal.Signals(-self.returncode).name
        return None

    @property
    def completed_ticks(self) -> int:
        return sum(1 for t in self.ticks if t.complete)

    def tick(self, number: int) -> Tick:
        for t in self.ticks:
            if t.number == number:
                return t
        raise KeyError(f"{self.scenario}: no tick {number} (saw {len(self.ticks)})")

    @property
    def kills(self) -> list[tuple[int, KillRecord]]:
        return [(t.number, k) for t in self.ticks for k in t.kills]

    def fired_ticks(self, ruleset: str, detectorgroup: str | None = None) -> list[int]:
        """Ticks on which the ruleset's action chain was started by a detector group."""
        return [
            t.number for t in self.ticks
            if any(rs == ruleset and (detectorgroup is None or dg == detectorgroup)
                   for rs, dg in t.fired)
        ]

    @property
    def tick_spacing(self) -> list[float]:
        """Seconds between the ends of consecutive complete ticks (interval + overhead)."""
        times = [t.observed_at for t in self.ticks if t.complete and t.observed_at is not None]
        return [b - a for a, b in zip(times, times[1:])]

    def describe_exit(self) -> str:
        if self.returncode is None:
            return f"alive after {self.completed_ticks} ticks (stopped by the harness)"
        how = f"{self.signal} ({self.exit_status})" if self.signal else f"exit {self.returncode}"
        where = (f"during tick {self.ticks[-1].number}" if self.ticks and not self.ticks[-1].complete
                 else f"after {self.completed_ticks} ticks")
        return f"died: {how} {where}"

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario, "implementation": self.implementation,
            "ticks": [t.to_dict() for t in self.ticks],
            "startup": [list(ll) for ll in self.startup], "stdout": self.stdout,
            "stderr": self.stderr, "returncode": self.returncode, "cgroup_fs": self.cgroup_fs,
            "argv": list(self.argv), "write_latency": list(self.write_latency),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "OomdRun":
        return cls(
            scenario=d["scenario"], implementation=d["implementation"],
            ticks=[Tick.from_dict(t) for t in d["ticks"]],
            startup=[LogLine(*x) for x in d["startup"]], stdout=d["stdout"], stderr=d["stderr"],
            returncode=d["returncode"], cgroup_fs=d["cgroup_fs"], argv=list(d["argv"]),
            write_latency=list(d.get("write_latency", [])),
        )

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path


# ---- host facts -------------------------------------------------------------------------------


def fake_cgroup_fs(tree: str | os.PathLike, mount: str | None = None) -> str:
    """A ``--cgroup-fs`` that starts with the cgroup2 mount but resolves to ``tree``."""
    mount = mount or cgroup2_mount()
    if mount is None:
        raise OracleUnavailable("no cgroup2 mount in /proc/mounts")
    depth = len([p for p in mount.split("/") if p])
    return mount.rstrip("/") + "/.." * depth + str(Path(tree).resolve())


def unavailable_reason() -> str | None:
    """Why run_oomd cannot work on this host, or None when it can."""
    if oracle_binary() is None:
        return f"oomd 0.5.0 binary unavailable: {why_missing()} (run .ci/obtain-oomd)"
    if cgroup2_mount() is None:
        return "no cgroup2 filesystem mounted (oomd requires --cgroup-fs under one)"
    try:
        if not Path("/proc/pressure/memory").read_text().strip():
            return "/proc/pressure/memory is empty (oomd requires PSI)"
    except OSError as e:
        return f"no PSI on this kernel (/proc/pressure/memory: {e.strerror})"
    return None


# ---- config -----------------------------------------------------------------------------------


def marker_rulesets() -> tuple[dict, dict]:
    begin = {
        "name": BEGIN,
        "detectors": [[BEGIN, {"name": "memory_above", "args": {
            "cgroup": TICK_PATTERN, "threshold": "100%", "duration": "0", "debug": "true"}}]],
        "actions": [{"name": "kill_by_memory_size_or_growth", "args": {
            "cgroup": TICK_PATTERN, "dry": "true"}}],
    }
    end = {
        "name": END,
        "detectors": [[END, {"name": "continue", "args": {}}]],
        "actions": [{"name": "continue", "args": {}}],
    }
    return begin, end


def oracle_config(config: dict | None) -> dict:
    """The scenario's config with the begin marker first and the end marker last."""
    cfg = dict(config or {})
    begin, end = marker_rulesets()
    cfg["rulesets"] = [begin, *(cfg.get("rulesets") or []), end]
    return cfg


def _write_tick_cgroup(path: Path, tick: int) -> None:
    files = faketree.cgroup(tick, populated=None, memory_high=None, memory_max=None)
    if path.exists():
        faketree.update_files(path, {"": {"memory.current": files["memory.current"]}})
    else:
        faketree.write_tree(path, {"": files})


# ---- process plumbing -------------------------------------------------------------------------


class _Lines:
    """Line reader over a pipe with deadlines (select + os.read, no buffering surprises)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""
        self.raw = bytearray()
        self.eof = False

    def readline(self, deadline: float) -> str | None:
        """The next line (with its newline, or the unterminated tail at EOF); None at EOF.
        Raises TimeoutError at the deadline."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[: nl + 1], self.buf[nl + 1:]
                return line.decode("utf-8", "replace")
            if self.eof:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode("utf-8", "replace")
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not readable(self.fd, left):
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
            self.raw += chunk
            self.buf += chunk


class _Kmsg:
    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        return [ln.decode("utf-8", "replace") for ln in lines]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# ---- running a scenario -----------------------------------------------------------------------


def run_oomd(
    scenario: Scenario,
    *,
    binary: str | os.PathLike | None = None,
    workdir: str | os.PathLike | None = None,
    interval: int = 1,
    tick_timeout: float = DEFAULT_TICK_TIMEOUT,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    on_tick: Callable[[Tick], None] | None = None,
    keep: bool = False,
    implementation: str = IMPLEMENTATION,
) -> OomdRun:
    """Run oomd 0.5.0 on ``scenario`` for ``scenario.ticks`` ticks; see the module docstring.

    ``binary`` runs another oomd build instead (``head_binary()`` for oomd HEAD, whose log
    lines carry a timestamp and whose "has fired" lines name the ruleset cgroup: the harness
    reads both forms); ``implementation`` names it in the run.

    ``workdir``: where the tree (``tree/``), the tick cgroup (``oracle_tick/``), the config and
    the kmsg file go; by default a fresh temporary directory, removed afterwards unless
    ``keep``. Tie order in kill plugins depends on the ``--cgroup-fs`` string (reference A.2),
    so a pyoomd run meant to match ties must use the same workdir (``OomdRun.cgroup_fs``).
    ``on_tick(tick)`` is called after each complete tick, before the next step is written; it
    must return well within ``interval`` or lock-step is lost (and LockstepError raised).
    Raises OracleUnavailable, LockstepError or OracleTimeout; an oomd that dies by itself is
    not an error: the run says so (``died``, ``exit_status``).
    """
    scenario.validate()
    binary = Path(binary) if binary else oracle_binary()
    if binary is None:
        raise OracleUnavailable(f"oomd 0.5.0 binary unavailable: {why_missing()}")
    mount = cgroup2_mount()
    if mount is None:
        raise OracleUnavailable("no cgroup2 mount in /proc/mounts")

    own_workdir = workdir is None
    tmp = scratch_dir()
    work = Path(tempfile.mkdtemp(prefix="pyoomd-oracle-", dir=tmp)) if own_workdir else Path(workdir)
    # The stats socket path must stay under 108 bytes: keep the runtime dir short and private.
    runtime = Path(tempfile.mkdtemp(prefix="oor-", dir=tmp))
    try:
        tree, tickdir = work / "tree", work / TICK_DIR
        kmsg_path, cfg_path = work / "kmsg", work / "config.json"
        if not own_workdir:
            work.mkdir(parents=True, exist_ok=True)
            for p in (tree, tickdir):
                shutil.rmtree(p, ignore_errors=True)
            kmsg_path.unlink(missing_ok=True)
        scenario.write_tree(tree)
        _write_tick_cgroup(tickdir, 1)
        if isinstance(scenario.config, str):
            cfg_path.write_text(scenario.config)
        else:
            cfg_path.write_text(json.dumps(oracle_config(scenario.config), indent=1))
        cgroup_fs = fake_cgroup_fs(tree, mount)
        argv = [
            str(binary), "--config", str(cfg_path), "--interval", str(interval),
            "--cgroup-fs", cgroup_fs, "--kmsg-override", str(kmsg_path),
            "--runtime-dir", str(runtime),
        ]
        if scenario.devices:
            argv += ["--device", ",".join(scenario.devices)]
        env = oomd_env(binary)
        env["INLINE_LOGGING"] = "1"
        run = OomdRun(scenario=scenario.name, implementation=implementation,
                      cgroup_fs=cgroup_fs, argv=argv)
        return _drive(scenario, run, argv, env, work, tree, tickdir, kmsg_path,
                      tick_timeout, startup_timeout, on_tick)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
        if own_workdir and not keep:
            shutil.rmtree(work, ignore_errors=True)


def _drive(scenario, run, argv, env, work, tree, tickdir, kmsg_path,
           tick_timeout, startup_timeout, on_tick) -> OomdRun:
    stdout_path = work / "stdout"
    with open(stdout_path, "wb") as out:
        run.started_at = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.PIPE, cwd=work, env=env)
    lines = _Lines(proc.stderr.fileno())
    kmsg = _Kmsg(kmsg_path)
    alive_at_end = False

    def fail(exc_type, msg):
        _stop(proc)
        _finish(run, proc, lines, stdout_path, died=False)
        tail = "".join(run.stderr.splitlines(True)[-15:])
        return exc_type(f"{scenario.name}: {msg}\n--- last stderr lines ---\n{tail}", run)

    try:
        # Start-up: everything up to "Running oomd".
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                raw = lines.readline(deadline)
            except TimeoutError:
                raise fail(OracleTimeout, f"no 'Running oomd' within {startup_timeout} s")
            if raw is None:
                break
            ll = parse_log_line(raw)
            run.startup.append(ll)
            if ll.message == "Running oomd":
                break
        if raw is None or scenario.ticks == 0:
            alive_at_end = raw is not None
        else:
            alive_at_end = _ticks(scenario, run, lines, kmsg, tree, tickdir,
                                  tick_timeout, on_tick, fail)
    finally:
        if proc.poll() is None and not alive_at_end:
            # Only reached through an exception: don't leave oomd running.
            _stop(proc)
            proc.stderr.close()
    if alive_at_end:
        _stop(proc)
        _finish(run, proc, lines, stdout_path, died=False)
    else:
        _finish(run, proc, lines, stdout_path, died=True)
        # A death mid-tick: the kmsg lines of the partial tick.
        if run.ticks and not run.ticks[-1].complete:
            run.ticks[-1].kmsg.extend(kmsg.new_lines())
    return run


def _ticks(scenario, run, lines, kmsg, tree, tickdir, tick_timeout, on_tick, fail) -> bool:
    """Observe scenario.ticks ticks. True if oomd is alive at the end, False if it died."""
    k = 1
    cur = Tick(k)
    run.ticks.append(cur)
    begin_seen = False
    end_stage = 0
    deadline = time.monotonic() + tick_timeout
    while True:
        try:
            raw = lines.readline(deadline)
        except TimeoutError:
            raise fail(OracleTimeout, f"tick {k} did not finish within {tick_timeout} s")
        if raw is None:
            return False
        ll = parse_log_line(raw)
        if end_stage:
            if ll.message != END_LINES[end_stage]:
                raise fail(LockstepError, f"tick {k}: unexpected line inside the end marker: {raw!r}")
            end_stage += 1
            if end_stage < len(END_LINES):
                continue
            # The tick is over: oomd is going to sleep `interval`.
            end_stage = 0
            if not begin_seen:
                raise fail(LockstepError, f"tick {k} ended without the begin marker")
            cur.observed_at = time.monotonic()
            cur.kmsg.extend(kmsg.new_lines())
            cur.complete = True
            if on_tick is not None:
                on_tick(cur)
            if k == scenario.ticks:
                return True
            k += 1
            scenario.apply_step(tree, k)
            _write_tick_cgroup(tickdir, k)  # last: proves the whole step was in place
            run.write_latency.append(time.monotonic() - cur.observed_at)
            cur = Tick(k)
            run.ticks.append(cur)
            begin_seen = False
            deadline = time.monotonic() + tick_timeout
            continue
        m = _BEGIN_RE.match(ll.message)
        if m:
            seen = int(m[1])
            if begin_seen or seen != k:
                raise fail(LockstepError,
                           f"tick {k}: oomd read the tick cgroup as {seen} (lock-step lost: "
                           f"the step for tick {k} was not in place when the tick started)")
            begin_seen = True
            continue
        if _is_end_marker(ll.message):
            end_stage = 1
            continue
        cur.log.append(ll)


def _finish(run: OomdRun, proc, lines: _Lines, stdout_path: Path, died: bool) -> None:
    # Drain what is left on stderr (bounded: the process is gone or being killed).
    deadline = time.monotonic() + 5
    tail = []
    try:
        while True:
            raw = lines.readline(deadline)
            if raw is None:
                break
            tail.append(raw)
    except TimeoutError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _stop(proc)
    proc.stderr.close()
    if died:
        run.returncode = proc.returncode
        # Lines written while dying (abort messages) belong to the tick in progress.
        target = run.ticks[-1].log if run.ticks and not run.ticks[-1].complete else None
        for raw in tail:
            ll = parse_log_line(raw)
            if target is not None:
                target.append(ll)
            else:
                run.startup.append(ll)
    run.stderr = bytes(lines.raw).decode("utf-8", "replace")
    try:
        run.stdout = stdout_path.read_text(errors="replace")
    except OSError:
        run.stdout = ""


def default_jobs() -> int:
    """Concurrent runs for run_many. oomd sleeps through almost all of a tick, so many runs
    share a core: on 2 cores 64 runs of 10 ticks cost ~3 s of harness CPU and ~2 s of oomd CPU
    in ~12 s of wall time, with the step written at most ~20 ms after a tick ends."""
    return 32 * (os.cpu_count() or 1)


def run_many(
    scenarios: Iterable[Scenario],
    *,
    jobs: int | None = None,
    return_exceptions: bool = False,
    **kwargs,
) -> list:
    """run_oomd on each scenario, ``jobs`` at a time, results in input order.

    With ``return_exceptions`` an OracleError is returned in place of its run instead of
    being raised (after all runs finished).
    """
    scenarios = list(scenarios)
    jobs = jobs or default_jobs()

    def one(sc):
        try:
            return run_oomd(sc, **kwargs)
        except OracleError as e:
            if return_exceptions:
                return e
            raise

    if len(scenarios) <= 1 or jobs <= 1:
        return [one(sc) for sc in scenarios]
    with ThreadPoolExecutor(max_workers=min(jobs, len(scenarios))) as pool:
        futures = [pool.submit(one, sc) for sc in scenarios]
        return [f.result() for f in futures]


# ---- comparing two runs -----------------------------------------------------------------------


@dataclass
class DiffItem:
    tick: int | None
    what: str
    expected: list
    actual: list


@dataclass
class RunDiff:
    """Differences between two runs; falsy when there are none. ``str()`` is a readable report."""

    expected: str
    actual: str
    scenario: str
    items: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __str__(self) -> str:
        if not self.items:
            return f"{self.scenario}: {self.expected} and {self.actual} agree"
        out = [f"{self.scenario}: {self.expected} (-) vs {self.actual} (+)"]
        for it in self.items:
            where = f"tick {it.tick}" if it.tick is not None else "run"
            out.append(f"{where}: {it.what} differ")
            diff = difflib.unified_diff(it.expected, it.actual, lineterm="", n=2)
            out.extend("    " + d for d in list(diff)[2:])
        return "\n".join(out)


def compare(expected: OomdRun, actual: OomdRun, *, logs: bool = False,
            death: bool = True) -> RunDiff:
    """Tick-by-tick differences: kmsg records and engine lines (and other log messages with
    ``logs``); how the run ended (with ``death``). Ticks are compared where both runs have them;
    a tick during which only one side died is reported through the ending only."""
    diff = RunDiff(expected.implementation, actual.implementation, expected.scenario)
    if death and (expected.died, expected.exit_status) != (actual.died, actual.exit_status):
        diff.items.append(DiffItem(None, "endings", [expected.describe_exit()],
                                   [actual.describe_exit()]))
    if len(expected.ticks) != len(actual.ticks) and not (expected.died or actual.died):
        diff.items.append(DiffItem(None, "tick counts", [f"{len(expected.ticks)} ticks"],
                                   [f"{len(actual.ticks)} ticks"]))
    for a, b in zip(expected.ticks, actual.ticks):
        if a.complete != b.complete:
            continue
        for what, get in (("kmsg records", lambda t: t.kmsg), ("engine lines", lambda t: t.engine),
                          *((("log messages", lambda t: t.plugin_log),) if logs else ())):
            ea, eb = list(get(a)), list(get(b))
            if ea != eb:
                diff.items.append(DiffItem(a.number, what, ea, eb))
    return diff


__all__ = [
    "DiffItem", "KillRecord", "LockstepError", "LogLine", "OomdRun",
    "OracleError", "OracleTimeout", "OracleUnavailable", "RunDiff", "Tick", "cgroup2_mount",
    "compare", "default_jobs", "fake_cgroup_fs", "head_binary", "marker_rulesets",
    "oracle_binary", "oracle_config", "parse_kmsg", "parse_log_line", "run_many",
    "run_oomd", "scratch_dir", "unavailable_reason",
]
