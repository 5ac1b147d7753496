"""Every node class builds a valid V3 schema: unique ids, the pack's id prefix and category tree, and the text an
artist reads on the canvas: a display name on every output, a tooltip on every input, a short description, a help
page per node, and no wording from the project's internal documents."""
from __future__ import annotations

import importlib
import re

import pytest
from node_docs import DOCS_DIR, page_with_reference

from pack_info import declared_node_ids

MAX_DESCRIPTION = 300  # the node tooltip; longer text belongs on the node's help page
# Names of the project's internal documents, which users never see: nothing an artist reads may cite them.
JARGON = re.compile(r"seed[\s_-]*0{3}|seed document|design\.md", re.IGNORECASE)
HIDDEN_NODES = {"RewardLoopRetryCollect", "RewardLoopProviderCall"}  # created by the retry loop's graph expansion, never placed by hand


@pytest.fixture(scope="module")
def node_classes(comfy_inprocess):
    nodes = importlib.import_module("rewardloop.nodes")
    return nodes.all_node_classes()


@pytest.fixture(scope="module")
def schemas(node_classes):
    return {cls.GET_SCHEMA().node_id: cls.GET_SCHEMA() for cls in node_classes}


def test_every_declared_node_is_registered(node_classes):
    registered = sorted(cls.GET_SCHEMA().node_id for cls in node_classes)
    assert registered == declared_node_ids()
    assert len(set(registered)) == len(registered), "duplicate node ids"


def test_schemas_are_valid_and_namespaced(node_classes):
    for cls in node_classes:
        schema = cls.GET_SCHEMA()  # raises on duplicate input/output ids and other schema errors
        assert schema.node_id.startswith("RewardLoop"), schema.node_id
        assert schema.category.startswith("RewardLoop/"), (schema.node_id, schema.category)
        assert schema.display_name, schema.node_id
        input_ids = [i.id for i in schema.inputs]
        output_ids = [o.id for o in schema.outputs]
        assert len(set(input_ids + output_ids)) == len(input_ids) + len(output_ids), schema.node_id
        assert schema.description, f"{schema.node_id} has no description (shown as the node's tooltip)"


def test_every_output_is_named_and_every_input_explained(node_classes, schemas):
    unnamed = [f"{nid}.{o.id}" for nid, s in schemas.items() for o in s.outputs if not (o.display_name or "").strip()]
    assert unnamed == [], f"outputs shown by their type name (set display_name): {unnamed}"
    untipped = [f"{nid}.{i.id}" for nid, s in schemas.items() for i in s.inputs if not (i.tooltip or "").strip()]
    assert untipped == [], f"inputs without a tooltip: {untipped}"
    # The frontend labels output sockets with output_name, which falls back to the type name.
    for cls in node_classes:
        info = cls.GET_NODE_INFO_V1()
        assert not set(info["output_name"]) & set(info["output"]), (info["name"], info["output_name"])


def test_descriptions_are_short(schemas):
    long = {nid: len(s.description) for nid, s in schemas.items() if len(s.description) > MAX_DESCRIPTION}
    assert long == {}, f"descriptions over {MAX_DESCRIPTION} characters (move the details to web/docs/): {long}"


def _user_strings(schema) -> list[str]:
    texts = [schema.display_name, schema.description, schema.category]
    for i in schema.inputs:
        texts += [i.tooltip or "", i.display_name or ""]
        texts += [str(o) for o in (getattr(i, "options", None) or [])]
    for o in schema.outputs:
        texts += [o.tooltip or "", o.display_name or ""]
    return texts


def test_no_internal_document_wording_in_node_text(schemas):
    hits = {nid: [t for t in _user_strings(s) if JARGON.search(t)] for nid, s in schemas.items()}
    assert {k: v for k, v in hits.items() if v} == {}


def test_the_jargon_check_catches_what_it_should():
    for text in ("the seed 000 value", "Seed000 pan", "seed-000", "the seed document", "see DESIGN.md"):
        assert JARGON.search(text), text
    for text in ("seed 0 is the base seed", "seed 1000", "random seed"):
        assert not JARGON.search(text), text


def test_every_node_has_a_help_page_with_a_current_reference(node_classes, schemas):
    ids = set(schemas)
    pages = {p.stem for p in DOCS_DIR.glob("*.md")}
    assert ids - pages == set(), f"nodes without a help page in web/docs/: {sorted(ids - pages)}"
    assert pages - ids == set(), f"help pages of nodes that do not exist: {sorted(pages - ids)}"
    for cls in node_classes:
        info = cls.GET_NODE_INFO_V1()
        page = (DOCS_DIR / f"{info['name']}.md").read_text()
        assert page.startswith(f"# {info['display_name']}\n"), f"{info['name']}.md must start with its display name"
        assert len(page.split("<!--")[0]) > 300, f"{info['name']}.md says too little before its reference"
        assert page == page_with_reference(page, info), \
            f"{info['name']}.md: its inputs/outputs reference is stale; run tests/harness/node_docs.py"
        assert not JARGON.search(page), info["name"]


def test_internal_nodes_are_hidden_from_the_library_and_others_are_not(node_classes):
    flags = {}
    for cls in node_classes:
        schema = cls.GET_SCHEMA()
        info = cls.GET_NODE_INFO_V1()
        flags[schema.node_id] = bool(getattr(schema, "is_dev_only", False) or info.get("deprecated"))
    assert {nid for nid, hidden in flags.items() if hidden} == HIDDEN_NODES


def test_model_folder_registered(comfy_inprocess):
    nodes = importlib.import_module("rewardloop.nodes")
    modelfiles = importlib.import_module("rewardloop.modelfiles")
    nodes.register_model_folders()
    folders = comfy_inprocess.get_folder_paths(modelfiles.FOLDER_KEY)
    assert any(f.endswith("rewardloop") for f in folders)
    runtime = importlib.import_module("rewardloop.nodes.runtime")
    assert [str(p) for p in runtime.get().rewards.roots.paths()] == folders
