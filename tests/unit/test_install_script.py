"""install.py decides what ComfyUI-Manager's install step adds beside requirements.txt."""
from __future__ import annotations

import importlib.util

from pack_info import PACK_ROOT


def load_install(monkeypatch, installed: set[str]):
    spec = importlib.util.spec_from_file_location("rewardloop_install", PACK_ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "_installed", lambda dist: dist in installed)
    return module


def test_fresh_env_gets_facenet_without_deps_and_opencv(monkeypatch):
    plan = [" ".join(c[3:]) for c in load_install(monkeypatch, set()).planned_commands()]
    assert any("--no-deps" in c and "facenet-pytorch==2.6.0" in c for c in plan), plan
    assert any("opencv-python" in c for c in plan), plan


def test_existing_headless_opencv_is_left_alone(monkeypatch):
    plan = [" ".join(c) for c in load_install(monkeypatch, {"opencv-python-headless"}).planned_commands()]
    assert not any("opencv" in c for c in plan), plan


def test_nothing_to_do_when_present(monkeypatch):
    assert load_install(monkeypatch, {"facenet-pytorch", "opencv-python"}).planned_commands() == []
