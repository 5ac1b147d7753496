"""`Cache`: the one keyed store behind every cache of loaded models and computed features (a RewardRuntime's and
RAFT's), so each is loaded once, thread-safe, optionally bounded, and emptied by `clear()`."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Cache:
    """A thread-safe map of loaded things (ComfyUI may run nodes from threads). With a `size`, the least recently
    used entries go first once it is full (the caches that use one hold hundreds of MB per entry)."""

    def __init__(self, size: int | None = None):
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Hashable, default=None):
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while self.size is not None and len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_or_load(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        """The entry for `key`, made by `loader()` the first time (once, even when threads ask together)."""
        with self._lock:
            if key not in self._items:
                self.put(key, loader())
            return self.get(key)

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def values(self) -> list:
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        with self._lock:
            n = len(self._items)
            self._items.clear()
        return n
