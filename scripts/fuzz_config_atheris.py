#!/usr/bin/env python3
"""Coverage-guided fuzzing of the config pipeline with atheris (libFuzzer for Python).

    pip install atheris
    python scripts/fuzz_config_atheris.py -atheris_runs=100000          # from the built-in seeds
    python scripts/fuzz_config_atheris.py -atheris_runs=100000 CORPUS_DIR  # keep what it learns

Complements scripts/fuzz_config.py: that one generates near-valid configs from the plugin
registry; this one mutates bytes and keeps the inputs that reach new lines of oomd/config and
oomd/parsing.py. The property is the same (tests/fuzz/fuzzgen.py): an Engine or a clear
ConfigError. The bytes are decoded as UTF-8 (undecodable bytes replaced), as a config file is
read. libFuzzer options (-max_len, -timeout, -jobs ...) pass through; a finding stops the run
and leaves a crash-* file to replay with ``python scripts/fuzz_config_atheris.py crash-<hash>``.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "fuzz"), str(REPO)]

try:
    import atheris
except ImportError:
    sys.exit("atheris is not installed: pip install atheris")

with atheris.instrument_imports(include=["oomd"]):
    from oomd import logs, parsing, plugin  # noqa: F401
    from oomd.config import compiler, jsonc, parser  # noqa: F401

import fuzzgen  # noqa: E402

COUNT = [0]


def test_one_input(data: bytes) -> None:
    COUNT[0] += 1
    text = data.decode("utf-8", "replace")
    fuzzgen.check_config_text(text)
    if len(data) > 1:
        name = sorted(fuzzgen.VALUE_PARSERS)[data[0] % len(fuzzgen.VALUE_PARSERS)]
        fuzzgen.check_value_parser(name, data[1:65].decode("utf-8", "replace"))


def seed_corpus() -> str:
    """The shipped configs plus a few hundred generated ones, in a temporary directory."""
    d = tempfile.mkdtemp(prefix="pyoomd-atheris-seeds-")
    for cfg in sorted((REPO / "configs").glob("*.json")):
        (Path(d) / cfg.name).write_bytes(cfg.read_bytes())
    chooser = fuzzgen.RandomChooser(random.Random(0))
    for i in range(300):
        text = fuzzgen.gen_structured_text(chooser)
        (Path(d) / f"gen{i:03d}.json").write_text(text, errors="replace")
    return d


def main() -> None:
    logs.setup(inline=True, stream=open(os.devnull, "w"))
    plugin.load_builtin_plugins()
    argv = list(sys.argv)
    seeds = None
    if not any(not a.startswith("-") for a in argv[1:]):
        seeds = seed_corpus()
        argv.append(seeds)
    atheris.Setup(argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        print(f"pyoomd: {COUNT[0]} inputs executed", file=sys.stderr)
        if seeds:
            shutil.rmtree(seeds, ignore_errors=True)


if __name__ == "__main__":
    main()
