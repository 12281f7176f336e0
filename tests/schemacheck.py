"""Validate a JSON value against a JSON Schema, for the keywords docs/lint.md uses.

A schema keyword this does not implement is an error, never silently passed over, so the
documented schema cannot drift into rules nobody checks. (jsonschema would do more, at the cost
of three more packages, one of them compiled; the lint schema needs a dozen keywords.)
"""

from __future__ import annotations

import re

_ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _same(a, b) -> bool:
    """JSON equality: true is not 1."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def errors(value, schema: dict, root: dict | None = None, where: str = "$") -> list[str]:
    """Every violation, as ``<where>: <what>``; empty when ``value`` is valid."""
    root = schema if root is None else root
    out: list[str] = []
    for key, rule in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "$ref":
            if not rule.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {rule!r}")
            out += errors(value, root["$defs"][rule[len("#/$defs/"):]], root, where)
        elif key == "type":
            kinds = rule if isinstance(rule, list) else [rule]
            if not any(_TYPES[k](value) for k in kinds):
                out.append(f"{where}: {value!r} is not of type {rule}")
        elif key == "const":
            if not _same(value, rule):
                out.append(f"{where}: {value!r} is not {rule!r}")
        elif key == "enum":
            if not any(_same(value, r) for r in rule):
                out.append(f"{where}: {value!r} is not one of {rule}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                out.append(f"{where}: {value!r} does not match {rule}")
        elif key == "minLength":
            if isinstance(value, str) and len(value) < rule:
                out.append(f"{where}: {value!r} is shorter than {rule}")
        elif key == "minimum":
            if _TYPES["number"](value) and value < rule:
                out.append(f"{where}: {value!r} is below {rule}")
        elif key == "required":
            if isinstance(value, dict):
                out += [f"{where}: {k!r} is missing" for k in rule if k not in value]
        elif key == "properties":
            if isinstance(value, dict):
                for k, sub in rule.items():
                    if k in value:
                        out += errors(value[k], sub, root, f"{where}.{k}")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                extra = [k for k in value if k not in schema.get("properties", {})]
                if rule is False:
                    out += [f"{where}: {k!r} is not allowed" for k in extra]
                elif isinstance(rule, dict):
                    for k in extra:
                        out += errors(value[k], rule, root, f"{where}.{k}")
        elif key == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    out += errors(item, rule, root, f"{where}[{i}]")
        else:
            raise ValueError(f"schema keyword {key!r} is not implemented here")
    return out
