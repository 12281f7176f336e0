"""A differential-test scenario: fake cgroup tree, config, counter trajectory, number of ticks.

A ``Scenario`` is plain data and round-trips through JSON (``save``/``load``), so a scenario on
which pyoomd and oomd 0.5.0 disagree can be stored under ``tests/.../fixtures`` and replayed.
Both sides (``oomd.testing.oracle.run_oomd`` and the pyoomd runner) materialise it the same way:

* ``tree``: ``{relpath: {file name: content}}`` (``oomd.testing.faketree`` builds the contents;
  the root cgroup is ``""``), written before start;
* ``xattrs``: ``{relpath: {xattr name: value}}`` set on the directories before start
  (``trusted.oomd_prefer`` ... for kill preference, reference §5.3);
* ``trajectory``: ``{tick: step}``; a step is applied *before* that tick is evaluated (the step
  for tick 1 is applied before oomd starts). A step is ``{relpath: {file: content | None}}``:
  ``None`` as a file's content deletes the file, ``None`` instead of the file map removes the
  whole cgroup directory, and a relpath that does not exist yet is created; a "file" named
  ``xattr:<name>`` sets that extended attribute on the directory (``None`` removes it);
* ``config``: a dict (written as JSON) or, for start-up tests only (``ticks == 0``), raw text;
* ``ticks``: how many ticks to observe (0: start-up only).

Safety: non-dry kill plugins send SIGKILL to the pids listed in ``cgroup.procs``, so
``validate()`` refuses any pid that could belong to a real process (≤ the kernel's PID_MAX_LIMIT,
including 0 and negative values, which oomd passes to kill() verbatim) unless
``allow_live_pids`` is set. It also refuses what would act on the host rather than the fake
tree: ``cgroup`` patterns that could climb out of it (``..``, any component starting with
``.``: oomd only checks that a match *textually* starts with its cgroup-fs), senpai's
``modulate_swappiness`` (writes ``/proc/sys/vm/swappiness``) and a non-dry ``systemd_restart``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from oomd.testing import faketree

# A step's "file" with this prefix is an extended attribute of the cgroup's directory.
XATTR_KEY = "xattr:"

# Ruleset names the oracle harness reserves for its tick markers.
RESERVED_RULESETS = ("__oracle_begin__", "__oracle_end__")
# The kernel's absolute upper bound for pids on 64-bit (include/linux/threads.h): no process
# can have a larger pid, whatever /proc/sys/kernel/pid_max says.
PID_MAX_LIMIT = 4 * 1024 * 1024

Step = dict  # {relpath: {file: str | None} | None}


class ScenarioError(ValueError):
    """A scenario that cannot be run safely or is not well-formed."""


def _norm_relpath(rel: str) -> str:
    if not isinstance(rel, str):
        raise ScenarioError(f"cgroup path {rel!r} is not a string")
    parts = [p for p in rel.split("/") if p]
    if rel.startswith("/"):
        raise ScenarioError(f"cgroup path {rel!r} must be relative to the fake root")
    if any(p in (".", "..") for p in parts):
        raise ScenarioError(f"cgroup path {rel!r} must not contain '.' or '..'")
    return "/".join(parts)


def _leading_int(text: str) -> int | None:
    """The value C++ stoi would read from ``text`` (leading blanks, sign, digits), or None."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


@dataclass
class Scenario:
    name: str
    config: Any
    ticks: int
    tree: dict = field(default_factory=dict)
    trajectory: dict = field(default_factory=dict)
    xattrs: dict = field(default_factory=dict)
    devices: list = field(default_factory=list)
    allow_live_pids: bool = False
    description: str = ""

    # ---- (de)serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "ticks": self.ticks,
            "config": self.config,
            "tree": self.tree,
            "xattrs": self.xattrs,
            "trajectory": {str(k): v for k, v in sorted(self.trajectory.items())},
            "devices": list(self.devices),
            "allow_live_pids": self.allow_live_pids,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Scenario":
        known = {"name", "description", "ticks", "config", "tree", "xattrs", "trajectory",
                 "devices", "allow_live_pids"}
        unknown = set(d) - known
        if unknown:
            raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
        try:
            trajectory = {int(k): v for k, v in (d.get("trajectory") or {}).items()}
        except ValueError as e:
            raise ScenarioError(f"trajectory keys must be tick numbers: {e}") from None
        s = cls(
            name=d["name"],
            config=d.get("config"),
            ticks=d["ticks"],
            tree=dict(d.get("tree") or {}),
            trajectory=trajectory,
            xattrs=dict(d.get("xattrs") or {}),
            devices=list(d.get("devices") or []),
            allow_live_pids=bool(d.get("allow_live_pids", False)),
            description=d.get("description", ""),
        )
        s.validate()
        return s

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Scenario":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Scenario":
        return cls.from_json(Path(path).read_text())

    # ---- checks ---------------------------------------------------------------------------

    def validate(self) -> "Scenario":
        """Raise ScenarioError unless the scenario is well-formed and safe to run; return self."""
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError("a scenario needs a non-empty name")
        if not isinstance(self.ticks, int) or isinstance(self.ticks, bool) or self.ticks < 0:
            raise ScenarioError(f"{self.name}: ticks must be an int >= 0, not {self.ticks!r}")
        if isinstance(self.config, str):
            if self.ticks:
                raise ScenarioError(
                    f"{self.name}: a raw-text config can only be used with ticks=0 (the tick "
                    "markers are added to dict configs)"
                )
        elif self.config is not None and not isinstance(self.config, dict):
            raise ScenarioError(f"{self.name}: config must be a dict, None or raw text")
        else:
            self._validate_config()
        for rel, files in self.tree.items():
            _norm_relpath(rel)
            self._check_files(f"tree[{rel!r}]", files, allow_delete=False)
        for rel, attrs in self.xattrs.items():
            _norm_relpath(rel)
            if not isinstance(attrs, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()
            ):
                raise ScenarioError(f"{self.name}: xattrs[{rel!r}] must map names to strings")
        for tick, step in self.trajectory.items():
            if not isinstance(tick, int) or not 1 <= tick <= max(self.ticks, 1):
                raise ScenarioError(
                    f"{self.name}: trajectory tick {tick!r} is outside 1..{self.ticks}"
                )
            if not isinstance(step, dict):
                raise ScenarioError(f"{self.name}: trajectory[{tick}] must be a dict")
            for rel, files in step.items():
                if _norm_relpath(rel) == "" and files is None:
                    raise ScenarioError(f"{self.name}: trajectory[{tick}] cannot remove the root")
                if files is not None:
                    self._check_files(f"trajectory[{tick}][{rel!r}]", files, allow_delete=True)
        for dev in self.devices:
            if not re.fullmatch(r"\d+:\d+", str(dev)):
                raise ScenarioError(f"{self.name}: device {dev!r} is not maj:min")
        return self

    def _check_files(self, where: str, files, allow_delete: bool) -> None:
        if not isinstance(files, dict):
            raise ScenarioError(f"{self.name}: {where} must map file names to contents")
        for fname, content in files.items():
            if not isinstance(fname, str) or not fname or "/" in fname or fname in (".", ".."):
                raise ScenarioError(f"{self.name}: {where} has a bad file name {fname!r}")
            if content is None and allow_delete:
                continue
            if not isinstance(content, str):
                raise ScenarioError(f"{self.name}: {where}[{fname!r}] must be a string")
            if fname == "cgroup.procs" and not self.allow_live_pids:
                for line in content.splitlines():
                    pid = _leading_int(line)
                    if pid is not None and pid <= PID_MAX_LIMIT:
                        raise ScenarioError(
                            f"{self.name}: {where}['cgroup.procs'] lists pid {pid}, which could "
                            f"be a real process (oomd would SIGKILL it); use pids above "
                            f"{PID_MAX_LIMIT} or set allow_live_pids"
                        )

    def _validate_config(self) -> None:
        cfg = self.config or {}
        rulesets = cfg.get("rulesets")
        if rulesets is not None and not isinstance(rulesets, list):
            raise ScenarioError(
                f"{self.name}: config['rulesets'] must be a list (the harness appends its "
                "tick markers); use a raw-text config with ticks=0 for other shapes"
            )
        for i, rs in enumerate(rulesets or []):
            if isinstance(rs, dict) and rs.get("name") in RESERVED_RULESETS:
                raise ScenarioError(
                    f"{self.name}: ruleset {i} uses the reserved name {rs.get('name')!r}"
                )
            if isinstance(rs, dict) and "cgroup" in rs:
                self._check_pattern(f"ruleset {i}", "ruleset", _coerce(rs["cgroup"]))
            for plugin in _plugins_of(rs):
                self._check_plugin(f"ruleset {i}", plugin)
        hooks = cfg.get("prekill_hooks")
        for plugin in hooks if isinstance(hooks, list) else []:
            self._check_plugin("prekill_hooks", plugin)

    def _check_plugin(self, where: str, plugin) -> None:
        """Refuse plugin settings that would reach the host instead of the fake tree."""
        if not isinstance(plugin, dict) or not isinstance(plugin.get("args"), dict):
            return
        name, args = plugin.get("name"), plugin["args"]
        flag = lambda key: _coerce(args.get(key, "")) in ("true", "True", "1")  # noqa: E731
        if name == "senpai" and flag("modulate_swappiness"):
            raise ScenarioError(
                f"{self.name}: {where}: senpai with modulate_swappiness writes the host's "
                "/proc/sys/vm/swappiness; not allowed in scenarios"
            )
        if name == "systemd_restart" and not flag("dry"):
            raise ScenarioError(
                f"{self.name}: {where}: systemd_restart without dry restarts a real service"
            )
        for key in ("cgroup", "ruleset_cgroup"):
            if key in args:
                self._check_pattern(where, name, _coerce(args[key]))

    def _check_pattern(self, where: str, name, text: str) -> None:
        for piece in text.split(","):
            for comp in piece.split("/"):
                if comp.startswith(".") or "{." in comp or "\\" in comp:
                    raise ScenarioError(
                        f"{self.name}: {where}: {name} cgroup pattern {piece!r} could leave "
                        "the fake tree (components must not start with '.', nor contain "
                        "'{.' or a backslash)"
                    )

    def lint(self) -> list[str]:
        """Ways the tree departs from the reference's advice for fake trees (Appendix C).

        Not errors: a scenario may break a rule on purpose (e.g. to provoke an abort). A random
        scenario generator should produce trees for which this returns [].
        """
        problems = []
        final = {_norm_relpath(r): dict(f) for r, f in self.tree.items()}
        states = [{r: dict(f) for r, f in final.items()}]
        for tick in sorted(self.trajectory):
            for rel, files in self.trajectory[tick].items():
                rel = _norm_relpath(rel)
                if files is None:
                    final.pop(rel, None)
                    continue
                cur = final.setdefault(rel, {})
                for fname, content in files.items():
                    if fname.startswith(XATTR_KEY):
                        continue
                    if content is None:
                        cur.pop(fname, None)
                    else:
                        cur[fname] = content
            states.append({r: dict(f) for r, f in final.items()})
        seen = set()
        for state in states:
            for rel, files in state.items():
                if rel == "":
                    continue
                msgs = []
                if "cgroup.controllers" not in files:
                    msgs.append(f"{rel}: no cgroup.controllers (oomd evicts it every tick)")
                if "/" not in rel and not {"memory.min", "memory.low"} <= set(files):
                    msgs.append(f"{rel}: top-level cgroup without memory.min/memory.low")
                stat = files.get("memory.stat")
                if stat is not None and not re.search(r"(?m)^pgscan\s", stat):
                    msgs.append(f"{rel}: memory.stat without pgscan (oomd aborts on a kill)")
                pressure = files.get("memory.pressure")
                if pressure is not None and not pressure.startswith("some avg10="):
                    msgs.append(f"{rel}: memory.pressure not in upstream format")
                for m in msgs:
                    if m not in seen:
                        seen.add(m)
                        problems.append(m)
        return problems

    # ---- materialisation ------------------------------------------------------------------

    def write_tree(self, root: str | os.PathLike) -> Path:
        """Create the initial tree (and xattrs) under ``root`` and apply the step for tick 1."""
        root = Path(root)
        faketree.write_tree(root, {_norm_relpath(r): f for r, f in self.tree.items()})
        for rel, attrs in self.xattrs.items():
            d = root / _norm_relpath(rel)
            d.mkdir(parents=True, exist_ok=True)
            for name, value in attrs.items():
                os.setxattr(d, name, value.encode())
        self.apply_step(root, 1)
        return root

    def apply_step(self, root: str | os.PathLike, tick: int) -> None:
        """Apply the trajectory step of ``tick`` (if any) to the tree under ``root``.

        Files are rewritten in place (same inode, as the kernel does), so a reader holding an
        open descriptor sees the new value.
        """
        step = self.trajectory.get(tick)
        if not step:
            return
        root = Path(root)
        for rel, files in step.items():
            d = root / _norm_relpath(rel)
            if files is None:
                shutil.rmtree(d, ignore_errors=True)
                continue
            d.mkdir(parents=True, exist_ok=True)
            writes = {}
            for fname, content in files.items():
                if fname.startswith(XATTR_KEY):
                    _set_xattr(d, fname[len(XATTR_KEY):], content)
                elif content is None:
                    try:
                        os.unlink(d / fname)
                    except FileNotFoundError:
                        pass
                else:
                    writes[fname] = content
            if writes:
                faketree.update_files(d, {"": writes})


def _set_xattr(d: Path, name: str, value: str | None) -> None:
    if value is None:
        try:
            os.removexattr(d, name)
        except OSError:
            pass  # not set
    else:
        os.setxattr(d, name, value.encode())


def _coerce(value) -> str:
    """A JSON argument value as oomd's config parser turns it into text (reference §2.2)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _plugins_of(ruleset) -> list:
    """Every plugin element (detectors and actions) of a ruleset dict, leniently."""
    if not isinstance(ruleset, dict):
        return []
    out = []
    for group in ruleset.get("detectors") or []:
        if isinstance(group, list):
            out.extend(group)
    actions = ruleset.get("actions") or []
    if isinstance(actions, list):
        out.extend(actions)
    return out
