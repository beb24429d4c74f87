"""Typed configs: the schema of every node (``schema``), the rule beside each field
(``fields``), and ``validate``, which checks a composed config against them before any data is
read. A wrong type, an unknown key, a value out of range: one ``ConfigError`` naming the key.

``validate`` is called by the command that owns the config (``train``, ``predict``,
``export``), once; ``settings`` turns a checked config into its typed object.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from maskcls.config.fields import Open, check_field, check_value, type_words
from maskcls.config.keys import check_given, check_signature_keys, target_nodes, unknown_key
from maskcls.config.schema import (
    BY_TARGET,
    ExportSettings,
    PredictData,
    PredictSettings,
    TrainConfig,
)
from maskcls.errors import ConfigError

__all__ = ["ExportSettings", "Open", "PredictData", "PredictSettings", "TrainConfig", "check_value",
           "settings", "validate"]

T = TypeVar("T")


def validate(cfg: DictConfig, schema: type, groups: tuple[str, ...] = (),
             given: bool = True) -> None:
    """Check ``cfg`` against ``schema`` and every ``_target_`` node against its own schema
    (or its class's parameters); values OmegaConf reads into the field's type
    (``tta=yes``) are written back as that type. ``given=False`` leaves required values
    (``???``) unasked, to check a command written without them."""
    if given:
        check_given(cfg, groups)
    _check_node(cfg, schema, "")
    for key, node in target_nodes(cfg):
        known = BY_TARGET.get(str(node._target_))
        if known is not None:
            _check_node(node, known, key)
        else:
            check_signature_keys(key, node)


def settings(cfg: DictConfig, schema: type[T]) -> T:
    """The checked ``cfg`` as an instance of ``schema`` (resolved)."""
    validate(cfg, schema)
    plain = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
             if k != "hydra"}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), plain))


def _check_node(node: DictConfig, schema: type, key: str) -> None:
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), node)
    except ConfigKeyError as e:
        parent, _, name = _join(key, str(e.full_key)).rpartition(".")
        owner = _schema_at(schema, str(e.full_key).rpartition(".")[0]) or schema
        raise unknown_key(parent, name, [f.name for f in dataclasses.fields(owner)],
                          _owner_name(owner)) from None
    except ValidationError as e:
        raise _type_error(schema, key, str(e.full_key), node) from None
    _write_back(node, typed, key)
    _check_rules(node, schema, key)


def _check_rules(node: DictConfig, schema: type, key: str) -> None:
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        try:
            value = node[f.name]
        except Exception:  # noqa: BLE001 - resolvable only inside a Hydra run
            continue
        if OmegaConf.is_missing(node, f.name):
            continue
        inner = _dataclass_of(f.type)
        if inner is not None and isinstance(value, DictConfig) \
                and not OmegaConf.is_interpolation(node, f.name):
            _check_rules(value, inner, _join(key, f.name))
        _check_field_or_source(node, key, f, value)
    rules = getattr(schema, "rules", None)
    if rules is not None:
        rules(key, node)


def _check_field_or_source(node: DictConfig, key: str, f: dataclasses.Field,
                           value: Any) -> None:
    """A value copied from another key (``T_max: ${trainer.max_epochs}``) is wrong where the
    user set it: the error names that key, and the key it was copied to."""
    name = _join(key, f.name)
    source = _source_key(node, f.name)
    try:
        check_field(source or name, f, value)
    except ConfigError as e:
        if source is None:
            raise
        raise ConfigError(f"{e} (it sets {name})") from None


def _source_key(node: DictConfig, name: str) -> str | None:
    """``a.b`` when ``node.name`` is exactly ``${a.b}``, else None."""
    if not OmegaConf.is_interpolation(node, name):
        return None
    found = re.fullmatch(r"\$\{(\w[\w.]*)\}", str(node._get_node(name)._value()))
    return found.group(1) if found else None


# What OmegaConf reads as a boolean and a user means as one: any other number is refused
# (OmegaConf reads ``2`` and ``-1`` as true).
_BOOLEAN_WORDS = {"true", "false", "yes", "no", "y", "n", "on", "off", "1", "0"}


def _write_back(node: DictConfig, typed: DictConfig, key: str) -> None:
    """Values the schema read as its type (``"yes"`` -> ``True``) replace the text given."""
    for name in list(node):
        if OmegaConf.is_interpolation(node, name) or OmegaConf.is_missing(node, name):
            continue
        given, read = node._get_node(name), typed._get_node(name)
        if isinstance(given, DictConfig) and isinstance(read, DictConfig):
            _write_back(given, read, _join(key, str(name)))
        elif OmegaConf.is_config(given) or OmegaConf.is_config(read):
            continue
        elif given._value() != read._value() or type(given._value()) is not type(read._value()):
            if isinstance(read._value(), bool) and \
                    str(given._value()).strip().lower() not in _BOOLEAN_WORDS:
                raise ConfigError(f"{_join(key, str(name))} must be true or false, "
                                  f"got {given._value()!r}")
            node[name] = read._value()


def _type_error(schema: type, key: str, relative: str, node: DictConfig) -> ConfigError:
    path = relative.split("[", 1)[0]
    owner = _schema_at(schema, path.rpartition(".")[0]) or schema
    name = path.rpartition(".")[2]
    field = next((f for f in dataclasses.fields(owner) if f.name == name), None)
    full = _join(key, path)
    value = OmegaConf.select(node, path, throw_on_resolution_failure=False)
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if field is not None and "range" in field.metadata:
        check_value(full, value, *field.metadata["range"])  # raises, naming the range
    words = type_words(field) if field is not None else "a value of another type"
    return ConfigError(f"{full} must be {words}, got {value!r}")


def _schema_at(schema: type, path: str) -> type | None:
    """The dataclass of the field at dotted ``path`` inside ``schema`` ("" is ``schema``)."""
    for part in filter(None, path.split(".")):
        field = next((f for f in dataclasses.fields(schema) if f.name == part), None)
        schema = _dataclass_of(field.type) if field is not None else None
        if schema is None:
            return None
    return schema


def _dataclass_of(kind: Any) -> type | None:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind if dataclasses.is_dataclass(kind) else None


def _owner_name(schema: type) -> str:
    """The class a node builds (``MaskDataModule`` for ``...MaskDataModule.from_keys``)."""
    target = getattr(schema, "_target_", None)
    if not target:
        return getattr(schema, "SOURCE", schema.__name__)
    parts = str(target).split(".")
    return next((p for p in reversed(parts) if p[:1].isupper()), parts[-1])


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key and name else key or name
