"""Workflow formats: build UI-format graphs (what artists share and the frontend loads) from a compact spec,
and convert UI-format graphs to the API format that POST /prompt takes, using the server's /object_info.

The conversion mirrors what the frontend's graphToPrompt does for plain graphs (no subgraphs, no
primitive/reroute nodes); the browser test compares the two on every file in workflows/.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# Types whose inputs are widgets (values stored in widgets_values) rather than sockets.
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}
# Frontend-only nodes (notes): the frontend leaves them out of the prompt it queues.
VIRTUAL_TYPES = {"Note", "MarkdownNote"}


def _input_specs(node_info: dict) -> list[tuple[str, str, dict]]:
    """(name, type, options) of every input in schema order (required, then optional)."""
    specs = []
    for group in ("required", "optional"):
        for name, spec in node_info.get("input", {}).get(group, {}).items():
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            kind = "COMBO" if isinstance(kind, list) else kind
            specs.append((name, kind, opts))
    return specs


def _is_widget(kind: str, opts: dict) -> bool:
    return kind in WIDGET_TYPES and not opts.get("forceInput", False)


def _has_control_widget(name: str, kind: str, opts: dict) -> bool:
    """The frontend appends a 'control after generate' value after seed-like INT widgets."""
    if kind != "INT":
        return False
    if "control_after_generate" in opts:  # explicit True/False wins, as in the frontend
        return bool(opts["control_after_generate"])
    return name in SEED_NAMES


def ui_to_api(ui: dict, object_info: dict) -> dict:
    links = {link[0]: link for link in ui.get("links", [])}  # id -> [id, from, from_slot, to, to_slot, type]
    prompt: dict[str, dict] = {}
    for node in ui["nodes"]:
        if node.get("mode", 0) in (2, 4) or node["type"] in VIRTUAL_TYPES:  # muted / bypassed / notes
            continue
        info = object_info.get(node["type"])
        if info is None:
            raise KeyError(f"node type {node['type']!r} (node {node['id']}) is not installed on the server")
        linked = {}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                link = links[inp["link"]]
                linked[inp["name"]] = [str(link[1]), link[2]]
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):
            raise ValueError(f"node {node['id']}: dict widgets_values are not supported")
        inputs: dict = {}
        cursor = 0
        for name, kind, opts in _input_specs(info):
            if _is_widget(kind, opts):
                if cursor < len(values):
                    inputs[name] = values[cursor]
                cursor += 1
                if _has_control_widget(name, kind, opts):
                    cursor += 1
            if name in linked:
                inputs[name] = linked[name]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt


@dataclass
class Node:
    """A node in a workflow spec: widget values by input name, links as {input: (node_key, output_index)}."""
    key: str
    type: str
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    title: str | None = None
    column: int | None = None
    group: str | None = None  # the group it is drawn in (default: computed from its stage or retry loop)


def build_ui(nodes: list[Node], object_info: dict, extra: dict | None = None, note: str | None = None,
             known_models: dict[str, dict] | None = None) -> dict:
    """UI-format workflow (frontend schema version 0.4) from a spec, laid out in groups (workflow_layout.py), with
    an optional Markdown note and `properties.models` for widget values naming a file of `known_models`
    ({file name: {"url": ..., "directory": ...}})."""
    from workflow_layout import TITLE_H, initial_view, layout, model_properties

    ids = {n.key: i + 1 for i, n in enumerate(nodes)}
    by_key = {n.key: n for n in nodes}
    boxes, groups, note_box = layout(nodes, object_info, note)

    links, ui_nodes = [], []
    out_links: dict[tuple[int, int], list[int]] = {}
    for n in nodes:
        for name, (src, slot) in n.links.items():
            link_id = len(links) + 1
            src_info = object_info[by_key[src].type]
            links.append([link_id, ids[src], slot, ids[n.key], None, src_info["output"][slot]])
            out_links.setdefault((ids[src], slot), []).append(link_id)
    link_by_target = {(l[3], name): l for n in nodes for name, (src, slot) in n.links.items()
                      for l in links if l[3] == ids[n.key] and l[1] == ids[src] and l[2] == slot}
    for n in nodes:
        info = object_info[n.type]
        inputs, widgets_values, slot = [], [], 0
        for name, kind, opts in _input_specs(info):
            widget = _is_widget(kind, opts)
            if widget:
                if name not in n.widgets and "default" not in opts and kind != "COMBO":
                    raise ValueError(f"{n.key}: no value for widget {name!r}")
                value = n.widgets.get(name, opts.get("default"))
                if value is None and kind == "COMBO":
                    value = object_info[n.type]["input"].get("required", {}).get(name, [[None]])[0][0] \
                        if name in info["input"].get("required", {}) else \
                        info["input"]["optional"][name][0][0]
                widgets_values.append(value)
                if _has_control_widget(name, kind, opts):
                    widgets_values.append("fixed")
            if name in n.links or not widget:
                entry = {"name": name, "type": kind, "link": None}
                if widget:
                    entry["widget"] = {"name": name}
                if name in n.links:
                    link = link_by_target[(ids[n.key], name)]
                    link[4] = slot
                    entry["link"] = link[0]
                inputs.append(entry)
                slot += 1
        unknown = set(n.widgets) - {s[0] for s in _input_specs(info)}
        if unknown:
            raise ValueError(f"{n.key} ({n.type}): unknown inputs {sorted(unknown)}")
        outputs = [{"name": name, "type": kind, "links": out_links.get((ids[n.key], i), [])}
                   for i, (name, kind) in enumerate(zip(info["output_name"], info["output"]))]
        x, y, w, h = boxes[n.key]
        properties = {"Node name for S&R": n.type}
        models = model_properties(widgets_values, known_models or {})
        if models:
            properties["models"] = models
        ui_nodes.append({"id": ids[n.key], "type": n.type, "pos": [x, y], "size": [w, h], "flags": {},
                         "order": len(ui_nodes), "mode": 0, "inputs": inputs, "outputs": outputs,
                         "properties": properties, "widgets_values": widgets_values,
                         **({"title": n.title} if n.title else {})})
    if note_box:
        x, y, w, h = note_box
        ui_nodes.append({"id": len(ui_nodes) + 1, "type": "MarkdownNote", "pos": [x, y], "size": [w, h], "flags": {},
                         "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                         "widgets_values": [note], "title": "About this workflow", "color": "#432",
                         "bgcolor": "#653"})
    shown = [(n["pos"][0], n["pos"][1] - TITLE_H, n["size"][0], n["size"][1] + TITLE_H) for n in ui_nodes]
    shown += [tuple(g["bounding"]) for g in groups]
    return {"id": "00000000-0000-4000-8000-000000000000", "revision": 0, "last_node_id": len(ui_nodes),
            "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": [dict(g, id=i + 1, color="#3f789e", font_size=24, flags={}) for i, g in enumerate(groups)],
            "config": {}, "extra": extra or {"ds": initial_view(shown)}, "version": 0.4}


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
