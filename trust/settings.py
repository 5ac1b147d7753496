"""One bounded parser for every settings text (launch nodes' `extra_settings`, `reward_settings`, `gates`, the
CLI's `--set`) and config file. YAML is a superset of JSON, so widget text is read as YAML.

Bounds, each a clear error naming the input: a size cap (checked before parsing), no YAML anchors or aliases
(a ~420-byte alias bomb expands to gigabytes), no explicit tags (`!!python/...`, `!!binary`, `!!set`: only plain
mappings, lists, strings, numbers, booleans and null are settings), and a nesting depth cap. Dates stay strings,
so every parsed value is JSON-serialisable.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

MAX_SETTINGS_BYTES = 64 * 1024      # a settings widget: a few hundred lines is already a lot
MAX_FILE_BYTES = 1024 * 1024        # a config file on disk
MAX_DEPTH = 32
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class SettingsError(ValueError):
    """Settings text that is too large, not YAML/JSON, or uses a YAML feature settings may not use."""
    __module__ = "rewardloop.trust"  # how ComfyUI names the error type on the node (not the folder path)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and explicit tags while composing, before anything is built."""

    yaml_implicit_resolvers = {first: [r for r in resolvers if r[0] != _TIMESTAMP]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def __init__(self, stream, where: str):
        super().__init__(stream)
        self.where = where
        self.depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        mark = getattr(event, "start_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise SettingsError(f"{self.where}: YAML anchors and aliases (&name, *name) are not accepted{at}; "
                                "write each value out.")
        if getattr(event, "tag", None) is not None:
            raise SettingsError(f"{self.where}: YAML tags such as {event.tag!r} are not accepted{at}; settings are "
                                "plain mappings, lists, strings, numbers and true/false.")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise SettingsError(f"{self.where}: settings nest deeper than {MAX_DEPTH} levels{at}.")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def check_text_size(text: str, where: str, max_bytes: int = MAX_SETTINGS_BYTES) -> None:
    """Refuse settings text larger than `max_bytes` (before any parsing or pattern matching)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise SettingsError(f"{where}: {size:,} bytes of settings; at most {max_bytes:,} are accepted. Settings "
                            "are a few options; long lists (prompts, datasets) belong in files.")


def _check_depth(value: Any, where: str) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SettingsError(f"{where}: settings nest deeper than {MAX_DEPTH} levels.")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_settings(text: str, where: str, *, max_bytes: int = MAX_SETTINGS_BYTES, syntax: str = "yaml") -> Any:
    """The value in `text` (`syntax` yaml or json); `where` names the input in every error (e.g. 'extra_settings')."""
    if not isinstance(text, str):
        raise SettingsError(f"{where}: expected text, got {type(text).__name__}.")
    check_text_size(text, where, max_bytes)
    if syntax == "json":
        try:
            value = json.loads(text)
        except RecursionError:
            raise SettingsError(f"{where}: settings nest deeper than {MAX_DEPTH} levels.") from None
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                                "YAML files need a .yaml/.yml suffix.") from None
        _check_depth(value, where)
        return value
    loader = _BoundedLoader(text, where)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise SettingsError(f"{where} is not valid YAML/JSON: {exc}") from None
    except RecursionError:
        raise SettingsError(f"{where}: settings nest deeper than {MAX_DEPTH} levels.") from None
    finally:
        loader.dispose()


def read_settings_file(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """A config file: YAML for .yaml/.yml, JSON otherwise; the size is checked before the file is read."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"Config file {path} does not exist.")
    size = path.stat().st_size
    if size > max_bytes:
        raise SettingsError(f"{path}: {size:,} bytes; a config file may hold at most {max_bytes:,}.")
    syntax = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    return parse_settings(path.read_text(encoding="utf-8"), str(path), max_bytes=max_bytes, syntax=syntax)
