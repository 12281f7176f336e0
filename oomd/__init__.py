"""pyoomd: a userspace out-of-memory killer, a re-implementation of Meta's oomd."""

__version__ = "0.1.0"
