"""pyoomd's exception tree.

``OomdError`` is the base. A ``ConfigError`` points at the exact spot of a config problem and
prints as ``<file>: at <json path>: <reason>``; tests assert the whole string.
"""

from __future__ import annotations


class OomdError(Exception):
    """Base of every error pyoomd raises on purpose."""


class ConfigError(OomdError):
    def __init__(self, file: str | None, json_path: str, reason: str) -> None:
        self.file = file or "<config>"
        self.json_path = json_path
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}: at {self.json_path}: {self.reason}"


class PluginArgError(OomdError):
    """A plugin rejected its arguments; the compiler adds file and JSON path."""

    def __init__(self, reason: str, arg: str | None = None) -> None:
        self.reason = reason
        self.arg = arg
        super().__init__(reason)


class PluginRegistryError(OomdError):
    """A plugin name registered twice."""
