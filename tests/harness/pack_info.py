"""Facts about the pack read from its source files, without importing it or ComfyUI."""
from __future__ import annotations

import json
import re
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
NODE_ID = re.compile(r"""node_id\s*=\s*["'](RewardLoop\w+)["']""")


def declared_node_ids(pack_root: Path = PACK_ROOT) -> list[str]:
    ids: set[str] = set()
    for path in (pack_root / "nodes").glob("*.py"):
        ids.update(NODE_ID.findall(path.read_text()))
    return sorted(ids)


def workflow_files(pack_root: Path = PACK_ROOT) -> list[Path]:
    return sorted((pack_root / "workflows").glob("*.json"))


def workflow_node_types(path: Path) -> set[str]:
    """Node types used by a UI-format workflow (including inside subgraph definitions)."""
    data = json.loads(path.read_text())
    types = {n["type"] for n in data.get("nodes", [])}
    for sub in data.get("definitions", {}).get("subgraphs", []):
        types |= {n["type"] for n in sub.get("nodes", [])}
        types.discard(sub.get("id"))
    return types
