"""Finding a retry loop's body in an API-format prompt graph (pure dict walking, no ComfyUI import).

A node id maps to {"class_type": str, "inputs": {name: value}}; a link is [source_id, output_index]. The body of a
loop is every node that is downstream of the opening node and upstream of the closing node: exactly the nodes whose
result can change from one attempt to the next. Everything else (model loaders, keyframe sources, the reward's
reference inputs) stays outside and keeps its cached result.
"""
from __future__ import annotations

from typing import Callable


def is_link(value) -> bool:
    """Same rule as ComfyUI's graph_utils.is_link: a 2-list [node_id: str, output_index: int]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float)) and not isinstance(value[1], bool))


def upstream_children(get_node: Callable[[str], dict], close_id: str) -> dict[str, list[str]]:
    """Every node upstream of `close_id` (itself included) -> the nodes among them it feeds."""
    children: dict[str, list[str]] = {close_id: []}
    stack = [close_id]
    while stack:  # iterative: deep graphs must not hit Python's recursion limit
        node_id = stack.pop()
        for value in get_node(node_id).get("inputs", {}).values():
            if is_link(value):
                parent = value[0]
                if parent not in children:
                    children[parent] = []
                    stack.append(parent)
                if node_id not in children[parent]:
                    children[parent].append(node_id)
    return children


def find_body(get_node: Callable[[str], dict], open_id: str, close_id: str) -> list[str]:
    """Ids of the nodes strictly between the opening and the closing node, in a stable order (discovery order).
    Raises ValueError when the closing node does not depend on the opening node at all."""
    children = upstream_children(get_node, close_id)
    if open_id not in children:
        raise ValueError(f"the retry loop's close node ({close_id}) does not depend on its open node ({open_id}): "
                         f"connect the open node's 'loop' output to the close node")
    body: list[str] = []
    seen = {open_id}
    stack = [open_id]
    while stack:
        for child in children[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
                if child != close_id:
                    body.append(child)
    return body


def remap_inputs(inputs: dict, id_map: dict[str, str], offsets: dict[str, int] | None = None) -> dict:
    """A copy of `inputs` whose links into copied nodes point at the copies; other values are kept as they are
    (links to nodes outside the body keep pointing at the cached originals). `offsets` shifts the output index of
    links into the given nodes (a guarded API node's copy has its status in front of the node's own outputs)."""
    out = {}
    for name, value in inputs.items():
        if is_link(value) and value[0] in id_map:
            out[name] = [id_map[value[0]], value[1] + (offsets or {}).get(value[0], 0)]
        else:
            out[name] = value
    return out


def split_links(inputs: dict) -> tuple[dict, dict]:
    """(constants, links) of a node's inputs."""
    links = {k: v for k, v in inputs.items() if is_link(v)}
    return {k: v for k, v in inputs.items() if k not in links}, links


def consumers(node_ids, get_node: Callable[[str], dict], source: str, output: int) -> list[tuple[str, str]]:
    """(node id, input name) of every input linked to output `output` of node `source`."""
    found = []
    for node_id in node_ids:
        for name, value in get_node(node_id).get("inputs", {}).items():
            if is_link(value) and value[0] == source and int(value[1]) == output:
                found.append((node_id, name))
    return found
