"""``pyoomd status``: the live state of a running daemon (docs/explain.md).

Daemon side: ``StatusService`` answers the stats socket's status request (``s``; ``g``/``r``/
``0`` of oomd are unchanged byte for byte). The socket's thread asks, the daemon's main thread
answers between ticks (woken through a pipe in its wait, ``oomd.wakeup``), so the snapshot reads
the engine and the context only where they are never touched concurrently. ``snapshot`` is per
ruleset: detector groups and detectors with their last value, threshold and for how long it has
held (with "would fire in N s" where it applies), pause and suspended chain, and each kill
plugin's top candidates now, ranked by the plugin's own ranking (``BaseKillPlugin.preview``).

Client side: ``fetch(runtime_dir)`` sends the request and parses the reply; ``render`` is the
text ``pyoomd status`` prints.
"""

from __future__ import annotations

import json
import os
import threading
import time

from oomd.explain import LABELS, fmt_value, observation_text, would_fire_in
from oomd.decision import PREFERENCE_NAMES
from oomd.names import shown

REQUEST = "s"
TOP = 5
ANSWER_TIMEOUT = 1.5   # seconds the socket thread waits for the main thread


def _is_kill_plugin(plugin) -> bool:
    return callable(getattr(plugin, "preview", None))


def ruleset_status(ruleset, ctx, now: float, top: int = TOP) -> dict:
    groups = []
    for dg in ruleset.detector_groups:
        dets = []
        for d in dg.detectors:
            obs = dict(getattr(d, "observation", None) or {"plugin": d.name})
            fire_in = would_fire_in(obs) if "op" in obs else None
            if fire_in is not None:
                obs["would_fire_in"] = round(fire_in, 1)
            dets.append(obs)
        groups.append({"name": dg.name, "fired": bool(getattr(dg, "last_fired", False)),
                       "detectors": dets})
    paused = ruleset.pause_actions_until - now if ruleset.pause_actions_until > now else None
    actions = []
    for a in ruleset.actions:
        entry: dict = {"plugin": a.name, "args": dict(getattr(a, "raw_args", {}) or {})}
        if _is_kill_plugin(a) and ctx is not None:
            try:
                entry.update(a.preview(ctx, top))
            except Exception as e:  # noqa: BLE001 - status must answer whatever a plugin does
                entry["error"] = f"{type(e).__name__}: {e}"
        actions.append(entry)
    return {"name": ruleset.name, "label": getattr(ruleset, "label", ruleset.name),
            "enabled": bool(ruleset.enabled),
            "paused_for": None if paused is None else round(paused, 1),
            "waiting_for_prekill_hook": ruleset._suspended is not None,
            "detector_groups": groups, "actions": actions}


def snapshot(engine, ctx, clock, top: int = TOP) -> dict:
    """The status of every ruleset (base and drop-ins) now."""
    now = clock()
    rulesets = []
    for base in getattr(engine, "rulesets", ()):
        for rs in [d.ruleset for d in base.dropins] + [base.ruleset]:
            clones = getattr(rs, "clones", None)
            if clones is None:
                rulesets.append(ruleset_status(rs, ctx, now, top))
                continue
            # a per-cgroup ruleset: its template never runs; each cgroup's clone does
            for relpath in sorted(clones, key=os.fsencode):
                entry = ruleset_status(clones[relpath], ctx, now, top)
                entry["label"] = f"{entry['label']} [{shown(relpath)}]"
                rulesets.append(entry)
    return {"time": time.time(), "tick": int(getattr(ctx, "tick", 0) or 0),
            "pid": os.getpid(), "rulesets": rulesets}


class StatusService:
    """The bridge between the stats socket's thread and the daemon's main thread."""

    def __init__(self, compute) -> None:
        self.compute = compute        # () -> dict, called on the main thread
        self._lock = threading.Lock()
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._pending: list[tuple[threading.Event, list]] = []

    def fileno(self) -> int:
        return self._r

    def ask(self, timeout: float = ANSWER_TIMEOUT) -> dict:
        """From the socket's thread: the snapshot, or an error body if the main thread is busy
        (a long tick) for longer than ``timeout``."""
        done, box = threading.Event(), []
        with self._lock:
            self._pending.append((done, box))
        try:
            os.write(self._w, b"s")
        except BlockingIOError:
            pass   # the pipe is full of wake-ups already
        if not done.wait(timeout):
            with self._lock:
                if (done, box) in self._pending:
                    self._pending.remove((done, box))
            return {"error": "the daemon did not answer in time (a tick in progress?)"}
        return box[0]

    def serve(self) -> None:
        """On the main thread, when the pipe is readable: answer every pending request."""
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            body = self.compute()
        except Exception as e:  # noqa: BLE001 - never the loop's end
            body = {"error": f"{type(e).__name__}: {e}"}
        for done, box in pending:
            box.append(body)
            done.set()

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


# -- client ---------------------------------------------------------------------------------------

class StatusError(Exception):
    pass


def fetch(runtime_dir: str, timeout: float = 5.0) -> dict:
    """Ask the daemon behind ``<runtime_dir>/oomd-stats.socket`` for its status."""
    import socket

    from oomd.stats_socket import socket_path

    path = socket_path(runtime_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(REQUEST.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as e:
            raise StatusError(f"{path}: {e.strerror or e}") from None
    try:
        root = json.loads(b"".join(chunks).decode("utf-8", "replace"))
    except json.JSONDecodeError as e:
        raise StatusError(f"{path}: not a status reply ({e.msg})") from None
    if not isinstance(root, dict) or root.get("error"):
        raise StatusError(f"{path}: the daemon does not answer status requests "
                          f"(error {root.get('error') if isinstance(root, dict) else '?'}; "
                          "an oomd, or a pyoomd before status?)")
    body = root.get("body")
    if not isinstance(body, dict):
        raise StatusError(f"{path}: not a status reply")
    if "error" in body and "rulesets" not in body:
        raise StatusError(f"{path}: {body['error']}")
    return body


def _candidates(entry: dict) -> list[str]:
    lines = []
    sets = entry.get("peer_sets", ())
    for ps in sets:
        where = f' (children of "{ps["parent"]}")' if ps.get("parent") else ""
        lines.append(f"      top of {ps.get('count', len(ps['names']))} candidates{where}:")
        comps = [c for c in ps["key"] if c != "kill_preference"]
        comps += [c for c in ps["components"] if c not in ps["key"] and c not in comps]
        header = ["#", "cgroup", "preference"] + [LABELS.get(c, c) for c in comps]
        rows = []
        for i, name in enumerate(ps["names"]):
            row = [str(i + 1), name,
                   PREFERENCE_NAMES.get(ps["components"]["kill_preference"][i], "?")]
            row += [fmt_value(ps["components"][c][i], ps["units"].get(c, "")) for c in comps]
            rows.append(row)
        widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(header)]
        for r in [header] + rows:
            lines.append("        " + "  ".join(
                c.rjust(w) if k >= 3 else c.ljust(w)
                for k, (c, w) in enumerate(zip(r, widths))).rstrip())
    if entry.get("would_kill"):
        lines.append(f'      would kill now: "{entry["would_kill"]}"')
    elif "peer_sets" in entry:
        lines.append("      would kill now: nothing (no killable candidate)")
    if entry.get("error"):
        lines.append(f"      (could not rank: {entry['error']})")
    return lines


def render(status: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.get("time", 0)))
    lines = [f"pyoomd (pid {status.get('pid')}) at {when}, tick {status.get('tick')}"]
    for rs in status.get("rulesets", ()):
        state = []
        if not rs.get("enabled", True):
            state.append("disabled by a drop-in")
        if rs.get("paused_for") is not None:
            state.append(f"actions paused for {rs['paused_for']:g} s more")
        if rs.get("waiting_for_prekill_hook"):
            state.append("action chain suspended (prekill hook running)")
        lines += ["", f"Ruleset {rs['label']!r}" + (f": {'; '.join(state)}" if state else "")]
        for g in rs.get("detector_groups", ()):
            lines.append(f"  detector group {g['name']!r}: "
                         f"{'FIRING' if g.get('fired') else 'not firing'}")
            for d in g.get("detectors", ()):
                text = observation_text(d) if "op" in d else d.get("plugin", "?")
                hint = ""
                if d.get("would_fire_in") is not None:
                    hint = f"  (would fire in {d['would_fire_in']:.0f} s)"
                elif d.get("fired"):
                    hint = "  (firing)"
                lines.append(f"    {d.get('plugin', '?')}: {text}{hint}")
        for a in rs.get("actions", ()):
            lines.append(f"  action {a['plugin']}")
            lines += _candidates(a)
    return "\n".join(lines) + "\n"
