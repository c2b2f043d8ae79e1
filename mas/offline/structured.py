"""JSON that fits a JSON Schema: for structured outputs (`output_config.format`) and tool inputs.

The offline model has no language model to fill a schema, so it fills it from "material":
the lines of what the role would have said anyway. Strings take the next line (or the topic
for fields named like one), lists of strings take several lines, numbers and booleans take
the schema's bounds or a plain default. A value the role already produced (the validator's
`issues` and `approved`) is kept where the schema has a field for it.

>>> fill({"type": "object", "properties": {"title": {"type": "string"}, "tags": {"type": "array",
...       "items": {"type": "string"}}}, "required": ["title", "tags"]}, ["A", "B", "C"], topic="T")
{'title': 'T', 'tags': ['A', 'B', 'C']}
>>> fill({"type": "object", "properties": {"lead": {"type": "string"}, "rest": {"type": "array",
...       "items": {"type": "string"}, "maxItems": 1}}}, ["A", "B", "C"])
{'lead': 'A', 'rest': ['B']}
"""

from __future__ import annotations

from typing import Any

_TOPIC_NAMES = {"topic", "title", "subject", "name", "query", "heading"}
# what the filler does for one schema, at most: a schema past either (a `$ref` to itself, `minItems: 10**9`,
# arrays in arrays) is refused in one line, never recursed into or looped over without end
MAX_DEPTH = 32  # levels of nesting
MAX_VALUES = 10_000  # values filled in all


class UnfillableSchema(ValueError):
    """A schema nested past MAX_DEPTH (or referring to itself), or asking for more than MAX_VALUES values."""


class _Material:
    def __init__(self, lines: list[str], topic: str):
        self.lines = [line for line in lines if line.strip()] or ["offline value"]
        self.topic = topic
        self.i = 0
        self.values = 0  # filled so far, against MAX_VALUES

    def next(self) -> str:
        line = self.lines[self.i % len(self.lines)]
        self.i += 1
        return line


def fill(schema: dict, material: list[str], topic: str = "", given: Any = None) -> Any:
    """A value valid for `schema`, taken from `given` where it fits and from `material` elsewhere."""
    return _value(schema, schema.get("$defs", {}) | schema.get("definitions", {}), _Material(material, topic),
                  "value", given)


def _value(schema: dict, defs: dict, m: _Material, name: str, given: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise UnfillableSchema(f"the schema nests deeper than {MAX_DEPTH} levels or refers to itself ($ref); "
                               f"the offline model fills schemas of up to {MAX_DEPTH} levels")
    m.values += 1
    if m.values > MAX_VALUES:
        raise UnfillableSchema(f"the schema asks for more than {MAX_VALUES:,} values; "
                               f"the offline model fills at most {MAX_VALUES:,}")
    depth += 1
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _value(options[0], defs, m, name, given, depth)
    if "allOf" in schema:
        return _value(schema["allOf"][0], defs, m, name, given, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return given if given in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        given = given if isinstance(given, dict) else {}
        props = schema.get("properties", {})
        return {key: _value(sub, defs, m, key, given.get(key), depth) for key, sub in props.items()}
    if kind == "array":
        items = schema.get("items", {})
        if isinstance(given, list):
            return [_value(items, defs, m, name, g, depth) for g in given][: schema.get("maxItems", len(given))]
        # a list of strings takes the rest of the material (all the research points, say)
        wanted = len(m.lines) - m.i if items.get("type") == "string" else 1
        count = min(max(schema.get("minItems", 0), wanted, 1), schema.get("maxItems", wanted))
        return [_value(items, defs, m, name, None, depth) for _ in range(count)]
    if kind == "string":
        if isinstance(given, str):
            return given
        return m.topic if name.lower() in _TOPIC_NAMES and m.topic else m.next()
    if kind == "boolean":
        return given if isinstance(given, bool) else True
    if kind in ("integer", "number"):
        if isinstance(given, (int, float)) and not isinstance(given, bool):
            return given
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value = max(low, 1 if high is None else (low + high) / 2)
        return int(value) if kind == "integer" else float(value)
    if kind == "null":
        return None
    return given if given is not None else m.next()
