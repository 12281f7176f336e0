"""JSON -> IR with oomd's coercions (reference §2.2).

Where oomd aborts on a JSON type error (an object where a string is expected, a string where a
bool is expected), we raise ``ConfigError`` naming the file, the JSON path and the reason.
Argument values that are null, arrays or objects are rejected too; oomd silently drops them and
every later argument (docs/compat.md).
"""

from __future__ import annotations

from oomd.config import ir
from oomd.config.jsonc import JsoncError, index_path, key_path, loads
from oomd.errors import ConfigError


def _type_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def format_real(v: float) -> str:
    """jsoncpp's ``asString`` of a real: ``%.17g``, plus ``.0`` when it looks like an integer."""
    text = "%.17g" % v
    if "." not in text and "e" not in text and "n" not in text:
        text += ".0"
    return text


class _Walker:
    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, path: str, reason: str) -> ConfigError:
        return ConfigError(self.file, path, reason)

    def string(self, v, path: str) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return format_real(v)
        if v is None:
            return ""
        raise self.error(path, f"expected a string, number or bool, got {_type_name(v)}")

    def boolean(self, v, path: str) -> bool:
        if v is None:
            return False
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return v != 0
        raise self.error(path, f"expected a bool, got {_type_name(v)}")

    @staticmethod
    def iterate(v, path: str):
        """Arrays in order; objects by sorted key (jsoncpp's std::map); scalars: nothing."""
        if isinstance(v, list):
            return [(x, index_path(path, i)) for i, x in enumerate(v)]
        if isinstance(v, dict):
            return [(v[k], key_path(path, k)) for k in sorted(v)]
        return []

    def plugin(self, v, path: str) -> ir.Plugin:
        if not isinstance(v, dict):
            return ir.Plugin("", {}, path)
        name = v.get("name")
        name = name if isinstance(name, str) else ""
        args: dict[str, str] = {}
        raw = v.get("args")
        if isinstance(raw, dict):
            for k in sorted(raw):
                val = raw[k]
                arg_path = key_path(f"{path}.args", k)
                if val is None or isinstance(val, (list, dict)):
                    raise self.error(
                        arg_path, f"argument value must be a string, number or bool, not {_type_name(val)}"
                    )
                args[k] = self.string(val, arg_path)
        return ir.Plugin(name, args, path)

    def detector_group(self, v, path: str) -> ir.DetectorGroup:
        if not isinstance(v, list):
            return ir.DetectorGroup("", (), path)
        name = ""
        items = list(enumerate(v))
        if items and isinstance(items[0][1], str):
            name = items[0][1]
            items = items[1:]
        detectors = tuple(self.plugin(x, index_path(path, i)) for i, x in items)
        return ir.DetectorGroup(name, detectors, path)

    def ruleset(self, v, path: str) -> ir.Ruleset:
        if v is None:
            v = {}
        if not isinstance(v, dict):
            raise self.error(path, f"a ruleset must be an object, got {_type_name(v)}")
        dropin_path = key_path(path, "drop-in")
        d = v.get("drop-in")
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise self.error(dropin_path, f"drop-in must be an object, got {_type_name(d)}")
        dropin = ir.DropIn(
            detectors=self.boolean(d.get("detectors"), key_path(dropin_path, "detectors")),
            actions=self.boolean(d.get("actions"), key_path(dropin_path, "actions")),
            disable_on_drop_in=self.boolean(
                d.get("disable-on-drop-in"), key_path(dropin_path, "disable-on-drop-in")
            ),
        )
        return ir.Ruleset(
            name=self.string(v.get("name"), key_path(path, "name")),
            dropin=dropin,
            silence_logs=self.string(v.get("silence-logs"), key_path(path, "silence-logs")),
            post_action_delay=self.string(v.get("post_action_delay"), key_path(path, "post_action_delay")),
            prekill_hook_timeout=self.string(
                v.get("prekill_hook_timeout"), key_path(path, "prekill_hook_timeout")
            ),
            cgroup=self.string(v.get("cgroup"), key_path(path, "cgroup")),
            xattr_filter=self.string(v.get("xattr_filter"), key_path(path, "xattr_filter")),
            detector_groups=tuple(
                self.detector_group(x, p)
                for x, p in self.iterate(v.get("detectors"), key_path(path, "detectors"))
            ),
            actions=tuple(
                self.plugin(x, p) for x, p in self.iterate(v.get("actions"), key_path(path, "actions"))
            ),
            path=path,
        )

    def root(self, doc) -> ir.Root:
        if doc is None:
            return ir.Root(file=self.file)
        if not isinstance(doc, dict):
            raise self.error("$", f"the config must be a JSON object, got {_type_name(doc)}")
        rulesets = tuple(self.ruleset(x, p) for x, p in self.iterate(doc.get("rulesets"), "$.rulesets"))
        hooks = tuple(
            self.plugin(x, p) for x, p in self.iterate(doc.get("prekill_hooks"), "$.prekill_hooks")
        )
        return ir.Root(rulesets, hooks, self.file)


def parse_string(text: str, file: str = "<config>") -> ir.Root:
    try:
        doc = loads(text)
    except JsoncError as e:
        raise ConfigError(file, e.json_path, e.reason) from None
    return _Walker(file).root(doc)


def parse_file(path: str) -> ir.Root:
    """Read and parse a config file. Raises OSError if it cannot be read, ConfigError if bad."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, "$", f"the file is not UTF-8 (byte {e.start})") from None
    return parse_string(text, path)
