"""The import graph the README's Architecture section describes, read from the source with `ast`:
- the core packages never import ComfyUI or the pack's nodes/ (not even inside a function);
- packages only import packages of their own layer or below: common < trust < modelfiles < motion < rewards <
  gating < trainers < nodes (trust/, the workflow trust boundary, is checked where the checkout has it);
- no import cycles between modules (top-level imports anywhere; every import, function-local ones included, in the
  core layers; the node layer may defer one import to break a cycle between two node modules)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
LAYERS = [layer for layer in ("common", "trust", "modelfiles", "motion", "rewards", "gating", "trainers", "nodes")
          if (PACK_ROOT / layer / "__init__.py").is_file()]
CORE = LAYERS[:-1]
COMFYUI_MODULES = {"comfy", "comfy_api", "comfy_execution", "comfy_extras", "comfy_api_nodes", "folder_paths", "server",
                   "latent_preview", "execution", "node_helpers", "nodes", "app", "utils"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACK_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for layer in LAYERS for p in sorted((PACK_ROOT / layer).rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, at top level?, line) for every import in the file; relative imports are resolved inside the
    pack, absolute ones keep their top-level name."""
    tree = ast.parse(path.read_text(), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name.split(".")[0], id(node) in top, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                out.append(((node.module or "").split(".")[0], id(node) in top, node.lineno))
                continue
            base = package[:len(package) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import x` may name a module
                candidate = f"{target}.{alias.name}" if target else alias.name
                out.append((candidate if candidate in MODULES else target or "<pack root>", id(node) in top,
                            node.lineno))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_layer_is_read():
    assert {m.split(".")[0] for m in MODULES} == set(LAYERS)
    assert "rewards.runtime" in MODULES and "common.keyframes" in MODULES


@pytest.mark.parametrize("layer", CORE)
def test_core_never_imports_comfyui_or_nodes(layer):
    bad = [(name, target, line) for name, imports in GRAPH.items() if name.split(".")[0] == layer
           for target, _, line in imports
           if target in COMFYUI_MODULES or target == "<pack root>" or target.split(".")[0] == "nodes"]
    assert not bad, f"{layer} imports ComfyUI or the node layer: {bad}"


def test_packages_import_only_their_layer_or_below():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    bad = [(name, target, line) for name, imports in GRAPH.items() for target, _, line in imports
           if target.split(".")[0] in rank and rank[target.split(".")[0]] > rank[name.split(".")[0]]]
    assert not bad, f"imports of a higher layer: {bad}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node, path):
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for node in sorted(edges):
        if node not in done:
            visit(node, [node])
    return found


def test_no_import_cycles():
    pack = lambda t: t in MODULES  # noqa: E731
    top = {n: {t for t, at_top, _ in imports if at_top and pack(t) and t != n} for n, imports in GRAPH.items()}
    assert _cycles(top) == []
    core = {n: {t for t, _, _ in imports if pack(t) and t != n} for n, imports in GRAPH.items()
            if n.split(".")[0] in CORE}
    assert _cycles(core) == []


def test_the_checker_sees_cycles_and_layer_breaks():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert ("rewards.context", True) in {(t, top) for t, top, _ in GRAPH["rewards.fvd_lite"]}
    assert ("motion.optical_flow", True) in {(t, top) for t, top, _ in GRAPH["rewards.runtime"]}
