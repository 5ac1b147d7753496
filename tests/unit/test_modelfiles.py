from __future__ import annotations

import pytest

from rewardloop import modelfiles


def test_missing_weight_error_names_file_folder_and_source(tmp_path):
    roots = modelfiles.ModelRoots([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(modelfiles.WeightNotFound) as err:
        roots.find_weight("clip", "ViT-B-32.safetensors", "Download it from the OpenAI CLIP release.")
    message = str(err.value)
    assert "ViT-B-32.safetensors" in message
    assert str(tmp_path / "a" / "clip") in message and str(tmp_path / "b" / "clip") in message
    assert "OpenAI CLIP release" in message


def test_first_root_wins_and_listing_merges(tmp_path):
    for root, name in (("a", "x.safetensors"), ("b", "x.safetensors"), ("b", "y.pth")):
        (tmp_path / root / "lpips").mkdir(parents=True, exist_ok=True)
        (tmp_path / root / "lpips" / name).write_bytes(b"0")
    roots = modelfiles.ModelRoots([tmp_path / "a", tmp_path / "b"])
    assert roots.find_weight("lpips", "x.safetensors", "") == tmp_path / "a" / "lpips" / "x.safetensors"
    assert roots.find_weight("lpips", "y.pth", "") == tmp_path / "b" / "lpips" / "y.pth"
    assert roots.list_weights("lpips") == ["x.safetensors", "y.pth"]


def test_env_var_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("REWARDLOOP_MODELS_DIR", str(tmp_path))
    assert modelfiles.ModelRoots().paths() == [tmp_path]
    assert modelfiles.ModelRoots([]).paths() == [tmp_path]  # an empty folder list (ComfyUI's, before registration)
    assert modelfiles.ModelRoots(lambda: [tmp_path / "x"]).paths() == [tmp_path / "x"]  # read when asked


@pytest.mark.parametrize("name, rule", [("../lpips/x.safetensors", "'..'"), ("/etc/passwd", "not a file name inside"),
                                        ("sub/x.safetensors", "not a file name inside"), ("..", "'..'"),
                                        ("x\x00.pth", "NUL"), ("%2e%2e", "URL-encoded")])
def test_weight_names_from_a_workflow_stay_inside_their_folder(tmp_path, name, rule):
    """Scorer options (a workflow's options_json) name model files: nothing but a file directly in the folder is
    looked up, in every spelling."""
    (tmp_path / "lpips").mkdir()
    (tmp_path / "lpips" / "sac+logos.pth").write_bytes(b"0")
    (tmp_path / "x.safetensors").write_bytes(b"0")  # what "../x.safetensors" would reach
    roots = modelfiles.ModelRoots([tmp_path])
    for find in (roots.find_weight, roots.find_folder):
        with pytest.raises(ValueError, match=rule):
            find("lpips", name, "")
    assert roots.find_weight("lpips", "sac+logos.pth", "") == tmp_path / "lpips" / "sac+logos.pth"
