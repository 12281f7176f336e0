#!/usr/bin/env python3
"""Run ``pyoomd -c`` on every config oomd's source tree ships or documents.

    python scripts/oomd-head/check_configs.py SRC_DIR [--compat head]

SRC_DIR is an unpacked oomd source tree (e.g. upstream main at 88c28fd, see
docs/reliability.md). Checked: the JSON files under src/oomd/etc/ (installed as
/etc/oomd.json), then every brace-balanced block of the docs (docs/*.md, README.md) that
mentions "rulesets" and parses as JSON with comments (blocks with "..." placeholders are
skeletons, reported as such and not counted; a block whose rulesets lack detectors or actions is
a drop-in and is compiled against the doc's previous full config). The test fixtures under
src/oomd/fixtures/ are checked too and reported apart: oomd's own parser tests use them, some
are not meant to be valid. With an oomd HEAD binary (``$PYOOMD_OOMD_HEAD_BIN`` or the default
build location), each file's verdict is compared with ``oomd -c``'s. Exit status 1 if a shipped
or documented config fails, or a verdict differs from oomd's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from oomd.config.jsonc import JsoncError, loads  # noqa: E402


def blocks(text: str):
    """Brace-balanced top-level ``{...}`` blocks of a text (strings not considered)."""
    depth, start = 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start:i + 1]


def oomd_verdict(binary, path: Path) -> int | None:
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pyoomd-headcfg-") as tmp:
        r = subprocess.run([str(binary), "--kmsg-override", f"{tmp}/kmsg", "-c", str(path)],
                           capture_output=True, text=True)
    return r.returncode


def check_drop_in(base: Path, dropin: Path, compat: str) -> tuple[int, str]:
    from oomd import plugin
    from oomd.compat import Compat
    from oomd.config.compiler import Compiler
    from oomd.config.parser import parse_file
    from oomd.errors import ConfigError

    plugin.load_builtin_plugins()
    ctx = plugin.PluginConstructionContext(compat=Compat.for_mode(compat))
    try:
        Compiler(ctx, str(dropin)).compile_drop_in(parse_file(str(base)), parse_file(str(dropin)))
    except ConfigError as e:
        return 1, str(e)
    return 0, ""


def check(path: Path, compat: str) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(prefix="pyoomd-headcfg-") as tmp:
        r = subprocess.run(
            [sys.executable, "-m", "oomd", "--compat", compat, "--kmsg-override",
             f"{tmp}/kmsg", "-c", str(path)], capture_output=True, text=True, cwd=REPO)
    last = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return r.returncode, last[-1] if last else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("--compat", default="0.5.0")
    a = ap.parse_args()
    src = Path(a.src)
    from oomd.testing.oracle import head_binary

    binary = head_binary()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="pyoomd-headdocs-") as tmp:
        targets = [("shipped", p, None) for p in sorted((src / "src/oomd/etc").glob("*.json"))]
        docs = sorted((src / "docs").glob("*.md")) + [src / "README.md"]
        for doc in docs:
            if not doc.exists():
                continue
            base = None
            for i, block in enumerate(blocks(doc.read_text())):
                if '"rulesets"' not in block:
                    continue
                where = f"{doc.relative_to(src)} block {i}"
                try:
                    parsed = loads(block)
                except JsoncError as e:
                    print(f"skeleton  {where}: not JSON ({e.reason})")
                    continue
                p = Path(tmp) / f"{doc.stem}-{i}.json"
                p.write_text(block)
                full = all(isinstance(rs, dict) and rs.get("detectors") and rs.get("actions")
                           for rs in parsed.get("rulesets") or [])
                targets.append((f"doc ({where})", p, None if full else base))
                if full:
                    base = p
        fixtures = [("fixture", p, None) for p in sorted((src / "src/oomd/fixtures").rglob("*.json"))]
        for kind, path, base in targets + fixtures:
            if base is not None:
                code, last = check_drop_in(base, path, a.compat)
                kind += f", a drop-in over {base.name}"
                theirs = None
            else:
                code, last = check(path, a.compat)
                theirs = oomd_verdict(binary, path)
            ok = code == 0
            same = theirs is None or (theirs == 0) == ok
            if (not ok and kind != "fixture") or not same:
                failed += 1
            verdict = "" if theirs is None else (
                f" (oomd HEAD: {'accepts' if theirs == 0 else 'rejects'})")
            print(f"{'ok' if ok else 'REJECTED':8}  {kind}: {path.name}{verdict}"
                  + ("" if ok else f"\n          {last}"))
    print(f"{len(targets)} shipped and documented configs, {failed} failed or judged unlike "
          f"oomd HEAD (pyoomd --compat {a.compat})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
