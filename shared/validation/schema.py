"""Webhook body schemas: read from ``shared/schemas/webhooks/*.json`` once, walked fast.

``types.json`` declares the object types (see its description for the sections and the type
language); each ``<topic>.json`` names its body type and lists API versions, each with the
changes (``patch``) that version made. A payload is checked against the newest version not
newer than its ``api_version``; a version newer than the topic's ``checked_through`` (or not a
``YYYY-MM`` version at all, such as ``unstable``) uses the newest schema and is reported, so
Shopify's additions never stop the load.

``walk`` validates and normalises in one pass: it returns only the fields the load reads,
converted (ids → int, money → Decimal, timestamps → UTC datetime), and collects rejection
reasons, unknown field paths and type changes of fields the load does not read. It is the
reference; ``compile_walker`` generates a straight-line Python function per object type that
does exactly the same (property-tested) in about 60% of the time, which the load uses.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.validation.values import (
    CONVERTERS,
    EMPTY_AS_NULL,
    INT64_MAX,
    INT64_MIN,
    MONEY_TEXT,
    SHALLOW_TYPES,
    BadValue,
    describe,
    json_type,
)

Walker = Callable[[dict[str, Any], str, str, "Issues"], dict[str, Any]]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "webhooks"
_API_VERSION = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_MISSING: Any = object()
MAX_REASONS = 100

EXPECTED_TEXT = {
    "id": "integer id",
    "int": "integer",
    "uint": "integer >= 0",
    "money": "money (decimal string)",
    "number": "number",
    "timestamp": "ISO 8601 timestamp with UTC offset",
    "string": "string",
    "bool": "boolean",
    "object": "object",
    "array": "array",
    "any": "any value",
}


class SchemaError(ValueError):
    """A schema file is malformed (a bug in the repository, caught by the unit tests)."""


@dataclass(slots=True)
class Field:
    """One declared field (or an array's element, with ``name`` '')."""

    name: str
    required: bool
    nullable: bool
    kind: str  # a scalar kind, "record" (named type) or "list"
    expected: str
    convert: Callable[[Any], Any] | None = None
    record: ObjectSpec | None = None
    item: Field | None = None
    empty_is_null: bool = False


@dataclass(slots=True)
class ObjectSpec:
    """A compiled object type: loaded fields, shallow-checked known fields, all names."""

    name: str
    loaded: tuple[Field, ...] = ()
    known: tuple[tuple[str, frozenset[type], str], ...] = ()
    names: frozenset[str] = frozenset()
    keep_raw: bool = False
    walker: Walker | None = None


@dataclass(slots=True)
class Issues:
    """What a walk found: rejection reasons, unknown fields, type changes of unloaded fields."""

    reasons: list[tuple[str, str, str]] = field(default_factory=list)  # (path, expected, got)
    unknown: list[str] = field(default_factory=list)  # drift paths, e.g. line_items[].new_field
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # (drift path, expected, got)
    unlisted: int = 0  # reasons beyond MAX_REASONS, counted only

    def reject(self, path: str, expected: str, got: str) -> None:
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append((path or "(body)", expected, got))
        else:
            self.unlisted += 1


@dataclass(frozen=True, slots=True)
class TopicSchema:
    """The compiled versions of one topic's body schema, oldest first."""

    topic: str
    body: str
    checked_through: str
    tables: tuple[str, ...]
    versions: tuple[tuple[str, ObjectSpec], ...]

    def resolve(self, api_version: str | None) -> tuple[str, ObjectSpec, bool]:
        """(schema version used, its spec, whether ``api_version`` is one we checked)."""
        if api_version is None or not _API_VERSION.match(api_version):
            version, spec = self.versions[-1]
            return version, spec, False
        chosen = self.versions[0]
        for candidate in self.versions:
            if candidate[0] <= api_version:
                chosen = candidate
        known = self.versions[0][0] <= api_version <= self.checked_through
        return chosen[0], chosen[1], known


def _parse_type(
    text: str, name: str, required: bool, types: dict[str, Any], memo: dict[str, ObjectSpec]
) -> Field:
    nullable = text.endswith("?")
    base = text[:-1] if nullable else text
    if base.startswith("[") and base.endswith("]"):
        item = _parse_type(base[1:-1], "", True, types, memo)
        return Field(name, required, nullable or not required, "list", f"array of {item.expected}", item=item)
    if base in CONVERTERS:
        return Field(
            name,
            required,
            nullable or not required,
            base,
            EXPECTED_TEXT[base],
            convert=CONVERTERS[base],
            empty_is_null=not required and base in EMPTY_AS_NULL,
        )
    if base in types:
        record = _compile(base, types, memo)
        return Field(name, required, nullable or not required, "record", f"{base} object", record=record)
    raise SchemaError(f"field {name!r}: unknown type {text!r} (not a scalar kind nor a type in types.json)")


def _shallow(text: str, name: str, types: dict[str, Any]) -> frozenset[type] | None:
    """Python classes a known field may have; None for ``any``."""
    result: frozenset[type] = frozenset()
    for part in text.rstrip("?").split("|"):
        if part == "any":
            return None
        if part.startswith("["):
            result |= {list}
        elif part in SHALLOW_TYPES:
            result |= SHALLOW_TYPES[part]
        elif part in types:
            result |= {dict}
        else:
            raise SchemaError(f"known field {name!r}: unknown type {text!r}")
    return result


def _compile(name: str, types: dict[str, Any], memo: dict[str, ObjectSpec]) -> ObjectSpec:
    if name in memo:
        return memo[name]
    spec = ObjectSpec(name)
    memo[name] = spec  # before the fields: a type may refer to itself
    decl = types[name]
    unknown_sections = set(decl) - {"required", "optional", "known", "keep_raw", "also_known", "description"}
    if unknown_sections:
        raise SchemaError(f"type {name}: unknown sections {sorted(unknown_sections)}")
    loaded = [_parse_type(t, f, True, types, memo) for f, t in decl.get("required", {}).items()]
    loaded += [_parse_type(t, f, False, types, memo) for f, t in decl.get("optional", {}).items()]
    known_decl: dict[str, str] = {}
    for other in decl.get("also_known", []):
        for section in ("required", "optional", "known"):
            known_decl.update(types[other].get(section, {}))
    known_decl.update(decl.get("known", {}))
    loaded_names = {f.name for f in loaded}
    known: list[tuple[str, frozenset[type], str]] = []
    for field_name, text in known_decl.items():
        if field_name in loaded_names:
            continue
        shallow = _shallow(text, field_name, types)
        if shallow is not None:
            known.append((field_name, shallow, text.rstrip("?")))
    spec.loaded = tuple(loaded)
    spec.known = tuple(known)
    spec.names = frozenset(loaded_names | set(known_decl))
    spec.keep_raw = bool(decl.get("keep_raw", False))
    return spec


def _apply_patch(types: dict[str, Any], patch: dict[str, Any], where: str) -> None:
    for type_name, change in patch.items():
        if type_name not in types:
            raise SchemaError(f"{where}: patch names unknown type {type_name!r}")
        decl = types[type_name]
        for field_name in change.get("drop", []):
            found = False
            for section in ("required", "optional", "known"):
                found |= decl.get(section, {}).pop(field_name, None) is not None
            if not found:
                raise SchemaError(f"{where}: {type_name}.{field_name} to drop is not declared")
        decl.setdefault("known", {}).update(change.get("add_known", {}))
        decl.setdefault("optional", {}).update(change.get("add_optional", {}))


def load_topic(path: Path, base_types: dict[str, Any]) -> TopicSchema:
    """Compile one topic file against ``types.json``, version by version."""
    doc = json.loads(path.read_text())
    types = copy.deepcopy(base_types)
    versions: list[tuple[str, ObjectSpec]] = []
    previous = ""
    for entry in doc["versions"]:
        version = entry["api_version"]
        if not _API_VERSION.match(version) or version <= previous:
            raise SchemaError(f"{path.name}: versions must be YYYY-MM in increasing order ({version!r})")
        previous = version
        _apply_patch(types, entry.get("patch", {}), f"{path.name} {version}")
        if doc["body"] not in types:
            raise SchemaError(f"{path.name}: body type {doc['body']!r} is not in types.json")
        versions.append((version, _compile(doc["body"], types, {})))
    if not _API_VERSION.match(doc["checked_through"]) or doc["checked_through"] < previous:
        raise SchemaError(f"{path.name}: checked_through must be a YYYY-MM version >= the newest entry")
    return TopicSchema(
        doc["topic"], doc["body"], doc["checked_through"], tuple(doc["tables"]), tuple(versions)
    )


@functools.cache
def topic_schemas(directory: Path = SCHEMA_DIR) -> dict[str, TopicSchema]:
    """Every topic's compiled schema, keyed by Shopify topic (read once per process)."""
    base = json.loads((directory / "types.json").read_text())["types"]
    schemas: dict[str, TopicSchema] = {}
    for path in sorted(directory.glob("*.json")):
        if path.name == "types.json":
            continue
        schema = load_topic(path, base)
        if path.stem != schema.topic.replace("/", "_"):
            raise SchemaError(f"{path.name} declares topic {schema.topic!r}; name the file after it")
        schemas[schema.topic] = schema
    return schemas


def walk(obj: dict[str, Any], spec: ObjectSpec, path: str, drift: str, issues: Issues) -> dict[str, Any]:
    """Validate ``obj`` against ``spec``; return its loaded fields, normalised.

    ``path`` prefixes reasons (``line_items[2].``), ``drift`` prefixes unknown-field paths
    (``line_items[].``). Never raises on any JSON input.
    """
    out: dict[str, Any] = {}
    extra = obj.keys() - spec.names
    if extra:
        issues.unknown.extend(drift + key for key in sorted(extra))
    for f in spec.loaded:
        value = obj.get(f.name, _MISSING)
        if value is None or value is _MISSING:
            if f.required and (value is _MISSING or not f.nullable):
                issues.reject(path + f.name, f.expected, "missing" if value is _MISSING else "null")
            continue
        converted = _convert(f, value, path + f.name, drift + f.name, issues)
        if converted is not None:
            out[f.name] = converted
    for name, shallow, expected in spec.known:
        value = obj.get(name)
        if value is not None and value.__class__ not in shallow:
            issues.changed.append((drift + name, expected, json_type(value)))
    if spec.keep_raw:
        out["_raw"] = obj
    return out


def _convert(f: Field, value: Any, path: str, drift: str, issues: Issues) -> Any:
    if f.convert is not None:
        try:
            return f.convert(value)
        except BadValue as bad:
            if f.empty_is_null and value == "":
                return None
            issues.reject(path, bad.expected, bad.got)
            return None
    if f.record is not None:
        if type(value) is not dict:
            issues.reject(path, f.expected, describe(value))
            return None
        return walk(value, f.record, path + ".", drift + ".", issues)
    if type(value) is not list:
        issues.reject(path, f.expected, describe(value))
        return None
    item = f.item
    if item is None:  # a list field's spec always names its item type; guard a malformed schema
        raise TypeError(f"schema field {path!r} is a list without an item type")
    result: list[Any] = []
    item_drift = drift + "[]"
    for index, element in enumerate(value):
        converted = (
            _convert(item, element, f"{path}[{index}]", item_drift, issues) if element is not None else None
        )
        if converted is None:
            if element is None:
                issues.reject(f"{path}[{index}]", item.expected, "null")
            continue
        result.append(converted)
    return result


def walker_of(spec: ObjectSpec) -> Walker:
    """The compiled walker of ``spec``, generated on first use (a few ms per topic version).

    Lazy so that a cold start pays only for the topics it sees; two threads racing here both
    compile and one result wins, which is harmless.
    """
    if spec.walker is None:
        spec.walker = compile_walker(spec)
    return spec.walker


# --- Compiled walkers -------------------------------------------------------------------------
# The generated code follows ``walk``/``_convert`` line by line, with the common success case
# of each kind inlined; every failure and every rarer kind goes through ``_convert`` itself, so
# reasons and values are identical (tests/unit/test_validation_schema.py checks it on random input).

_FAST: dict[str, tuple[str, str]] = {
    "id": ("v.__class__ is int and 0 < v <= INT64_MAX", "v"),
    "int": ("v.__class__ is int and INT64_MIN <= v <= INT64_MAX", "v"),
    "uint": ("v.__class__ is int and 0 <= v <= INT64_MAX", "v"),
    "money": ("v.__class__ is str and MONEY(v) is not None", "Decimal(v)"),
    "string": ("v.__class__ is str", "v"),
    "bool": ("v is True or v is False", "v"),
}


def compile_walker(spec: ObjectSpec) -> Walker:
    """A generated function equivalent to ``walk(obj, spec, ...)`` (and its nested types)."""
    from decimal import Decimal

    namespace: dict[str, Any] = {
        "MISSING": _MISSING,
        "INT64_MAX": INT64_MAX,
        "INT64_MIN": INT64_MIN,
        "MONEY": MONEY_TEXT.fullmatch,
        "Decimal": Decimal,
        "convert": _convert,
        "describe": describe,
        "json_type": json_type,
    }
    names: dict[int, str] = {}
    sources: list[str] = []

    def constant(value: Any) -> str:
        name = f"C{len(namespace)}"
        namespace[name] = value
        return name

    def emit(obj: ObjectSpec) -> str:
        if id(obj) in names:
            return names[id(obj)]
        fname = f"walk_{obj.name}_{len(names)}"
        names[id(obj)] = fname
        lines = [
            f"def {fname}(o, path, drift, issues):",
            "    out = {}",
            f"    if not {constant(obj.names)}.issuperset(o):",
            f"        issues.unknown.extend([drift + k for k in sorted(o.keys() - {constant(obj.names)})])",
        ]
        for f in obj.loaded:
            n = repr(f.name)
            # Branches in order of likelihood: the right type, then absent or null, then the rest.
            branches: list[tuple[str, list[str]]] = []
            if f.record is not None:
                nested = repr(f.name + ".")
                call = f"{emit(f.record)}(v, path + {nested}, drift + {nested}, issues)"
                branches.append(("v.__class__ is dict", [f"out[{n}] = {call}"]))
            elif f.kind == "list" and f.item is not None and f.item.record is not None:
                element = f"{emit(f.item.record)}(e, f'{{p}}[{{i}}].', d, issues)"
                got = "'null' if e is None else describe(e)"
                body = [
                    "items = []",
                    f"p = path + {n}",
                    f"d = drift + {f.name + '[].'!r}",
                    "for i, e in enumerate(v):",
                    "    if e.__class__ is dict:",
                    f"        items.append({element})",
                    "    else:",
                    f"        issues.reject(f'{{p}}[{{i}}]', {f.item.expected!r}, {got})",
                    f"out[{n}] = items",
                ]
                branches.append(("v.__class__ is list", body))
            elif f.kind in _FAST:
                condition, expression = _FAST[f.kind]
                branches.append((condition, [f"out[{n}] = {expression}"]))
            if f.required and f.nullable:
                branches.append(("v is MISSING", [f"issues.reject(path + {n}, {f.expected!r}, 'missing')"]))
                branches.append(("v is None", ["pass"]))
            elif f.required:
                got = "'missing' if v is MISSING else 'null'"
                branches.append(
                    ("v is None or v is MISSING", [f"issues.reject(path + {n}, {f.expected!r}, {got})"])
                )
            else:
                branches.append(("v is None", ["pass"]))
            lines.append(f"    v = o.get({n}, MISSING)" if f.required else f"    v = o.get({n})")
            for index, (condition, body) in enumerate(branches):
                lines.append(f"    {'elif' if index else 'if'} {condition}:")
                lines += [f"        {line}" for line in body]
            lines += [
                "    else:",
                f"        r = convert({constant(f)}, v, path + {n}, drift + {n}, issues)",
                "        if r is not None:",
                f"            out[{n}] = r",
            ]
        for name, shallow, expected in obj.known:
            lines += [
                f"    v = o.get({name!r})",
                f"    if v is not None and v.__class__ not in {constant(shallow)}:",
                f"        issues.changed.append((drift + {name!r}, {expected!r}, json_type(v)))",
            ]
        if obj.keep_raw:
            lines.append("    out['_raw'] = o")
        lines.append("    return out")
        sources.append("\n".join(lines))
        return fname

    root = emit(spec)
    code = compile("\n\n".join(sources), f"<shopml walker {spec.name}>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated above from the repository's schema files only
    walker: Walker = namespace[root]
    return walker
