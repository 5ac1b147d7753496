"""Every node class builds a valid V3 schema: unique ids, the pack's id prefix and category tree."""
from __future__ import annotations

import importlib

import pytest

from pack_info import declared_node_ids


@pytest.fixture(scope="module")
def node_classes(comfy_inprocess):
    nodes = importlib.import_module("rewardloop.nodes")
    return nodes.all_node_classes()


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


def test_model_folder_registered(comfy_inprocess):
    nodes = importlib.import_module("rewardloop.nodes")
    modelfiles = importlib.import_module("rewardloop.modelfiles")
    nodes.register_model_folders()
    folders = comfy_inprocess.get_folder_paths(modelfiles.FOLDER_KEY)
    assert any(f.endswith("rewardloop") for f in folders)
    runtime = importlib.import_module("rewardloop.nodes.runtime")
    assert [str(p) for p in runtime.get().rewards.roots.paths()] == folders
