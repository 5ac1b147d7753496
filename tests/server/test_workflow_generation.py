"""Every file in workflows/ is what its spec builds against this server's node definitions (layout, groups, note
and model links included): regenerate with tests/harness/make_workflows.py after changing a spec or a node."""
from __future__ import annotations

import pytest
from workflow_specs import all_specs, build_template, template_path
from workflows import load

pytestmark = pytest.mark.server


def test_every_workflow_file_is_what_its_spec_builds(comfy_api):
    info = comfy_api.object_info()  # API nodes on: the "Paid API - ..." workflows use them
    stale = [key for key in all_specs() if load(template_path(key)) != build_template(key, info)]
    assert stale == [], f"regenerate with tests/harness/make_workflows.py: {[template_path(k).name for k in stale]}"
