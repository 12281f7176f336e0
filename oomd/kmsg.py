"""The kill-record file: ``/dev/kmsg`` or ``--kmsg-override`` (reference §7, §9.2).

Opened once at start-up (``O_WRONLY|O_CREAT|O_APPEND``, 0644). Each record is one ``write``, so
records from one process never interleave. A failed write is logged, never raised. Each record is
one line of printable UTF-8 (``oomd.names.printable``); the kill plugins render the cgroup's name
with ``oomd.names.shown``, so a record always splits into oomd's fields.
"""

from __future__ import annotations

import os

from oomd import logs
from oomd.names import printable

KMSG_PREFIX = "oomd kill: "


class Kmsg:
    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.failures = 0

    def write(self, text: str) -> bool:
        """Append ``text`` and a newline. Returns False (and logs) if the write failed."""
        try:
            os.write(self.fd, (printable(text) + "\n").encode())
            return True
        except OSError as e:
            self.failures += 1
            logs.log(f"error writing: {e.strerror}", logs.ERR, force=True)
            logs.log("Unable to write log to output file", logs.ERR, force=True)
            return False

    def kill_record(self, body: str) -> bool:
        """``oomd kill: <body>`` to the file, and ``<body>`` to the log even when plugins are
        silenced (oomd's ``[Log.cpp:117]`` line)."""
        ok = self.write(KMSG_PREFIX + body)
        logs.log(body, force=True, depth=2)
        return ok

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
