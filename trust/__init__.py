"""The trust boundary: what arrives in a workflow (widgets, YAML/JSON settings, file names, prompts) is data.

- `settings`: the one parser for settings text and config files: size-capped, YAML without anchors, aliases or
  tags, nesting depth capped; a clear error names the input.
- `paths`: path and file-name rules for values from a workflow (inside ComfyUI's folders after resolving
  symlinks; no `..`, URL-encoded, Windows-style or NUL-carrying values) and outputs that never replace a file.
- `policy`: `Policy.owner()` for the owner's own config files (CLI: free paths, Python reward callables) and
  `Policy.workflow(...)` for everything from the canvas (folders only, no code unless the machine's owner set
  REWARDLOOP_ALLOW_CODE_REWARDS=1 in the server's environment).

Pure Python (PyYAML only): no ComfyUI and no torch import, so every layer can use it.
"""
from .paths import PathRefused, child_name, looks_like_path, plain_name, publish, resolve_inside
from .policy import CODE_OPT_IN, CodeRefused, Policy
from .settings import (MAX_FILE_BYTES, MAX_SETTINGS_BYTES, SettingsError, check_text_size, parse_settings,
                       read_settings_file)

__all__ = ["CODE_OPT_IN", "CodeRefused", "child_name", "MAX_FILE_BYTES", "MAX_SETTINGS_BYTES", "PathRefused", "Policy",
           "SettingsError", "check_text_size", "looks_like_path", "parse_settings", "plain_name", "publish",
           "read_settings_file", "resolve_inside"]
