"""rewards/corruptions.py: every corruption keeps the clip's shape, is reproducible from its seed, and breaks what
it says it breaks (the validity harness relies on these)."""
from __future__ import annotations

import pytest
import torch

from rewardloop.rewards import corruptions as C


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    from rewardloop.motion.scene import render_scene

    return render_scene(torch.linspace(0, 0.4, 24), 64, 48, seed=5, motion="pan")


def _boxes(frames):
    T = frames.shape[0]
    return torch.tensor([[16.0, 10.0, 40.0, 34.0]]).expand(T, 4).clone()


@pytest.mark.parametrize("name", [n for n in C.CORRUPTIONS if n != "identity_swap"])
def test_shape_range_and_reproducible(frames, name):
    kw = {"seed": 3} if "seed" in C.CORRUPTIONS[name].__code__.co_varnames else {}
    a, b = C.apply(name, frames, **kw), C.apply(name, frames, **kw)
    assert a.shape == frames.shape and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, frames), f"{name} left the clip unchanged"


def test_what_each_corruption_does(frames):
    T = frames.shape[0]
    shuffled = C.shuffle(frames, 1)
    assert not torch.equal(shuffled[0], frames[0]) and not torch.equal(shuffled[-1], frames[-1])
    assert torch.equal(C.loop(frames, 6)[6], frames[0]) and torch.equal(C.loop(frames, 6)[13], frames[1])
    pp = C.pingpong(frames, 4)  # 0 1 2 3 2 1 0 1 ...
    assert all(torch.equal(pp[i], frames[j]) for i, j in enumerate([0, 1, 2, 3, 2, 1, 0, 1]))
    seam = C.seam(frames, at=12, skip=5)  # frames 12..16 replay 7..11, then the clip is back on its own frames
    assert all(torch.equal(seam[t], frames[t - 5]) for t in range(12, 17))
    assert torch.equal(seam[:12], frames[:12].float()) and torch.equal(seam[17:], frames[17:].float())
    held = C.stutter(frames, 0)
    assert torch.equal(held[0], frames[0]) and torch.equal(held[-1], frames[-1])
    assert any(torch.equal(held[t], held[t - 1]) for t in range(1, T))
    jit = C.jitter(frames, 0)
    assert all(not torch.equal(jit[t], frames[t]) for t in range(T))  # every frame moves
    lit = C.lighting_jump(frames, at=10)
    assert torch.equal(lit[:10], frames[:10].float()) and not torch.allclose(lit[10:], frames[10:])
    swap = C.identity_swap(frames, _boxes(frames), torch.zeros(20, 20, 3), at=12)
    assert torch.equal(swap[:12], frames[:12].float())
    assert float((swap[12:, 20:30, 22:34] - frames[12:, 20:30, 22:34]).abs().mean()) > 0.05  # the box changed
    assert torch.equal(swap[12:, :, :10], frames[12:, :, :10].float())  # outside it nothing did


def test_bad_arguments_are_clear_errors(frames):
    with pytest.raises(ValueError, match="unknown corruption 'smear'"):
        C.apply("smear", frames)
    with pytest.raises(ValueError, match="seam needs 0 < skip <= at"):
        C.seam(frames, at=2, skip=5)
    with pytest.raises(ValueError, match="seam needs 0 < skip <= at <= 24 - skip"):  # the replay must fit
        C.seam(frames, at=frames.shape[0] - 3, skip=5)
