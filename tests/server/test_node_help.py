"""The node help panel of ComfyUI's frontend (1.32.9 and 1.58.1) asks the server for
/extensions/<pack>/docs/<NodeId>/<locale>.md, then /extensions/<pack>/docs/<NodeId>.md, where <pack> is the
second part of the node's python_module (custom_nodes.<folder>, anything after an "@" dropped). The real server
must answer that URL with the pack's page for every node, as markdown (the newer frontend treats an HTML answer as
missing)."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from node_docs import DOCS_DIR

from pack_info import declared_node_ids

pytestmark = pytest.mark.server


def help_url(info: dict) -> str:
    """What the frontends' NodeHelpService builds for a custom node (read from both bundles)."""
    parts = (info.get("python_module") or "").split(".")
    assert len(parts) >= 2 and parts[0] == "custom_nodes", info.get("python_module")
    return f"/extensions/{parts[1].split('@')[0]}/docs/{info['name']}.md"


def test_the_help_url_of_every_node_serves_its_page(comfy):
    info = comfy.object_info()
    for node_id in declared_node_ids():
        url = help_url(info[node_id])
        with urllib.request.urlopen(comfy.url + url, timeout=30) as r:
            assert r.status == 200, url
            assert "text/html" not in r.headers.get("Content-Type", ""), (url, r.headers.get("Content-Type"))
            body = r.read().decode()
        assert body == (DOCS_DIR / f"{node_id}.md").read_text(), url
        assert body.startswith(f"# {info[node_id]['display_name']}\n"), url


def test_an_unknown_page_is_a_404_not_the_app(comfy):
    info = comfy.object_info()
    url = help_url(dict(info[declared_node_ids()[0]], name="RewardLoopNoSuchNode"))
    with pytest.raises(urllib.error.HTTPError) as err:
        comfy.get_bytes(url)
    assert err.value.code == 404


def test_page_urls_cannot_leave_the_docs_folder(comfy):
    """The pages are served by aiohttp's static route of the pack's web folder: a crafted path must not reach
    other files of the pack (or anything else)."""
    base = help_url(comfy.object_info()[declared_node_ids()[0]]).rsplit("/docs/", 1)[0]
    for path in ("/docs/../../__init__.py", "/docs/%2e%2e/%2e%2e/__init__.py", "/docs/..%2f..%2f__init__.py"):
        try:
            body = comfy.get_bytes(base + path)
        except urllib.error.HTTPError as e:
            assert e.code in (400, 403, 404), (path, e.code)
        else:
            assert b"comfy_entrypoint" not in body, path
