"""Applying drop-in configs to the running engine (reference §2.5, the engine's side).

The watcher (``oomd.dropin_watch``) says which files were added or removed; this module reads,
parses and compiles each against the **base** config and attaches it to the engine. A file that
fails to parse or compile is rejected with its file, JSON path and reason, and the engine keeps
what it had (including an earlier good version of the same file).
"""

from __future__ import annotations

from oomd import logs
from oomd.config import ir
from oomd.config.compiler import Compiler
from oomd.config.parser import parse_file
from oomd.errors import ConfigError


class DropIns:
    def __init__(self, compiler: Compiler, base: ir.Root) -> None:
        self.compiler = compiler
        self.base = base
        self.active: dict[str, ir.Root] = {}  # tag -> parsed drop-in, oldest first

    def add(self, engine, tag: str, path: str) -> bool:
        try:
            dropin = parse_file(path)
            unit = self.compiler.compile_drop_in(self.base, dropin)
        except OSError as e:
            logs.log(f"Caught: cannot read {path}: {e.strerror}", logs.ERR)
            logs.log("Failed to inject drop in config into engine", logs.ERR)
            return False
        except ConfigError as e:
            logs.log(f"Could not compile drop in config: {e}", logs.ERR)
            logs.log("Failed to inject drop in config into engine", logs.ERR)
            return False
        engine.remove_drop_in(tag)
        if not engine.add_drop_in(tag, unit):
            self.active.pop(tag, None)
            logs.log("Failed to inject drop in config into engine", logs.ERR)
            return False
        self.active.pop(tag, None)
        self.active[tag] = dropin
        logs.log(f"Drop in config={tag} injected into engine")
        return True

    def remove(self, engine, tag: str) -> None:
        engine.remove_drop_in(tag)
        self.active.pop(tag, None)
        logs.log(f"Drop in config={tag} removed from engine")

    def apply(self, engine, ops, path_of) -> None:
        for op, tag in ops:
            if op == "add":
                self.add(engine, tag, path_of(tag))
            else:
                self.remove(engine, tag)

    def reattach(self, engine, compiler: Compiler, base: ir.Root) -> None:
        """After a reload: compile every active drop-in against the new base, oldest first."""
        self.compiler, self.base = compiler, base
        for tag, dropin in list(self.active.items()):
            try:
                unit = compiler.compile_drop_in(base, dropin)
            except ConfigError as e:
                logs.log(f"Drop in config={tag} no longer compiles against the reloaded config: {e}",
                         logs.ERR)
                del self.active[tag]
                continue
            engine.add_drop_in(tag, unit)
