"""JSON-safe copies of values that go into logs, UI payloads and files.

One rule for the whole pack: NaN and infinities become null (JSON has no such numbers and browsers reject the
`NaN` token; null reads as "no value", never as a silent 0), tensors and NumPy values become plain numbers or
lists, dict keys become strings, and anything else becomes its text. No torch or NumPy import is needed: both
expose `tolist()`.
"""
from __future__ import annotations

import math


def json_safe(value):
    """A copy of `value` that `json.dumps(..., allow_nan=False)` accepts."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    tolist = getattr(value, "tolist", None)  # torch tensors, NumPy arrays and scalars
    if callable(tolist):
        try:
            return json_safe(tolist())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)
