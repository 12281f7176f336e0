"""oomd's stats map (reference §8): string keys, 32-bit signed values.

The daemon creates one ``Stats``; plugins reach it through the construction context (init) and
``ctx.stats`` (run). The unix-socket server and the ``-d``/``-r`` client build on this.
"""

from __future__ import annotations

import threading

CORE_KEYS = ("oomd.kills", "oomd.dropin.added", "oomd.dropin.fired")


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class Stats:
    """Thread-safe map; the socket server reads it from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def set(self, key: str, value: int) -> None:
        with self._lock:
            self._values[key] = _int32(value)

    def increment(self, key: str, by: int = 1) -> None:
        with self._lock:
            self._values[key] = _int32(self._values.get(key, 0) + by)

    def get(self, key: str, default: int | None = None) -> int | None:
        with self._lock:
            return self._values.get(key, default)

    def get_all(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def reset_all(self) -> None:
        """Zero every existing value; keys are kept (oomd's ``r`` request)."""
        with self._lock:
            for k in self._values:
                self._values[k] = 0

    def init_core(self) -> None:
        for k in CORE_KEYS:
            self.set(k, 0)
