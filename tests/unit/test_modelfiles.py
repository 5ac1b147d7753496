from __future__ import annotations

import pytest

from rewardloop import modelfiles


def test_missing_weight_error_names_file_folder_and_source(tmp_path):
    modelfiles.set_model_roots([tmp_path / "a", tmp_path / "b"])
    try:
        with pytest.raises(modelfiles.WeightNotFound) as err:
            modelfiles.find_weight("clip", "ViT-B-32.safetensors", "Download it from the OpenAI CLIP release.")
        message = str(err.value)
        assert "ViT-B-32.safetensors" in message
        assert str(tmp_path / "a" / "clip") in message and str(tmp_path / "b" / "clip") in message
        assert "OpenAI CLIP release" in message
    finally:
        modelfiles.set_model_roots([])


def test_first_root_wins_and_listing_merges(tmp_path):
    for root, name in (("a", "x.safetensors"), ("b", "x.safetensors"), ("b", "y.pth")):
        (tmp_path / root / "lpips").mkdir(parents=True, exist_ok=True)
        (tmp_path / root / "lpips" / name).write_bytes(b"0")
    modelfiles.set_model_roots([tmp_path / "a", tmp_path / "b"])
    try:
        assert modelfiles.find_weight("lpips", "x.safetensors", "") == tmp_path / "a" / "lpips" / "x.safetensors"
        assert modelfiles.find_weight("lpips", "y.pth", "") == tmp_path / "b" / "lpips" / "y.pth"
        assert modelfiles.list_weights("lpips") == ["x.safetensors", "y.pth"]
    finally:
        modelfiles.set_model_roots([])


def test_env_var_roots(tmp_path, monkeypatch):
    modelfiles.set_model_roots([])
    monkeypatch.setenv("REWARDLOOP_MODELS_DIR", str(tmp_path))
    assert modelfiles.model_roots() == [tmp_path]
