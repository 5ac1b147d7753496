"""The trust boundary's rules on their own: the bounded settings parser, path and file-name rules, outputs that
never replace a file, and the owner/workflow policies."""
from __future__ import annotations

import os

import pytest

from rewardloop.trust import (CODE_OPT_IN, CodeRefused, PathRefused, Policy, SettingsError, looks_like_path,
                              parse_settings, plain_name, publish, read_settings_file, resolve_inside)
from rewardloop.trust.paths import is_inside

# The ~420-byte "billion laughs" of the issue: 9 levels of 9 aliases, ~10^9 strings once expanded.
ALIAS_BOMB = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def test_settings_are_plain_yaml_or_json():
    assert parse_settings("optim: {warmup_steps: 50}\nrun: {seed: 3}", "extra_settings") == {
        "optim": {"warmup_steps": 50}, "run": {"seed": 3}}
    assert parse_settings('{"a": [1, 2.5, true, null]}', "x", syntax="json") == {"a": [1, 2.5, True, None]}
    assert parse_settings("day: 2024-01-01", "x") == {"day": "2024-01-01"}  # no date objects: JSON-serialisable
    assert parse_settings("", "x") is None


@pytest.mark.parametrize("text, rule", [
    (ALIAS_BOMB, "anchors and aliases"),
    ("a: &x 1\nb: 2", "anchors and aliases"),
    ("reward: !!python/object/apply:os.system ['touch /tmp/x']", "tags"),
    ("a: !!binary aGk=", "tags"),
    ("a: !custom x", "tags"),
    ("[" * 40 + "]" * 40, "deeper than 32"),
    ("x: " + "y" * 70_000, "at most 65,536"),
    ("a: [1, 2", "not valid YAML"),
])
def test_settings_refusals_name_the_input_and_the_rule(text, rule):
    assert len(ALIAS_BOMB) < 450
    with pytest.raises(SettingsError) as err:
        parse_settings(text, "extra_settings")
    assert str(err.value).startswith("extra_settings") and rule in str(err.value)


def test_json_and_config_files_are_bounded_too(tmp_path):
    with pytest.raises(SettingsError, match="deeper than 32"):
        parse_settings("[" * 5000 + "]" * 5000, "cfg.json", syntax="json")
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 600_000 + "1]")
    with pytest.raises(SettingsError, match="at most 1,048,576"):
        read_settings_file(big)
    (tmp_path / "c.yaml").write_text("run: &r {seed: 1}\nb: *r\n")
    with pytest.raises(SettingsError, match="c.yaml: YAML anchors"):
        read_settings_file(tmp_path / "c.yaml")


@pytest.mark.parametrize("name, ok", [
    ("my lora", "my lora.safetensors"), ("v1.2-final_x.safetensors", "v1.2-final_x.safetensors"),
    ("../../../../tmp/escape", None), ("sub/x", None), ("..\\x", None), ("%2e%2e/x", None), ("C:x", None),
    (".hidden", None), ("a\x00b", None), ("", None), ("~x", None), ("x" * 300, None),
])
def test_plain_names(name, ok):
    if ok:
        assert plain_name(name, "lora_name", ".safetensors") == ok
    else:
        with pytest.raises(PathRefused, match="^lora_name"):
            plain_name(name, "lora_name", ".safetensors")


def test_resolve_inside_folders_after_symlinks(tmp_path):
    inp, data, outside = tmp_path / "input", tmp_path / "datasets", tmp_path / "outside"
    for d in (inp, data, outside):
        d.mkdir()
    (data / "pairs.jsonl").write_text("{}")
    (outside / "secret.txt").write_text("secret")
    (inp / "link").symlink_to(outside, target_is_directory=True)
    (inp / "inner").symlink_to(data, target_is_directory=True)
    roots = [inp, data]
    found = resolve_inside("pairs.jsonl", "dataset", roots, what="the dataset folders", must_exist=True)
    assert found == data / "pairs.jsonl"  # looked up in each folder in order
    assert resolve_inside(str(data / "pairs.jsonl"), "dataset", roots, what="x") == data / "pairs.jsonl"
    assert resolve_inside("inner/pairs.jsonl", "dataset", roots, what="x") == data / "pairs.jsonl"
    for hostile, rule in [(str(outside / "secret.txt"), "outside"), ("link/secret.txt", "symbolic link"),
                          ("../outside/secret.txt", "'..'"), ("%2e%2e/outside/secret.txt", "URL-encoded"),
                          ("..\\outside\\secret.txt", "Windows separators"), ("C:/Windows/win.ini", "drive"),
                          ("secret.txt\x00.jsonl", "NUL"), ("~/secret.txt", "home"), ("file:///etc/passwd", "URL")]:
        with pytest.raises(PathRefused) as err:
            resolve_inside(hostile, "dataset", roots, what="the dataset folders", must_exist=True)
        assert str(err.value).startswith("dataset:") and rule in str(err.value), (hostile, str(err.value))
    with pytest.raises(PathRefused, match="was not found in the dataset folders"):
        resolve_inside("missing.jsonl", "dataset", roots, what="the dataset folders", must_exist=True)
    assert is_inside(inp / "inner" / "pairs.jsonl", [data]) and not is_inside(inp / "link", [inp])


def test_publish_never_replaces_another_file(tmp_path):
    def written(content: bytes):
        tmp = tmp_path / ".out.tmp"
        tmp.write_bytes(content)
        return tmp

    target = tmp_path / "lora.safetensors"
    assert publish(written(b"first"), target) == target
    second = publish(written(b"second"), target)
    assert second == tmp_path / "lora_00001.safetensors" and target.read_bytes() == b"first"
    assert publish(written(b"first"), target) == target  # the same content: nothing new is written
    assert publish(written(b"third"), target) == tmp_path / "lora_00002.safetensors"
    assert publish(written(b"forced"), target, overwrite=True) == target and target.read_bytes() == b"forced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora.safetensors", "lora_00001.safetensors",
                                                          "lora_00002.safetensors"]


def test_policies(tmp_path):
    (tmp_path / "loras").mkdir()
    owner = Policy.owner()
    assert owner.path("/anywhere/x", "run.lora_dir", "loras") == "/anywhere/x"
    owner.code("grpo.reward", "reward 'python'")
    canvas = Policy.workflow({"loras": [tmp_path / "loras"]}, picked=[tmp_path / "elsewhere.safetensors"], environ={})
    assert canvas.path(str(tmp_path / "loras"), "run.lora_dir", "loras") == str(tmp_path / "loras")
    assert canvas.path(str(tmp_path / "elsewhere.safetensors"), "model.weights", "models") == \
        os.path.realpath(tmp_path / "elsewhere.safetensors")  # picked from ComfyUI's list by the user
    with pytest.raises(PathRefused, match="run.lora_dir: '/anywhere' is a place outside ComfyUI's loras folders"):
        canvas.path("/anywhere", "run.lora_dir", "loras")
    with pytest.raises(PathRefused, match="chosen by the pack"):
        canvas.path("x", "run.something", "unknown")
    with pytest.raises(CodeRefused, match=f"grpo.reward: reward 'python' .*{CODE_OPT_IN}=1"):
        canvas.code("grpo.reward", "reward 'python'")
    Policy.workflow({}, environ={CODE_OPT_IN: "1"}).code("grpo.reward", "reward 'python'")


def test_looks_like_path():
    assert all(looks_like_path(t) for t in ["/etc/passwd", "~/p.txt", "../p", "prompts.txt", "C:\\p", "a%2e"])
    assert not any(looks_like_path(t) for t in ["a red fox", "a fox\n/etc/passwd", "", "a cat. a dog"])


def test_safetensors_with_the_same_tensors_and_metadata_are_the_same_content(tmp_path):
    """safetensors writes its metadata map in no fixed order: two exports of the same LoRA are still the same."""
    import json
    import struct

    from rewardloop.trust.paths import same_content

    def write(path, meta_order, data=b"\x00\x00\x80\x3f"):
        header = {"__metadata__": dict(meta_order), "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
        raw = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
        return path

    a = write(tmp_path / "a.safetensors", [("x", "1"), ("y", "2")])
    b = write(tmp_path / "b.safetensors", [("y", "2"), ("x", "1")])
    c = write(tmp_path / "c.safetensors", [("x", "1"), ("y", "2")], data=b"\x00\x00\x00\x40")
    assert a.read_bytes() != b.read_bytes() and same_content(a, b)
    assert not same_content(a, c)
