"""Layout of the shareable workflows: node sizes estimated from each node's schema, stages of related nodes
placed as non-overlapping groups from left to right, one Markdown note per workflow, and download links for the
model files the frontend's missing-model dialog offers. Everything is computed from the spec and /object_info, so
a new spec gets it without layout code of its own.

Sizes: the frontend grows a node to the size its widgets need (never shrinks it), and both renderers (the classic
canvas and Nodes 2.0) lay nodes out differently; the constants below are the larger of the two, measured in
headless Chromium with both frontends (tests/browser/workflow_canvas.js), plus the room the pack's chart widgets
and the frontend's previews take after a run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from workflows import _has_control_widget, _input_specs, _is_widget

# ---- node sizes -------------------------------------------------------------------------------------------
TITLE_H = 30          # node title bar (drawn above a node's pos)
SLOT_H = 24           # one row of input/output sockets
WIDGET_H = 34         # one value widget (number, combo, toggle, single-line text)
MULTILINE_H = 110     # a multiline text box
CHART_H = 260         # the pack's chart widget (180 px by default, its margins; Nodes 2.0 stretches it)
JOB_H = 150           # the Training Job node's status panel
IMAGE_PREVIEW_H = 720  # an image preview shown after a run (Reward Report's chart; Nodes 2.0 stacks it below)
VIDEO_PREVIEW_H = 360  # a video preview shown after a run (SaveVideo)
IMAGE_GROWTH = 320    # Nodes 2.0 adds an image preview below a node whatever its size: keep that room free
TEXT_PREVIEW_H = 90   # the progress text some nodes show while and after they run
TEXT_PREVIEW_W = 520  # Nodes 2.0 widens a node to its longest progress-text line
NODE_W = 340
WIDE_NODE_W = 420     # nodes with a multiline box or a chart
PAD_H = 16            # bottom padding of a node
MIN_BODY_H = 110      # Nodes 2.0's smallest nodes (one socket row and a widget) are taller than that sum
TITLE_CHAR_W = 7.5    # the title's width per character (both renderers fit a node to its title)

# Node types (besides reward scorers, recognised by their scores output) that carry a chart widget.
CHART_NODES = {"RewardLoopRewardReport", "RewardLoopRetryClose", "RewardLoopBestOfN", "RewardLoopJoinSegments"}
JOB_NODES = {"RewardLoopTrainingJob"}
IMAGE_PREVIEW_NODES = {"RewardLoopRewardReport", "PreviewImage", "SaveImage"}
VIDEO_PREVIEW_NODES = {"SaveVideo", "PreviewVideo", "SaveAnimatedWEBP", "SaveWEBM"}
# Nodes that show progress text on the canvas while or after they run.
TEXT_PREVIEW_CATEGORIES = ("RewardLoop/Rewards", "RewardLoop/Loop", "RewardLoop/Training")

# ---- placement ----------------------------------------------------------------------------------------------
MARGIN = 40           # canvas origin
COL_GAP = 60          # between node columns inside a group
ROW_GAP = 50          # between nodes stacked in a column (room for the next title bar is added)
GROUP_PAD = 24        # inside a group, around its nodes
GROUP_TITLE_H = 44    # a group's title bar
GROUP_GAP = 80        # between groups
NOTE_W, NOTE_LINE_H = 620, 20
# The view a workflow opens with: the whole graph in a 1600x1000 window, but never so small that the note and the
# nodes' text become unreadable (the classic canvas stops drawing text below 0.6); then the top left is shown. A
# saved view also keeps the 0.3.75 frontend's Nodes 2.0 from fitting the view while it rescales the layout, which
# scatters the nodes.
VIEW_W, VIEW_H, VIEW_MARGIN, MIN_VIEW_SCALE = 1500, 860, 60, 0.6


LOADERS = {"UNETLoader", "VAELoader", "CLIPLoader", "DualCLIPLoader", "CheckpointLoaderSimple", "LoraLoader",
           "LoraLoaderModelOnly", "ModelSamplingSD3", "CLIPTextEncode", "EmptyHunyuanLatentVideo",
           "EmptyLatentImage", "LoadImage", "PrimitiveString", "PrimitiveStringMultiline", "PrimitiveInt",
           "PrimitiveFloat"}
OUTPUTS = {"CreateVideo", "SaveVideo", "PreviewVideo", "SaveImage", "PreviewImage", "ImageStitch", "PreviewAny",
           "SaveAnimatedWEBP", "SaveWEBM"}
STAGE_TITLES = {
    "inputs": "Inputs",
    "generate": "Generate",
    "score": "Score",
    "train": "Train",
    "output": "Output",
}


@dataclass
class Box:
    key: str
    w: int
    h: int            # body height (below the title bar)
    below: int = 0    # room kept free under the node (not part of its saved size)
    x: int = 0
    y: int = 0


@dataclass
class Block:
    title: str
    keys: list[str] = field(default_factory=list)


def has_chart(node_type: str, info: dict) -> bool:
    return node_type in CHART_NODES or "REWARDLOOP_SCORES" in info.get("output", [])


def node_size(node_type: str, info: dict, title: str | None = None) -> tuple[int, int]:
    """(width, body height) that holds the node in either renderer, before and after a run."""
    sockets = widgets = multiline = 0
    for name, kind, opts in _input_specs(info):
        if _is_widget(kind, opts):
            if kind == "STRING" and opts.get("multiline"):
                multiline += 1
            else:
                widgets += 1 + _has_control_widget(name, kind, opts)
        else:
            sockets += 1
    rows = max(sockets, len(info.get("output", [])), 1)
    h = rows * SLOT_H + widgets * WIDGET_H + multiline * MULTILINE_H + PAD_H
    chart = has_chart(node_type, info)
    h += CHART_H * chart + JOB_H * (node_type in JOB_NODES)
    h += IMAGE_PREVIEW_H * (node_type in IMAGE_PREVIEW_NODES) + VIDEO_PREVIEW_H * (node_type in VIDEO_PREVIEW_NODES)
    text = info.get("category", "").startswith(TEXT_PREVIEW_CATEGORIES)
    h = max(MIN_BODY_H, h + TEXT_PREVIEW_H * text)
    w = TEXT_PREVIEW_W if text else WIDE_NODE_W if (multiline or chart or node_type in JOB_NODES) else NODE_W
    w = max(w, 60 + round(TITLE_CHAR_W * len(title or info.get("display_name") or node_type)))
    return w, h


# ---- stages and groups ---------------------------------------------------------------------------------------
def _stage(node_type: str, info: dict, is_source: bool) -> str:
    category = info.get("category", "")
    if node_type in OUTPUTS or category.startswith(("image/video", "video")):
        return "output"
    if node_type in LOADERS or node_type.startswith("Load") or category.startswith(("loaders", "conditioning")):
        return "inputs"
    if is_source:  # a node fed by nothing (a scene, a prompt): what the rest starts from
        return "inputs"
    if category.startswith("RewardLoop/Rewards"):
        return "score"
    if category.startswith("RewardLoop/Training"):
        return "train"
    return "generate"


def loop_bodies(nodes, infos: dict) -> list[list[str]]:
    """Keys of each retry loop: its open node, every node downstream of it and upstream of its close node, and the
    close node (the sub-graph the loop re-runs)."""
    by_key = {n.key: n for n in nodes}
    consumers: dict[str, set[str]] = {}
    for n in nodes:
        for src, _ in n.links.values():
            consumers.setdefault(src, set()).add(n.key)

    def downstream(key):
        seen, todo = set(), [key]
        while todo:
            for nxt in consumers.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def upstream(key):
        seen, todo = set(), [key]
        while todo:
            for src, _ in by_key[todo.pop()].links.values():
                if src not in seen:
                    seen.add(src)
                    todo.append(src)
        return seen

    bodies = []
    for n in nodes:
        if n.type == "RewardLoopRetryOpen":
            closes = [k for k in downstream(n.key) if by_key[k].type == "RewardLoopRetryClose"
                      and n.key in upstream(k)]
            for close in closes[:1]:
                inside = downstream(n.key) & upstream(close)
                bodies.append([k.key for k in nodes if k.key in inside | {n.key, close}])
    return bodies


def blocks(nodes, infos: dict) -> list[Block]:
    """Groups in spec order: a node's explicit `group`, else its retry loop, else its stage."""
    result: dict[str, Block] = {}
    loops = loop_bodies(nodes, infos)
    loop_of = {k: i for i, body in enumerate(loops) for k in body}
    for n in nodes:
        if n.group:
            title = n.group
        elif n.key in loop_of:
            title = "Retry loop: re-runs this part until the reward passes"
            if len(loops) > 1:
                title = f"Retry loop {loop_of[n.key] + 1}: re-runs this part until the reward passes"
        else:
            title = STAGE_TITLES[_stage(n.type, infos[n.type], not n.links)]
        result.setdefault(title, Block(title)).keys.append(n.key)
    return list(result.values())


# ---- placement ---------------------------------------------------------------------------------------------------
def _split_at_gaps(groups: list[Block], depth) -> list[Block]:
    """A stage whose nodes sit at depths other groups come between (e.g. inputs of the loops and the node joining
    their results) becomes one group per run of depths, so no group spans another."""
    used: dict[int, set[str]] = {}
    for g in groups:
        for k in g.keys:
            used.setdefault(depth(k), set()).add(g.title)
    out = []
    for g in groups:
        levels = sorted({depth(k) for k in g.keys})
        runs, run = [], [levels[0]]
        for d in levels[1:]:
            between = set().union(*(used.get(x, set()) for x in range(run[-1] + 1, d))) - {g.title}
            if between:
                runs.append(run)
                run = [d]
            else:
                run.append(d)
        runs.append(run)
        for r in runs:
            out.append(Block(g.title, [k for k in g.keys if depth(k) in r]))
    return out


def layout(nodes, infos: dict, note: str | None) -> tuple[dict[str, tuple[int, int, int, int]], list[dict], dict]:
    """Node boxes {key: (x, y, w, h)} (pos is the body's top-left, the title bar is above it), the groups, and the
    note node's box. Groups run left to right by the depth of their first node; groups starting at the same depth
    are stacked. Inside a group, nodes form columns by depth."""
    by_key = {n.key: n for n in nodes}
    memo: dict[str, int] = {}

    def depth(key: str) -> int:
        if key not in memo:
            n = by_key[key]
            memo[key] = n.column if n.column is not None else (
                0 if not n.links else 1 + max(depth(src) for src, _ in n.links.values()))
        return memo[key]

    boxes = {n.key: Box(n.key, *node_size(n.type, infos[n.type], n.title),
                        below=IMAGE_GROWTH * (n.type in IMAGE_PREVIEW_NODES)) for n in nodes}
    groups = _split_at_gaps(blocks(nodes, infos), depth)
    # size of each group's content, in columns by depth
    shapes = []
    for g in groups:
        levels = sorted({depth(k) for k in g.keys})
        cols = [[k for k in g.keys if depth(k) == d] for d in levels]
        widths = [max(boxes[k].w for k in col) for col in cols]
        heights = [sum(TITLE_H + boxes[k].h + boxes[k].below for k in col) + ROW_GAP * (len(col) - 1) for col in cols]
        w = sum(widths) + COL_GAP * (len(cols) - 1) + 2 * GROUP_PAD
        h = GROUP_TITLE_H + max(heights) + 2 * GROUP_PAD
        shapes.append((g, cols, widths, w, h, min(levels)))
    bands = sorted({start for *_rest, start in shapes})

    note_h = 0
    note_box = None
    if note:
        lines = sum(max(1, len(line) // 78 + 1) for line in note.splitlines())
        note_h = 2 * GROUP_PAD + lines * NOTE_LINE_H
        note_box = (MARGIN, MARGIN + TITLE_H, NOTE_W, note_h)
    top = MARGIN + (TITLE_H + note_h + GROUP_GAP if note else 0)

    placed_groups = []
    x = MARGIN
    for band in bands:
        y = top
        band_w = 0
        for g, cols, widths, w, h, start in shapes:
            if start != band:
                continue
            cx = x + GROUP_PAD
            for col, cw in zip(cols, widths):
                cy = y + GROUP_TITLE_H + GROUP_PAD
                for k in col:
                    boxes[k].x, boxes[k].y = cx, cy + TITLE_H
                    cy += TITLE_H + boxes[k].h + boxes[k].below + ROW_GAP
                cx += cw + COL_GAP
            placed_groups.append({"title": g.title, "bounding": [x, y, w, h]})
            y += h + GROUP_GAP
            band_w = max(band_w, w)
        x += band_w + GROUP_GAP
    return {k: (b.x, b.y, b.w, b.h) for k, b in boxes.items()}, placed_groups, note_box


# ---- model downloads -----------------------------------------------------------------------------------------
def model_properties(widget_values: list, known_models: dict[str, dict]) -> list[dict]:
    """`properties.models` entries (name, url, directory) for the widget values that name a known model file:
    the frontend offers these downloads when the file is missing from that models folder."""
    names = [v for v in widget_values if isinstance(v, str)]
    return [{"name": v, **known_models[v]} for v in dict.fromkeys(names) if v in known_models]


def note_text(doc: str | None) -> str | None:
    """A workflow's note from its spec's docstring: wrapped lines joined, paragraphs, list items and headings kept
    (the note is Markdown)."""
    if not doc:
        return None
    import inspect

    out: list[str] = []
    for line in inspect.cleandoc(doc).splitlines():
        text = line.strip()
        starts_item = re.match(r"^(#+ |[-*] |\d+\. )", text)
        if not text:
            out.append("")
        elif starts_item or not out or not out[-1]:
            out.append(text)
        else:
            out[-1] += " " + text
    return "\n".join(out)


def initial_view(boxes: list[tuple[float, float, float, float]]) -> dict:
    """`extra.ds` (scale, offset) that shows every box (x, y, w, h; title bars included) in a typical window."""
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    w = max(b[0] + b[2] for b in boxes) - x0
    h = max(b[1] + b[3] for b in boxes) - y0
    scale = round(max(MIN_VIEW_SCALE, min(1.0, VIEW_W / w, VIEW_H / h)), 3)
    # the frontend draws canvas point p at (p + offset) * scale
    return {"scale": scale, "offset": [round(VIEW_MARGIN / scale - x0, 1), round(VIEW_MARGIN / scale - y0, 1)]}
