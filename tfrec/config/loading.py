"""Reading a pipeline config: YAML (yaml.safe_load), `--set` overrides, the schema's checks."""
import os
from collections.abc import Iterable
from typing import Any

import pydantic
import yaml

from tfrec.config.errors import ConfigError, config_error
from tfrec.config.schema import PipelineConfig


def parse_config(data: object, where: str) -> PipelineConfig:
    """PipelineConfig from a mapping (e.g. parsed YAML), every key, type and rule checked;
    ConfigError naming `where` (the file) and the key otherwise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: 'config' must be a mapping, got {data!r}")
    try:
        return PipelineConfig.model_validate(data)
    except pydantic.ValidationError as err:
        raise config_error(err, where, PipelineConfig) from None


def load_config(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> PipelineConfig:
    """Read, parse (yaml.safe_load) and validate a pipeline config file.

    overrides: "dotted.key=value" strings applied on top of the file (value parsed as YAML),
      e.g. ("ranking.cross_fit_folds=0", "name=variant"); checked like the file's keys.
    """
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such config file") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    for override in overrides:
        data = _apply_override(data, override, str(path))
    return parse_config(data, str(path))


def _apply_override(data: Any, override: str, where: str) -> dict[str, Any]:
    """`data` (a mapping) with one "dotted.key=value" override set (a copy)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{where}: --set {override!r} must look like section.key=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: --set {override!r}: not a YAML value: {err}") from err
    data = dict(data or {})
    node, parts = data, key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else ({} if child is None else child)
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: --set {override!r}: '{part}' is not a section")
    node[parts[-1]] = value
    return data


def to_dict(config: pydantic.BaseModel) -> dict[str, Any]:
    """Plain dict (lists for tuples, every default filled in) of a config or one of its
    sections: what config.yaml, `tfrec config show` and the stage cache keys are made of."""
    return config.model_dump(mode="json")
