"""The plain intermediate representation of a config (oomd's ``ConfigTypes.h``).

Every node remembers its JSON path so the compiler can point at the culprit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plugin:
    name: str
    args: dict[str, str] = field(default_factory=dict)
    path: str = "$"

    def arg_path(self, arg: str | None) -> str:
        from oomd.config.jsonc import key_path

        return key_path(f"{self.path}.args", arg) if arg else f"{self.path}.args"


@dataclass(frozen=True)
class DetectorGroup:
    name: str
    detectors: tuple[Plugin, ...] = ()
    path: str = "$"


@dataclass(frozen=True)
class DropIn:
    detectors: bool = False
    actions: bool = False
    disable_on_drop_in: bool = False


@dataclass(frozen=True)
class Ruleset:
    name: str
    dropin: DropIn = DropIn()
    silence_logs: str = ""
    post_action_delay: str = ""
    prekill_hook_timeout: str = ""
    cgroup: str = ""        # oomd HEAD: a clone of the ruleset per matching cgroup
    xattr_filter: str = ""  # oomd HEAD: ... that carries this xattr
    detector_groups: tuple[DetectorGroup, ...] = ()
    actions: tuple[Plugin, ...] = ()
    path: str = "$"


@dataclass(frozen=True)
class Root:
    rulesets: tuple[Ruleset, ...] = ()
    prekill_hooks: tuple[Plugin, ...] = ()
    file: str = "<config>"

    def dump(self) -> str:
        """A readable dump of the IR (oomd prints one after parsing)."""
        out = []
        for rs in self.rulesets:
            out.append(f"Ruleset={rs.name}")
            if rs.cgroup:
                out.append(f"  Cgroup={rs.cgroup}")
            if rs.xattr_filter:
                out.append(f"  XattrFilter={rs.xattr_filter}")
            for dg in rs.detector_groups:
                out.append(f"  DetectorGroup={dg.name}")
                for d in dg.detectors:
                    out.append(f"    Detector={d.name}")
                    out.extend(f"      Arg={k}:{v}" for k, v in sorted(d.args.items()))
            for a in rs.actions:
                out.append(f"  Action={a.name}")
                out.extend(f"    Arg={k}:{v}" for k, v in sorted(a.args.items()))
        for h in self.prekill_hooks:
            out.append(f"PrekillHook={h.name}")
            out.extend(f"  Arg={k}:{v}" for k, v in sorted(h.args.items()))
        return "\n".join(out)
