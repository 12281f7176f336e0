"""Input generators and properties for fuzzing the config pipeline (issue 7 item 3).

Shared by ``tests/fuzz`` (a modest number of examples, in CI) and ``scripts/fuzz_config.py`` (the
long run). The generators draw plugin names and argument names from the live registry, so every
plugin that exists when the fuzzer runs is covered, with values aimed at each argument's parser.

The properties: a config text gives an ``Engine`` or a ``ConfigError`` that names the file, a JSON
path and a reason, and nothing else; the path of an error in a document that parses points into
that document; a plugin's ``init`` never fails with anything but its own argument error; a value
parser returns its type or raises ``ValueError``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import random
import re
import shutil
import signal
import string
import tempfile

from hypothesis import strategies as st

from oomd import parsing, plugin
from oomd.cgpath import CgroupPatterns
from oomd.config import jsonc
from oomd.config.compiler import Compiler, compile_config
from oomd.config.parser import parse_string
from oomd.engine import DropInUnit, Engine
from oomd.errors import ConfigError
from oomd.plugin import Arg, PluginConstructionContext
from oomd.stats import Stats

FILE = "fuzz.json"


class FuzzFailure(AssertionError):
    """A property violation (as opposed to an unexpected exception, which is one by itself)."""


# -- choosers: one generator, two drivers --------------------------------------------------------
#
# The generators below make every decision through a chooser. ``HypothesisChooser`` draws from
# hypothesis (tests: edge-biased choices, shrinking); ``RandomChooser`` from ``random.Random``
# (the long run: about a hundred times faster per input than composing hypothesis strategies).


class HypothesisChooser:
    budget = 1 << 30  # deviations allowed (gen_doc sets a small one per document)

    def __init__(self, data) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.data.draw(st.sampled_from(seq))

    def text(self, max_size: int, alphabet: str | None = None) -> str:
        return self.data.draw(st.text(alphabet=alphabet, max_size=max_size) if alphabet
                              else st.text(max_size=max_size))

    def real(self) -> float:
        return self.data.draw(st.floats(allow_nan=False, allow_infinity=False))


_UNICODE_POOL = [chr(c) for c in range(0x20, 0x7F)] + list(
    "\t\n\r\x00\x01\x7f\u00e9\u0661\u2028\ufeff\U0001f600")
# Raw text may also hold lone surrogates (a str from the API can; a UTF-8 file cannot).
_RAW_POOL = _UNICODE_POOL + ["\ud800", "\udfff"]
_EDGE_REALS = [0.0, -0.0, 0.1, 1.5, 1e-300, 5e-324, 1e308, -1e308, 1.7976931348623157e308,
               2.0**63, 2.0**64]


class RandomChooser:
    budget = 1 << 30

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        r = self.rng.random()
        if r < 0.1:
            return lo
        if r < 0.2:
            return hi
        if r < 0.5 and hi - lo > 64:  # small magnitudes are where parsers branch
            return max(lo, min(hi, self.rng.randint(-64, 64)))
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def text(self, max_size: int, alphabet: str | None = None) -> str:
        n = self.rng.randint(0, max_size)
        pool = alphabet or _UNICODE_POOL
        return "".join(pool[self.rng.randrange(len(pool))] for _ in range(n))

    def real(self) -> float:
        if self.rng.random() < 0.3:
            return self.rng.choice(_EDGE_REALS)
        return self.rng.uniform(-1, 1) * 10.0 ** self.rng.randint(-20, 300)


# -- JSON values ----------------------------------------------------------------------------------


def gen_scalar(c):
    kind = c.integer(0, 4)
    if kind == 0:
        return c.choice([None, True, False])
    if kind == 1:
        return c.integer(-(1 << 70), 1 << 70)
    if kind == 2:
        return c.real()
    return c.text(12)


def gen_json(c, depth: int = 0):
    kind = c.integer(0, 5) if depth < 3 else 0
    if kind <= 3:
        return gen_scalar(c)
    if kind == 4:
        return [gen_json(c, depth + 1) for _ in range(c.integer(0, 4))]
    return {c.text(8): gen_json(c, depth + 1) for _ in range(c.integer(0, 4))}


# -- argument values, aimed at the parsers ---------------------------------------------------------

_EDGE_NUMBERS = [
    "0", "1", "-1", "+0", "2147483647", "2147483648", "-2147483648", "-2147483649",
    "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
    "1.9", "1e3", "1e999", "-1e999", "1e-999", "0x10", "0x1p3", "0x1p99999", ".5", "5.", "inf",
    "-inf", "nan", "nan(abc)", "infinity", "  12abc", "\t7", "", " ", "-", "+", "1_000", "\u0661",
    "9" * 30, "9" * 5000, "0" * 40 + "1", "1e4932", "1e4933", "1e-5000", "1e999999",
]
_EDGE_SIZES = [
    "1.5M 32K 512", "8K", "1.5MK", "+-123M", "1kb", "", "10%", "101%", "-1%", "10abc%", "%", "512",
    "-5", "1G", "0x10M", "0x1p99999k", "1e999999", "1e999999M", "1e4000", "1e4933", "1e-5000",
    "nan", "infM", "1_0M", "\u0661M", "1.5m2k3", "t", "0e99999999", "1e-99999999",
]
_EDGE_BOOLS = ["true", "True", "1", "false", "False", "0", "TRUE", "yes", "1.0", "", " true"]
_EDGE_RESOURCES = ["io", "memory", "cpu", "", "IO", "memory "]
_EDGE_CGROUPS = ["/", "", ",", "system.slice", "system.slice/*", "workload.slice/*,system.slice",
                 "a//b/", "*/*/*", "{a,b}", "[", "a[b", "**"]
_CGROUP_ALPHABET = "/,*?[]{}.-_abcAZ09 "
_NUMERIC_ALPHABET = "0123456789+-.eExXpP inf%kmgtKMGT"
_SIZE_ALPHABET = "0123456789.+-kmgtKMGT% xe"


def gen_numeric_text(c) -> str:
    kind = c.integer(0, 3)
    if kind == 0:
        return c.choice(_EDGE_NUMBERS)
    if kind == 1:
        return str(c.integer(-(1 << 66), 1 << 66))
    if kind == 2:
        return repr(c.real())
    return c.text(14, _NUMERIC_ALPHABET)


def gen_size_text(c) -> str:
    kind = c.integer(0, 2)
    if kind == 0:
        return c.choice(_EDGE_SIZES)
    if kind == 1:
        unit = c.choice(["", "k", "M", "G", "T", "%", "K 1", "kb"])
        return f"{c.integer(-(1 << 40), 1 << 40)}{unit}"
    return c.text(14, _SIZE_ALPHABET)


def gen_cgroup_text(c) -> str:
    return c.choice(_EDGE_CGROUPS) if c.integer(0, 1) else c.text(24, _CGROUP_ALPHABET)


def gen_bool_text(c) -> str:
    return c.choice(_EDGE_BOOLS)


def gen_resource_text(c) -> str:
    return c.choice(_EDGE_RESOURCES)


_PARSER_GENERATORS = {
    parsing.int_parse: gen_numeric_text,
    parsing.int64_parse: gen_numeric_text,
    parsing.uint64_parse: gen_numeric_text,
    parsing.non_negative_int: gen_numeric_text,
    parsing.double_parse: gen_numeric_text,
    parsing.float_parse: gen_numeric_text,
    parsing.milliseconds: gen_numeric_text,
    parsing.bool_parse: gen_bool_text,
    parsing.resource: gen_resource_text,
    parsing.cgroup_patterns: gen_cgroup_text,
    CgroupPatterns.parse: gen_cgroup_text,
    parsing.parse_size: gen_size_text,
}
_ANY_ARG = (gen_numeric_text, gen_size_text, gen_cgroup_text, gen_bool_text, gen_resource_text,
            lambda c: c.text(16))


def gen_any_arg_text(c) -> str:
    return c.choice(_ANY_ARG)(c)


def _valid_int(c):
    return c.choice([str(c.integer(0, 120)), c.integer(0, 120)])


def _valid_real(c):
    return c.choice([f"{c.integer(0, 100)}.{c.integer(0, 99)}", str(c.integer(0, 100)),
                     c.integer(0, 400) / 4])


_VALID_CGROUPS = ["/", "system.slice", "workload.slice/*", "system.slice/*,workload.slice/*", "*/*",
                  "workload.slice/workload-*.slice/*"]
_VALID_ANY = ["1G", "512M", "10%", "100", "5", "0.5", "true", "io", "memory", "/", "system.slice/*",
              "/bin/true", "foo.service", "80", "1.25"]
_VALID_GENERATORS = {
    parsing.int_parse: _valid_int,
    parsing.int64_parse: _valid_int,
    parsing.uint64_parse: _valid_int,
    parsing.non_negative_int: _valid_int,
    parsing.milliseconds: _valid_int,
    parsing.double_parse: _valid_real,
    parsing.float_parse: _valid_real,
    parsing.bool_parse: lambda c: c.choice(["true", "false", "True", "False", "1", "0", True,
                                            False]),
    parsing.resource: lambda c: c.choice(["io", "memory"]),
    parsing.cgroup_patterns: lambda c: c.choice(_VALID_CGROUPS),
    CgroupPatterns.parse: lambda c: c.choice(_VALID_CGROUPS),
    parsing.parse_size: lambda c: c.choice(["1G", "512M", "1.5M 32K", "0", "4096"]),
}


def deviate(c, one_in: int) -> bool:
    """Now and then (one time in ``one_in``) spend one of the document's deviations: a value
    or shape the config does not allow. A document gets 0-3 of them (``gen_doc``), so most
    documents are valid but for a few places and reach the checks deep in the compiler."""
    if c.budget <= 0 or c.integer(0, one_in - 1) != 0:
        return False
    c.budget -= 1
    return True


def gen_arg_value(c, parser, name: str = ""):
    """A JSON value for an argument: valid for its parser, or (a deviation) an edge value aimed
    at the parser, any argument text, a coerced JSON scalar or a JSON type the parser refuses."""
    if not deviate(c, 8):
        if name in _VALID_BY_NAME:
            return _VALID_BY_NAME[name]
        valid = _VALID_GENERATORS.get(parser)
        return valid(c) if valid else c.choice(_VALID_ANY)
    kind = c.integer(0, 19)
    if kind <= 11:
        return _PARSER_GENERATORS.get(parser, gen_any_arg_text)(c)
    if kind <= 14:
        return gen_any_arg_text(c)
    if kind <= 16:
        return c.choice([True, False, c.integer(-(1 << 65), 1 << 65)])
    if kind <= 18:
        return c.real()
    return gen_json(c)  # null, arrays and objects are type errors (reference §2.2)


# -- documents ------------------------------------------------------------------------------------


# Plugins that build their argument list in init (memory_above: threshold is a size or a
# percentage of MemTotal, read at init) declare none on the class; these are theirs.
_size_or_percent = parsing.parse_size  # aimed at the size grammar; "10%" is in the valid pool
_INIT_ARGS = {
    "memory_above": (
        Arg("cgroup", parsing.cgroup_patterns, required=True),
        Arg("threshold", _size_or_percent, required=True),
        Arg("threshold_anon", _size_or_percent),
        Arg("duration", parsing.int_parse, required=True),
        Arg("debug", parsing.bool_parse),
        Arg("meminfo_location", str),
    ),
}
# Arguments whose only valid value is a fixed text.
_VALID_BY_NAME = {"confirm": "crash-the-host"}


def plugin_args(registry, name):
    """The argument spec of a plugin: its class's ARGS, or ``_INIT_ARGS``; None = anything."""
    if name in _INIT_ARGS:
        return _INIT_ARGS[name]
    return getattr(registry.get(name), "ARGS", None)


def gen_plugin(c, registry):
    names = sorted(registry)
    name = c.choice(names) if names and not deviate(c, 25) else c.text(10)
    spec = plugin_args(registry, name)
    args = {}
    for a in spec or ():
        needed = a.required or a.name in _VALID_BY_NAME
        if (needed and not deviate(c, 20)) or (not needed and c.integer(0, 1)):
            args[a.name] = gen_arg_value(c, a.parser, a.name)
    if spec is None or deviate(c, 15):
        for _ in range(c.integer(1, 3)):
            name = c.choice(["id", "cgroup", "threshold", "x", "my-arg", ""])
            args[name] = gen_arg_value(c, None)
    obj = {"name": name}
    if args or c.integer(0, 1):
        obj["args"] = args
    if deviate(c, 40):
        obj["name"] = gen_json(c)
    if deviate(c, 40):
        obj["args"] = gen_json(c)
    return gen_json(c) if deviate(c, 40) else obj


def gen_group(c, registry):
    group = []
    if not deviate(c, 20):
        group.append(c.choice(["g", "mem", "io pressure"]) if c.integer(0, 3) else c.text(6))
    group += [gen_plugin(c, registry) for _ in range(0 if deviate(c, 20) else c.integer(1, 3))]
    return gen_json(c) if deviate(c, 40) else group


def _collection(c, items):
    """``detectors``/``actions``/``rulesets`` are arrays, or objects iterated by sorted key."""
    if c.integer(0, 9) == 0:
        return {str(i) + c.text(2): x for i, x in enumerate(items)}
    return items


def gen_ruleset(c, names=("r", "mem", "io")):
    rs = {}
    if not deviate(c, 20):
        rs["name"] = c.choice(list(names)) if c.integer(0, 3) else c.text(6) or "x"
    elif c.integer(0, 1):
        rs["name"] = c.choice(["", None, gen_json(c)])
    if c.integer(0, 3) == 0:
        flags = {}
        for key in ("detectors", "actions", "disable-on-drop-in"):
            if c.integer(0, 1):
                flags[key] = gen_json(c) if deviate(c, 10) else c.choice([True, False, 0, 1, None])
        rs["drop-in"] = gen_json(c) if deviate(c, 20) else flags
    if c.integer(0, 4) == 0:
        rs["silence-logs"] = c.choice(
            [",", "everything", "engine,", " Engine", gen_json(c)] if deviate(c, 5)
            else ["engine", "plugins", "engine,plugins", " engine , plugins ", ""])
    for key in ("post_action_delay", "prekill_hook_timeout"):
        if c.integer(0, 4) == 0:
            if deviate(c, 5):
                rs[key] = c.choice([gen_numeric_text(c), c.integer(-5, 5), c.real(), gen_json(c)])
            else:
                rs[key] = _valid_int(c)
    if not deviate(c, 20):
        count = 0 if deviate(c, 20) else c.integer(1, 2)
        rs["detectors"] = _collection(c, [gen_group(c, plugin.REGISTRY) for _ in range(count)])
    if not deviate(c, 20):
        count = 0 if deviate(c, 20) else c.integer(1, 2)
        rs["actions"] = _collection(c, [gen_plugin(c, plugin.REGISTRY) for _ in range(count)])
    if c.integer(0, 9) == 0:
        rs[c.choice(["cgroup", "xattr_filter", "unknown"])] = gen_json(c)  # ignored by 0.5.0
    return gen_json(c) if deviate(c, 40) else rs


def gen_doc(c, budget: int | None = None):
    """A config document with a budget of 0-3 deviations (most of them 0 or 1)."""
    c.budget = c.choice([0, 0, 1, 1, 1, 2, 3]) if budget is None else budget
    if deviate(c, 40):
        return gen_json(c)
    doc = {}
    if not deviate(c, 30):
        doc["rulesets"] = _collection(c, [gen_ruleset(c) for _ in range(c.integer(1, 3))])
    if c.integer(0, 4) == 0:
        doc["prekill_hooks"] = _collection(
            c, [gen_plugin(c, plugin.PREKILL_HOOK_REGISTRY) for _ in range(c.integer(1, 2))])
    if c.integer(0, 9) == 0:
        doc[c.text(8)] = gen_json(c)  # unknown top-level keys are ignored
    return doc


# -- rendering documents as text ------------------------------------------------------------------

_NOISE = ["//c\n", "/* c */", " ", "\n", ","]


def render(c, doc) -> str:
    """Serialise ``doc`` in the jsoncpp dialect: indentation, comments, trailing commas, garbage."""
    text = json.dumps(doc, indent=c.choice([None, 1, 2]), ensure_ascii=bool(c.integer(0, 1)))
    for _ in range(c.integer(0, 3)):
        pos = c.integer(0, max(0, len(text) - 1))
        noise = c.choice(_NOISE)
        # Only after a structural character, so strings stay intact; a comma only after a comma
        # would be a syntax error, so a trailing comma goes before a closing bracket instead.
        if text[pos:pos + 1] in ("{", "[", ",", ":") and noise != ",":
            text = text[: pos + 1] + noise + text[pos + 1 :]
        elif (noise == "," and text[pos:pos + 1] in ("}", "]") and pos > 0
              and text[pos - 1] not in "{[,"):
            text = text[:pos] + "," + text[pos:]
    if c.integer(0, 9) == 0:
        text += c.choice([" trailing garbage", "}", "// end", "\n\n"])
    return text


_EDIT_PIECES = list('{}[],:"\\/*-0.eE ') + ["\\u", "\\ud800", "nul", "tru", "1e999", "/*", "//",
                                             "\x00", "\u00e9"]


def mutate_text(c, text: str) -> str:
    """A few character-level edits: near-miss syntax."""
    for _ in range(c.integer(1, 4)):
        pos = c.integer(0, len(text))
        op = c.integer(0, 4)
        piece = c.choice(_EDIT_PIECES)
        if op == 0:
            text = text[:pos] + piece + text[pos:]
        elif op == 1:
            text = text[:pos] + text[pos + 1 :]
        elif op == 2:
            text = text[:pos] + piece + text[pos + 1 :]
        elif op == 3:
            text = text[:pos]
        else:
            text = text[:pos] + text[pos : pos + 20] + text[pos:]
    return text


_TOKENS = ['{', '}', '[', ']', ',', ':', '"rulesets"', '"name"', '"detectors"', '"actions"',
           '"args"', '"drop-in"', '"r"', '"g"', '"continue"', '"stop"', 'true', 'false', 'null',
           '0', '-1', '1e999', '1.5', '"\\u00e9"', '"\\ud800"', '"\\x"', '//x\n', '/*', '*/', ' ',
           '\n', "'a'", '"', '\\', '-', '99999999999999999999999', "1" * 400, "9" * 5000,
           '"%s"' % ("a" * 40)]


def gen_raw_text(c) -> str:
    kind = c.integer(0, 2)
    if kind == 0:
        return c.text(200, _RAW_POOL) if isinstance(c, RandomChooser) else c.text(200)
    if kind == 1:
        return c.text(200, string.printable)
    return "".join(c.choice(_TOKENS) for _ in range(c.integer(0, 40)))


def gen_deep(c) -> str:
    depth = c.integer(0, 3000)
    opener = c.choice(["[", '{"a":'])
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * depth + c.choice(["", "1", "[]", "{}"]) + closer * depth


def gen_structured_text(c) -> str:
    return render(c, gen_doc(c))


def gen_mutated_text(c) -> str:
    return mutate_text(c, render(c, gen_doc(c)))


# -- properties -----------------------------------------------------------------------------------

_WRAPPED_INIT = re.compile(r"failed to init\(\): [A-Za-z_]*(Error|Exception|Exit|Interrupt)\b")
_SEGMENT = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def path_segments(path: str) -> list:
    """``$.a[0]["b-c"]`` -> ``["a", 0, "b-c"]``; raises FuzzFailure if it is not such a path."""
    if not path.startswith("$"):
        raise FuzzFailure(f"JSON path {path!r} does not start with $")
    out, pos = [], 1
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if not m:
            raise FuzzFailure(f"JSON path {path!r} is malformed at {pos}")
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append(re.sub(r"\\(.)", r"\1", m.group(3)))
        pos = m.end()
    return out


_MISSING = object()


def resolve(doc, segments):
    node = doc
    for seg in segments:
        if isinstance(seg, int) and isinstance(node, list) and seg < len(node):
            node = node[seg]
        elif isinstance(seg, str) and isinstance(node, dict) and seg in node:
            node = node[seg]
        else:
            return _MISSING
    return node


def _points_into(doc, segments) -> bool:
    """The path names a node of ``doc``, or at most two keys to add below one (a missing
    ``name`` or ``args``, or ``args.confirm`` where ``args`` is absent or not an object)."""
    if resolve(doc, segments) is not _MISSING:
        return True
    for cut in range(len(segments) - 1, max(-1, len(segments) - 3), -1):
        if resolve(doc, segments[:cut]) is not _MISSING:
            return all(isinstance(seg, str) for seg in segments[cut:])
    return False


def check_error_is_clear(e: ConfigError, file: str, doc=_MISSING) -> None:
    if e.file != file:
        raise FuzzFailure(f"error names file {e.file!r}, not {file!r}")
    if not isinstance(e.reason, str) or not e.reason.strip():
        raise FuzzFailure(f"error without a reason: {e!r}")
    if str(e) != f"{file}: at {e.json_path}: {e.reason}":
        raise FuzzFailure(f"error text {str(e)!r} is not '<file>: at <path>: <reason>'")
    segments = path_segments(e.json_path)
    if _WRAPPED_INIT.search(e.reason):
        raise FuzzFailure(f"a plugin's init raised instead of rejecting its arguments: {e.reason}")
    if doc is not _MISSING:
        if not _points_into(doc, segments):
            raise FuzzFailure(f"error path {e.json_path} does not point into the document")


_cgroup_fs: list[str] = []


def construction_context() -> PluginConstructionContext:
    """Dry, with an empty directory as the cgroup file system (made once, removed at exit)."""
    if not _cgroup_fs:
        _cgroup_fs.append(tempfile.mkdtemp(prefix="pyoomd-fuzz-cgfs-"))
        atexit.register(shutil.rmtree, _cgroup_fs[0], True)
    return PluginConstructionContext(cgroup_fs=_cgroup_fs[0], stats=Stats(), force_dry=True,
                                     kmsg_path="/dev/null")


class Hang(FuzzFailure):
    """One input took longer than the guard allows."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise ``Hang`` in the main thread if the block runs longer than ``seconds`` (a hang
    guard for inputs of a few KiB, not a speed check)."""

    def expired(signum, frame):
        raise Hang(f"no result after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _clock() -> float:
    return 1000.0


def check_config_text(text: str, file: str = FILE) -> str:
    """The config property for one text. Returns the outcome: ok, syntax, type, compile."""
    try:
        doc = jsonc.loads(text)
    except jsonc.JsoncError as e:
        try:
            parse_string(text, file)
        except ConfigError as ce:
            check_error_is_clear(ce, file)
            if (ce.json_path, ce.reason) != (e.json_path, e.reason):
                raise FuzzFailure(
                    f"parse_string reported {ce} but the JSON error was {e}") from None
            return "syntax"
        raise FuzzFailure("jsonc rejected the text but parse_string accepted it") from None
    try:
        root = parse_string(text, file)
    except ConfigError as e:
        check_error_is_clear(e, file, doc)
        return "type"
    try:
        engine = compile_config(root, construction_context(), _clock)
    except ConfigError as e:
        check_error_is_clear(e, file, doc)
        return "compile"
    if not isinstance(engine, Engine):
        raise FuzzFailure(f"compile_config returned {type(engine).__name__}")
    return "ok"


def check_drop_in(base_text: str, dropin_text: str) -> str:
    """A drop-in over a base that compiles: a ``DropInUnit`` or a clear ``ConfigError``."""
    try:
        base = parse_string(base_text, "base.json")
        compile_config(base, construction_context(), _clock)
    except ConfigError:
        return "base-invalid"
    try:
        dropin = parse_string(dropin_text, "dropin.json")
    except ConfigError as e:
        check_error_is_clear(e, "dropin.json")
        return "dropin-parse"
    try:
        unit = Compiler(construction_context(), "dropin.json", _clock).compile_drop_in(base, dropin)
    except ConfigError as e:
        check_error_is_clear(e, "dropin.json", jsonc.loads(dropin_text))
        return "dropin-compile"
    if not isinstance(unit, DropInUnit):
        raise FuzzFailure(f"compile_drop_in returned {type(unit).__name__}")
    return "ok"


def _parse_size_or_percent(text: str, total: int = 16 << 30):
    return parsing.parse_size_or_percent(text, total)


VALUE_PARSERS = {
    "int_parse": (parsing.int_parse, int),
    "int64_parse": (parsing.int64_parse, int),
    "uint64_parse": (parsing.uint64_parse, int),
    "non_negative_int": (parsing.non_negative_int, int),
    "double_parse": (parsing.double_parse, float),
    "float_parse": (parsing.float_parse, float),
    "milliseconds": (parsing.milliseconds, int),
    "bool_parse": (parsing.bool_parse, bool),
    "resource": (parsing.resource, str),
    "cgroup_patterns": (parsing.cgroup_patterns, parsing.CgroupPatterns),
    "parse_size": (parsing.parse_size, int),
    "parse_size_or_percent": (_parse_size_or_percent, int),
}


def check_value_parser(name: str, text: str) -> str:
    """A value parser returns its type (int64 range for integers) or raises ValueError."""
    fn, typ = VALUE_PARSERS[name]
    try:
        value = fn(text)
    except ValueError as e:
        if not str(e):
            raise FuzzFailure(f"{name}({text!r}) raised ValueError without a reason") from None
        return "rejected"
    if not isinstance(value, typ):
        raise FuzzFailure(f"{name}({text!r}) returned {type(value).__name__}, not {typ.__name__}")
    if typ is int and not parsing.INT64_MIN <= value <= parsing.INT64_MAX:
        raise FuzzFailure(f"{name}({text!r}) = {value} is outside int64")
    if typ is float and name == "float_parse" and math.isfinite(value) and abs(value) > 3.5e38:
        raise FuzzFailure(f"{name}({text!r}) = {value} is outside float32")
    return "accepted"


_VALUE_TEXT = (gen_numeric_text, gen_size_text, gen_cgroup_text, gen_bool_text,
               lambda c: c.text(30))


def gen_value_case(c) -> tuple[str, str]:
    return c.choice(sorted(VALUE_PARSERS)), c.choice(_VALUE_TEXT)(c)


# -- targets: what a run fuzzes, each a generator of arguments and a property --------------------


def _one(gen):
    return lambda c: (gen(c),)


TARGETS = {
    "structured": (_one(gen_structured_text), check_config_text),
    "mutated": (_one(gen_mutated_text), check_config_text),
    "raw": (_one(gen_raw_text), check_config_text),
    "deep": (_one(gen_deep), check_config_text),
    "dropin": (lambda c: (render(c, gen_doc(c, budget=0)), gen_structured_text(c)), check_drop_in),
    "values": (gen_value_case, check_value_parser),
}


def run_target(name: str, chooser) -> str:
    gen, check = TARGETS[name]
    return check(*gen(chooser))
