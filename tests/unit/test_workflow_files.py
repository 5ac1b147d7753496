"""The shareable workflows as a user opens them: readable titles (the template browser shows file names), a
picture per template, a note saying what the workflow shows and what to change, labelled groups that hold their
nodes, no node overlapping another (with the room charts and previews need), and download links for the Wan files
the frontend's missing-model dialog offers. (tests/server/test_workflow_generation.py checks the files are what their
specs build; the browser tests open them in both frontends.)"""
from __future__ import annotations

import json
import re

import pytest
from workflow_layout import TITLE_H
from workflow_specs import KNOWN_MODELS, TITLES
from workflows import VIRTUAL_TYPES

from pack_info import PACK_ROOT, all_workflow_files

JARGON = re.compile(r"seed[\s_-]*0{3}|seed document|design\.md", re.IGNORECASE)
MAX_TITLE = 32  # the newest template browser shows about 30 characters of a title on one line
FILES = all_workflow_files()


def _load(path):
    return json.loads(path.read_text())


def _boxes(ui):
    """(id, x, y, w, h) of every node with its title bar."""
    return [(n["id"], n["pos"][0], n["pos"][1] - TITLE_H, n["size"][0], n["size"][1] + TITLE_H) for n in ui["nodes"]]


def _overlap(a, b, gap=0):
    return a[1] < b[1] + b[3] + gap and b[1] < a[1] + a[3] + gap and a[2] < b[2] + b[4] + gap and b[2] < a[2] + a[4] + gap


def test_every_template_title_is_readable_and_unique():
    assert FILES, "workflows/ is empty"
    names = [p.stem for p in FILES]
    for name in names:
        assert len(name) <= MAX_TITLE and "_" not in name and name[0].isupper(), name
        assert not JARGON.search(name), name
    assert set(names) == set(TITLES.values()), "every file is a titled spec (TITLES in workflow_specs.py)"
    assert sorted(names, key=str.casefold)[0].startswith("Main demo"), "the main demo must be listed first"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_template_has_its_picture(path):
    from PIL import Image

    picture = path.with_suffix(".jpg")
    assert picture.exists(), f"{picture.name} missing: run tests/harness/make_thumbnails.py"
    with Image.open(picture) as img:
        assert img.format == "JPEG" and img.size == (480, 360)
        assert img.convert("L").getextrema()[1] - img.convert("L").getextrema()[0] > 60, "a blank picture"
    assert picture.stat().st_size < 120_000


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_one_note_says_what_it_shows_and_what_to_change(path):
    ui = _load(path)
    notes = [n for n in ui["nodes"] if n["type"] in VIRTUAL_TYPES]
    assert len(notes) == 1, [n["type"] for n in notes]
    text = notes[0]["widgets_values"][0]
    assert "What it shows" in text and "What to change" in text, text[:200]
    texts = [text, *(n.get("title", "") for n in ui["nodes"]), *(g["title"] for g in ui["groups"])]
    texts += [v for n in ui["nodes"] for v in n.get("widgets_values", []) if isinstance(v, str)]
    assert not [t for t in texts if JARGON.search(t)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_no_node_overlaps_another_and_groups_hold_their_nodes(path):
    ui = _load(path)
    boxes = _boxes(ui)
    overlaps = [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:] if _overlap(a, b, gap=20)]
    assert overlaps == [], overlaps
    groups = [g["bounding"] for g in ui["groups"]]
    assert groups, "no groups"
    for i, g in enumerate(groups):
        assert not any(_overlap((0, *g), (0, *h)) for h in groups[i + 1:]), ui["groups"][i]["title"]
    for box in boxes:
        if next(n for n in ui["nodes"] if n["id"] == box[0])["type"] in VIRTUAL_TYPES:
            continue
        inside = [g for g in groups if g[0] <= box[1] and g[1] + 30 <= box[2] and box[1] + box[3] <= g[0] + g[2]
                  and box[2] + box[4] <= g[1] + g[3]]
        assert len(inside) == 1, (box, inside)
    assert ui["extra"]["ds"]["scale"] >= 0.6, "opens too small to read"


def test_model_loaders_offer_the_wan_downloads():
    seen = set()
    for path in FILES:
        for node in _load(path)["nodes"]:
            named = {v for v in node.get("widgets_values", []) if isinstance(v, str) and v in KNOWN_MODELS}
            models = {m["name"]: m for m in node.get("properties", {}).get("models", [])}
            assert set(models) == named, (path.name, node["type"])
            for name, model in models.items():
                assert model["url"].startswith("https://huggingface.co/") and model["url"].endswith(f"/{name}")
                assert model["directory"] in {"diffusion_models", "vae", "text_encoders"}
                seen.add((node["type"], model["directory"]))
    assert {("UNETLoader", "diffusion_models"), ("VAELoader", "vae"), ("CLIPLoader", "text_encoders"),
            ("RewardLoopLaunchGRPO", "diffusion_models"), ("RewardLoopLaunchGRPO", "vae")} <= seen, seen


def test_the_files_are_exactly_the_specs_files():
    from workflow_specs import all_specs, template_path

    assert sorted(template_path(k) for k in all_specs()) == sorted(FILES)
    assert not list((PACK_ROOT / "workflows").glob("*.jpg")) or {p.stem for p in (PACK_ROOT / "workflows").glob(
        "*.jpg")} == {p.stem for p in FILES}, "a picture without its workflow"
