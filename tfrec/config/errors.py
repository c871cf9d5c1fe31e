"""ConfigError, and the translation of pydantic's ValidationError into one: the file, the full
dotted key, what is wrong and, for an unknown key, the nearest valid one."""
import difflib
import typing
from collections.abc import Sequence
from typing import Any

import pydantic
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

# Type errors: what the key must be (pydantic's error type -> words).
_TYPE_WORDS = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str",
               "tuple_type": "a list", "model_type": "a mapping"}
_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


class ConfigError(ValueError):
    """A configuration file is invalid."""


def _key(loc: Sequence[int | str]) -> str:
    """('ranking', 'model', 'hidden_units', 1) -> 'ranking.model.hidden_units[1]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(root: type[pydantic.BaseModel], loc: Sequence[int | str]
              ) -> type[pydantic.BaseModel] | None:
    """The section model class at `loc` (names of nested sections) below `root`, or None."""
    model = root
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)):
            return None
        model = annotation
    return model


def _field_at(root: type[pydantic.BaseModel], loc: Sequence[int | str]) -> FieldInfo | None:
    name = loc[-1] if loc else None
    model = _model_at(root, loc[:-1]) if isinstance(name, str) else None
    return model.model_fields.get(name) if model and isinstance(name, str) else None


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The Literal values of an annotation (through Optional), or ()."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return tuple(v for a in typing.get_args(annotation) for v in _choices(a))


def _bounds(field: FieldInfo | None, error: ErrorDetails) -> str:
    """'> 0' or 'in (0, 1]': the field's declared bounds, or the error's own (a list item's)."""
    declared = {op: getattr(m, op) for m in (field.metadata if field else ()) for op in _OPS
                if hasattr(m, op)}
    bounds = declared or error["ctx"]
    lower = next(((op, bounds[op]) for op in ("gt", "ge") if op in bounds), None)
    upper = next(((op, bounds[op]) for op in ("lt", "le") if op in bounds), None)
    if lower and upper:
        return (f"in {'(' if lower[0] == 'gt' else '['}{lower[1]}, "
                f"{upper[1]}{')' if upper[0] == 'lt' else ']'}")
    bound = lower or upper
    assert bound is not None, f"a bound error carries its bound: {error!r}"
    op, value = bound
    return f"{_OPS[op]} {value}"


def _message(error: ErrorDetails, root: type[pydantic.BaseModel]) -> str:
    """One error of a ValidationError as "'<key>' <what is wrong>"."""
    loc, kind, value = error["loc"], error["type"], error.get("input")
    key = _key(loc)
    if kind == "config_rule":  # a schema rule: its key is relative to the model at `loc`
        key = ".".join(p for p in (key, error["ctx"]["key"]) if p)
        return f"'{key}' {error['ctx']['message']}"
    if kind == "extra_forbidden":
        prefix = _key(loc[:-1]) + "." if loc[:-1] else ""
        section = _model_at(root, loc[:-1])
        assert section is not None, f"an unknown key is in a section: {loc}"
        valid = list(section.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean '{prefix}{close[0]}'?" if close else f"valid keys: {sorted(valid)}"
        return f"unknown key '{key}'; {hint}"
    if kind == "missing":
        return f"missing key '{key}'"
    if kind == "finite_number":
        return f"'{key}' must be a finite number, got {value!r}"
    if kind in _TYPE_WORDS:
        return f"'{key or 'config'}' must be {_TYPE_WORDS[kind]}, got {value!r}"
    if kind in _BOUND_ERRORS:
        return f"'{key}' must be {_bounds(_field_at(root, loc), error)}, got {value!r}"
    if kind == "literal_error":
        field = _field_at(root, loc)
        choices = _choices(field.annotation) if field else ()
        allowed = repr(choices) if choices else error["ctx"]["expected"]
        return f"'{key}' must be one of {allowed}, got {value!r}"
    if kind == "too_short":
        return f"'{key}' must be a non-empty list, got {value!r}"
    return f"'{key}' {error['msg'][:1].lower()}{error['msg'][1:]}, got {value!r}"


def config_error(err: pydantic.ValidationError, where: str, root: type[pydantic.BaseModel]
                 ) -> ConfigError:
    """ConfigError for pydantic.ValidationError `err` of a `root` model read from `where` (a file
    name): its first error, one line."""
    return ConfigError(f"{where}: {_message(err.errors()[0], root)}")
