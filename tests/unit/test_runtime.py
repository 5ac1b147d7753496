"""The runtime object: one RewardRuntime holds every model, cache and worker of the reward/motion core, and its
clear() (what Free Reward Models calls) releases all of it, RAFT included: weak references die and the memory of
the loaded networks comes back. Nothing changes the process environment."""
from __future__ import annotations

import gc
import importlib
import os
import weakref

import pytest
import torch

from rewardloop.modelfiles import ModelRoots
from rewardloop.motion import optical_flow
from rewardloop.rewards import Clip, RewardRuntime, composite, models, score


def _random_raft(root):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    (root / "raft").mkdir(parents=True, exist_ok=True)
    torch.save(raft_small(weights=None).state_dict(), root / "raft" / "raft_small_C_T_V2-01064c6d.pth")
    return root


def _live_tensor_bytes() -> int:
    """Bytes of every tensor storage Python can still reach (parameters included)."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor) and obj.device.type != "meta":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _modules(value):
    """Every nn.Module inside a model-cache entry (tuples, OpenClip wrappers, sentence-transformers)."""
    if isinstance(value, torch.nn.Module):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _modules(v)
    elif isinstance(getattr(value, "model", None), torch.nn.Module):
        yield value.model


def test_clear_releases_every_model_cache_and_worker(reward_models, scene_frames, tmp_path):
    rt = RewardRuntime([reward_models.real, reward_models.tiny, _random_raft(tmp_path)])
    frames, reference = scene_frames[:20].clone(), scene_frames[20:40].clone()
    baseline = _live_tensor_bytes()

    clip = Clip(frames, keyframes=frames[[0, 19]], prompt="a town with a red car", reference=reference,
                flow_method="dis_fast", runtime=rt, share_analysis=True)
    weights = {"temporal_lpips": 1, "fvd_lite": 1, "clip_score": 1, "caption_consistency": 1, "identity_lock": 1,
               "aesthetic": 1, "keyframe_ssim": 1}
    options = {"clip_score": {"weights": reward_models.clip_file, "num_samples": 2},
               "aesthetic": {"clip_weights": reward_models.clip_file, "num_samples": 2},
               "caption_consistency": {"blip": reward_models.blip, "num_samples": 2}}
    agg, parts = composite(clip, weights, options)
    assert not agg.details["excluded"].get("fvd_lite", "").startswith("model files missing")
    optical_flow.compute_flow(frames[:1, :64, :64], frames[1:2, :64, :64], "raft", device="cpu", raft=rt.raft)
    held = rt.held()
    assert held["models"] >= 6 and held["raft_models"] == 1 and held["reference_features"] == 1
    assert held["analysis_caches"] == 1 and held["background_worker"]  # the composite prefetched its flow

    refs = [weakref.ref(m) for value in rt.models.values() for m in _modules(value)]
    refs.append(weakref.ref(rt.raft.get(torch.device("cpu"))))
    refs += [weakref.ref(features) for features in rt.reference_features.values()]
    refs.append(weakref.ref(clip.flow().forward))  # the clip's analysis, in the runtime's shared cache
    assert len(refs) >= 10
    loaded = _live_tensor_bytes() - baseline
    del clip, agg, parts

    assert rt.clear() == held["models"] + 1  # every network, RAFT included
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert not alive, f"still referenced after clear(): {[type(a).__name__ for a in alive]}"
    assert rt.held() == {"models": 0, "raft_models": 0, "blip_decoders": 0, "reference_features": 0,
                         "analysis_caches": 0, "background_worker": False}
    freed = baseline + loaded - _live_tensor_bytes()
    assert loaded > 50 * 2**20 and freed > 0.95 * loaded, (loaded, freed)


def test_runtimes_are_independent_and_the_cache_loads_once(reward_models):
    a, b = RewardRuntime(), RewardRuntime()
    net = models.lpips_model("alex", runtime=a)
    assert models.lpips_model("alex", runtime=a) is net and models.lpips_model("alex", runtime=b) is not net
    a.clear()
    assert b.models.keys() == [("lpips", "alex", False, "cpu")]


def test_model_roots_are_read_when_needed(tmp_path, reward_models):
    folders = []
    rt = RewardRuntime(lambda: folders)  # ComfyUI's folder list can change while the server runs
    with pytest.raises(FileNotFoundError):
        models.i3d_model(runtime=RewardRuntime(ModelRoots([tmp_path])))
    folders.append(reward_models.real)
    assert models.i3d_model(runtime=rt) is not None


def test_loading_text_models_leaves_the_environment_alone(reward_models, monkeypatch):
    """A process-wide HF_HUB_OFFLINE would change every other pack in the server: local folders load with
    local_files_only instead."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    before = dict(os.environ)
    kind, model = models.text_model(runtime=RewardRuntime())
    assert kind == "bi" and model is not None
    assert dict(os.environ) == before


def test_nodes_fed_one_tensor_share_its_analysis_and_others_do_not(scene_frames):
    rt = RewardRuntime()
    frames = scene_frames[:6].clone()

    def shared(clip: Clip) -> bool:  # whether `clip` sees what the first clip memoised
        return clip.memo(("marker",), lambda: None) is marker

    marker = Clip(frames, runtime=rt, share_analysis=True).memo(("marker",), object)
    assert shared(Clip(frames, runtime=rt, share_analysis=True))
    assert not shared(Clip(frames, runtime=rt))  # a plain Clip keeps its own analysis
    assert not shared(Clip(frames.clone(), runtime=rt, share_analysis=True))  # another tensor, another analysis
    assert not shared(Clip(frames, runtime=RewardRuntime(), share_analysis=True))
    rgba = torch.cat([frames, torch.ones(6, *frames.shape[1:3], 1)], -1)
    marker = Clip(rgba, runtime=rt, share_analysis=True).memo(("marker",), object)
    assert shared(Clip(rgba, runtime=rt, share_analysis=True))  # keyed on the IMAGE given, not its RGB view


def test_clear_cancels_queued_background_flow_and_the_clip_computes_it_itself(scene_frames):
    import threading

    rt = RewardRuntime()
    release = threading.Event()
    busy = rt.background().submit(release.wait)  # the one flow thread is busy: the prefetch below waits in line
    clip = Clip(scene_frames[:5], flow_method="dis_fast", runtime=rt)
    assert clip.prefetch_flow()
    clearing = threading.Thread(target=rt.clear)
    clearing.start()  # cancels the queued prefetch, then waits for the running task
    release.set()
    clearing.join(timeout=60)
    assert not clearing.is_alive() and busy.done() and not rt.held()["background_worker"]
    expected = optical_flow.bidirectional_flow(clip.analysis_frames(), "dis_fast").forward
    assert torch.equal(clip.flow().forward, expected)


def test_fvd_lite_reference_cache_works_in_inference_mode(reward_models, scene_frames, monkeypatch):
    """ComfyUI runs every node under torch.inference_mode(), whose tensors have no version counter: the reference
    features are keyed on the reference's values instead, so another tensor with the same values reuses them and
    an edit made in place is noticed."""
    from rewardloop.rewards import fvd_lite

    rt = RewardRuntime()
    calls = []  # i3d_features calls: the generated clip's ("gen", memoised by the clip) or a reference's ("ref")
    real = fvd_lite.i3d_features
    monkeypatch.setattr(fvd_lite, "i3d_features",
                        lambda c, *a, **k: calls.append("gen" if c.reference is not None else "ref") or real(c, *a, **k))
    clip = Clip(scene_frames[:20], reference=scene_frames[20:40], runtime=rt)
    plain = score("fvd_lite", clip, max_crops=2)
    assert calls == ["gen", "ref"]
    with torch.inference_mode():
        reference = scene_frames[20:40].clone()
        assert reference.is_inference()
        first = score("fvd_lite", clip.with_inputs(reference=reference), max_crops=2)
        assert calls == ["gen", "ref", "gen"] and first.value == plain.value  # same values: no reference pass
        reference.mul_(0.5)
        changed = score("fvd_lite", clip.with_inputs(reference=reference), max_crops=2)
    assert calls[3:] == ["gen", "ref"] and changed.value != first.value  # the edit made in place was noticed


def test_free_reward_models_node_frees_raft_and_every_reward_model(comfy_inprocess, reward_models, scene_frames,
                                                                   tmp_path, monkeypatch):
    """The node on the canvas: after Flow Visualize (RAFT) and a reward node ran, Free Reward Models leaves no
    model alive."""
    folder_paths = comfy_inprocess
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "rewardloop",
                        ([str(reward_models.real), str(_random_raft(tmp_path))], set()))
    runtime = importlib.import_module("rewardloop.nodes.runtime")
    motion_nodes = importlib.import_module("rewardloop.nodes.motion")
    reward_nodes = importlib.import_module("rewardloop.nodes.rewards")
    pack = runtime.get()
    pack.clear()
    frames = scene_frames[:3, :64, :64].clone()
    with torch.inference_mode():
        motion_nodes.RewardLoopFlowVisualize.execute(frames, "raft", 0.0)
        reward_nodes.TemporalLPIPS.execute(frames=scene_frames[:4].clone(), net="alex", flow_method="dis_fast",
                                           analysis_size=256, device="cpu")
    raft = weakref.ref(pack.rewards.raft.get(torch.device("cpu")))
    lpips = weakref.ref(models.lpips_model("alex", runtime=pack.rewards, spatial=True))
    assert pack.rewards.held()["raft_models"] == 1
    freed = reward_nodes.ClearRewardCache.execute().args[0]
    gc.collect()
    assert freed >= 2 and raft() is None and lpips() is None
    assert not any(pack.rewards.held().values())
