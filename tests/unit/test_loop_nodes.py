"""Retry-loop nodes inside ComfyUI's real executor, in-process (no HTTP): expansion, caching, decisions, errors.

The server tests (tests/server/test_loop.py) run the same loop through a real server; these cover the cases that
need to look inside the process (which tensors stay alive, log records) and run in a few seconds.
"""
from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import weakref

import pytest
import torch

from rewardloop import gating
from rewardloop.gating import perturb

SIZE, FRAMES, THRESHOLD = 64, 9, 0.85


def ssim_min(a, b):
    """Keyframe SSIM (the pack's SSIM, Wang settings), worst of the anchors."""
    from rewardloop.rewards.keyframe_ssim import ssim

    return float(ssim(a, b).min())


class Harness:
    def __init__(self, execution, comfy_nodes, loop_module, io):
        self.execution, self.comfy_nodes, self.loop, self.io = execution, comfy_nodes, loop_module, io
        self.counts: dict[str, int] = {}
        self.sink: dict | None = None
        self.frames_seen: list[weakref.ref] = []
        self.peak_alive = 0
        self.watch_memory = False
        self.events: list[tuple[str, object]] = []
        self.fail_at: int | None = None
        self.interrupt_at: int | None = None
        self.nan_attempts: set[int] = set()

    # the executor's server interface
    client_id = None
    last_node_id = None

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))

    def send_progress_text(self, text, node_id, sid=None):
        self.events.append(("text", (node_id, text)))

    def loop_events(self):
        return [d for e, d in self.events if e == "rewardloop.loop"]

    def executor(self, cache="classic"):
        kind = {"classic": self.execution.CacheType.CLASSIC, "none": self.execution.CacheType.NONE}[cache]
        return self.execution.PromptExecutor(self, cache_type=kind, cache_args={"ram": 0, "lru": 0})

    def run(self, prompt, executor=None, prompt_id="p"):
        self.sink, self.events = None, []
        ex = executor or self.executor()
        ex.execute(prompt, prompt_id, {}, ["sink"])
        return ex

    def validate(self, prompt):
        return asyncio.run(self.execution.validate_prompt("v", prompt, None))


def make_test_nodes(h: Harness):
    io = h.io

    def count(name):
        h.counts[name] = h.counts.get(name, 0) + 1

    class RLTestScene(io.ComfyNode):  # the anchors, outside the loop body
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="RLTestScene", category="test",
                             inputs=[io.Int.Input("n"), io.Int.Input("first", default=0, optional=True),
                                     io.Int.Input("last", default=-1, optional=True)],
                             outputs=[io.Image.Output("frames")])

        @classmethod
        def execute(cls, n, first=0, last=-1):
            count("scene")
            from rewardloop.motion import scene

            times = scene.frame_times(n)[first:(last + 1) or None]
            return io.NodeOutput(scene.render_scene(times, SIZE, SIZE, 0, "pan"))

    class RLTestReward(io.ComfyNode):  # keyframe SSIM; misbehaves on request (error / NaN / interrupt)
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="RLTestReward", category="test",
                             inputs=[io.Image.Input("frames"), io.Image.Input("keys"),
                                     io.Int.Input("attempt", force_input=True)],
                             outputs=[io.Float.Output("reward")])

        @classmethod
        def execute(cls, frames, keys, attempt):
            count("reward")
            h.frames_seen.append(weakref.ref(frames))
            if h.watch_memory:  # reference counting frees tensors at once; no gc pass needed
                h.peak_alive = max(h.peak_alive, sum(ref() is not None for ref in h.frames_seen))
            if attempt == h.fail_at:
                raise RuntimeError("generator exploded")
            if attempt == h.interrupt_at:
                h.comfy_nodes.interrupt_processing(True)
            if attempt in h.nan_attempts:
                return io.NodeOutput(float("nan"))
            return io.NodeOutput(ssim_min(frames[[0, -1]], keys[[0, -1]]))

    class RLTestSink(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="RLTestSink", category="test", is_output_node=True,
                             inputs=[io.Image.Input("frames"), io.Float.Input("reward", force_input=True),
                                     io.Int.Input("attempt", force_input=True),
                                     io.Boolean.Input("passed", force_input=True),
                                     io.String.Input("log", force_input=True)], outputs=[])

        @classmethod
        def execute(cls, frames, reward, attempt, passed, log):
            count("sink")
            h.sink = dict(frames=frames, reward=reward, attempt=attempt, passed=passed, log=json.loads(log))
            return io.NodeOutput()

    return [RLTestScene, RLTestReward, RLTestSink]


def import_comfy(name):
    """Import a ComfyUI top-level module. `python -m pytest` run from the pack root puts the root on sys.path,
    where our `nodes/` package would shadow ComfyUI's `nodes` module: import with the root hidden."""
    import os
    import sys
    from pathlib import Path

    PACK_ROOT = Path(__file__).resolve().parents[2]
    hidden = [p for p in sys.path if os.path.realpath(p or os.getcwd()) == str(PACK_ROOT)]
    saved = list(sys.path)
    try:
        sys.path[:] = [p for p in sys.path if p not in hidden]
        module = importlib.import_module(name)
    finally:
        sys.path[:] = saved
    assert not module.__file__.startswith(str(PACK_ROOT)), module.__file__
    return module


def loop_harness(extra_nodes=lambda harness: []):
    """A Harness with the loop nodes, the test nodes and `extra_nodes(harness)` registered in ComfyUI's node table,
    the loop's progress messages going to the harness (a generator, for fixtures)."""
    comfy_nodes = import_comfy("nodes")  # ComfyUI's, not the pack's
    execution = import_comfy("execution")
    from comfy_api.latest import io

    loop = importlib.import_module("rewardloop.nodes.retry")
    harness = Harness(execution, comfy_nodes, loop, io)
    for cls in [*loop.NODES, *make_test_nodes(harness), *extra_nodes(harness)]:
        comfy_nodes.NODE_CLASS_MAPPINGS[cls.GET_SCHEMA().node_id] = cls
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "_server", lambda: harness)
        yield harness


@pytest.fixture(scope="module")
def h(comfy_inprocess):
    yield from loop_harness()


@pytest.fixture(autouse=True)
def reset(h):
    h.counts.clear()
    h.frames_seen.clear()
    h.peak_alive = 0
    h.watch_memory = False
    h.fail_at = h.interrupt_at = None
    h.nan_attempts = set()
    h.comfy_nodes.interrupt_processing(False)


def loop_prompt(seed, max_retries=5, p=0.4, mode="first_pass", threshold=THRESHOLD, policy="hash"):
    return {
        "scene": {"class_type": "RLTestScene", "inputs": {"n": FRAMES}},
        "open": {"class_type": "RewardLoopRetryOpen",
                 "inputs": {"seed": seed, "threshold": threshold, "max_retries": max_retries, "mode": mode,
                            "seed_policy": policy, "reward_range": "0..1"}},
        "gen": {"class_type": "RewardLoopPerturbedScene",
                "inputs": {"width": SIZE, "height": SIZE, "length": FRAMES, "scene_seed": 0, "motion": "pan",
                           "keyframe_every": 0, "first_frame": 0, "last_frame": -1, "seed": ["open", 2],
                           "pass_probability": p}},
        "reward": {"class_type": "RLTestReward",
                   "inputs": {"frames": ["gen", 0], "keys": ["scene", 0], "attempt": ["open", 1]}},
        "close": {"class_type": "RewardLoopRetryClose",
                  "inputs": {"loop": ["open", 0], "frames": ["gen", 0], "reward": ["reward", 0],
                             "breakdown": ["gen", 2]}},
        "sink": {"class_type": "RLTestSink",
                 "inputs": {"frames": ["close", 0], "reward": ["close", 1], "attempt": ["close", 2],
                            "passed": ["close", 3], "log": ["close", 4]}},
    }


def expected_goods(seed, attempts, p=0.4, policy="hash", seed_limit=gating.SEED_MAX):
    """Ground truth of the generator: which attempts draw the small warp (seeds kept within seed_limit, as the loop
    keeps them within the range of the generator's seed input)."""
    s = gating.make_settings(THRESHOLD, attempts - 1, seed_policy=policy, base_seed=seed, seed_limit=seed_limit)
    return [perturb.segment_draw(s.seed(k), 0, p, SIZE)[0] for k in range(attempts)]


def seed_with_first_pass_at(k, p=0.4, start=0, seed_limit=gating.SEED_MAX):
    """A base seed whose first 'good' draw is attempt k."""
    seed = start
    while True:
        goods = expected_goods(seed, k + 1, p, seed_limit=seed_limit)
        if goods.index(True) == k if True in goods else False:
            return seed
        seed += 1


def test_stops_at_the_first_passing_attempt_and_reruns_only_the_body(h):
    seed = seed_with_first_pass_at(2)
    h.run(loop_prompt(seed))
    log = h.sink["log"]
    assert [a["passed"] for a in log["attempts"]] == [False, False, True]
    assert h.sink["passed"] is True and h.sink["attempt"] == 2 and h.sink["reward"] >= THRESHOLD
    assert log["stop_reason"] == "passed" and log["chosen_attempt"] == 2
    seeds = [a["seed"] for a in log["attempts"]]
    assert seeds[0] == seed and len(set(seeds)) == 3
    assert len({round(a["reward"], 6) for a in log["attempts"]}) == 3  # distinct outputs
    assert all(a["breakdown"]["expected_pass"] == a["passed"] for a in log["attempts"])
    assert h.counts == {"scene": 1, "reward": 3, "sink": 1}  # the anchor node outside the body ran once
    events = h.loop_events()
    assert [e["attempt"] for e in events] == [0, 1, 2]  # one per attempt; the last one carries the decision
    assert events[-1]["done"] and events[-1]["chosen_attempt"] == 2 and events[0]["node_id"] == "close"
    status = [d for e, d in h.events if e == "rewardloop.status" and d["node_id"] == "close"]
    assert status[0]["text"].startswith("attempt 1/6, best") and not status[0]["final"]
    # the verdict replaces the "running attempt k" line and stays after the run
    assert status[-1]["text"].startswith("done after 3/6 attempts") and status[-1]["final"]


def test_requeue_of_the_same_prompt_is_served_from_cache(h):
    ex = h.executor()
    seed = seed_with_first_pass_at(1, start=100)
    h.run(loop_prompt(seed), ex)
    first = dict(h.counts)
    h.run(loop_prompt(seed), ex, prompt_id="again")
    assert h.counts == first and h.sink is None  # nothing ran the second time
    h.run(loop_prompt(seed, p=0.41), ex, prompt_id="changed")  # a changed body input re-runs the loop
    assert h.counts["reward"] > first["reward"] and h.counts["scene"] == 1 and h.sink is not None


def test_returns_the_best_attempt_when_none_passes_and_never_exceeds_max_retries(h):
    h.run(loop_prompt(7, max_retries=3, p=0.0))
    log = h.sink["log"]
    rewards = [a["reward"] for a in log["attempts"]]
    assert len(rewards) == 4 and log["stop_reason"] == "exhausted" and not h.sink["passed"]
    best = max(range(4), key=lambda i: rewards[i])
    assert h.sink["attempt"] == best and h.sink["reward"] == pytest.approx(rewards[best])
    assert h.counts["reward"] == 4


def test_best_of_runs_every_attempt(h):
    h.run(loop_prompt(3, max_retries=4, p=0.5, mode="best_of"))
    log = h.sink["log"]
    assert log["attempts_run"] == 5 and h.counts["reward"] == 5
    assert h.sink["attempt"] == max(range(5), key=lambda i: log["attempts"][i]["reward"])


def test_max_retries_zero_runs_once_and_huge_is_capped(h):
    h.run(loop_prompt(1, max_retries=0, p=0.0))
    assert h.sink["log"]["attempts_run"] == 1
    h.run(loop_prompt(1, max_retries=5000, p=0.0))
    log = h.sink["log"]
    assert log["attempts_run"] == gating.MAX_RETRIES + 1 and log["settings"]["capped"]
    assert log["settings"]["max_retries_requested"] == 5000
    # ids grow linearly with attempts (copies are named after the original node ids)
    deepest = max((e["node"] for e in h.loop_events()), key=len)
    assert len(deepest) < 20 * (gating.MAX_RETRIES + 1)


def test_nan_reward_is_a_failed_attempt_and_never_chosen_over_a_finite_one(h):
    h.nan_attempts = {0, 2}
    h.run(loop_prompt(5, max_retries=3, p=0.0))
    attempts = h.sink["log"]["attempts"]
    assert [a["reward"] is None for a in attempts] == [True, False, True, False]
    assert "nan" in attempts[0]["failed_reason"].lower()
    assert h.sink["attempt"] in (1, 3) and h.sink["reward"] == h.sink["reward"]  # not NaN


def test_memory_is_flat_over_attempts(h):
    """With ComfyUI's output cache off (--cache-none), nothing but the loop can hold earlier attempts. While the
    loop runs at most three candidates are alive (attempt 0, the input of the user's close node; the best so far;
    the current one) whatever the number of attempts; afterwards only the chosen one (held by the sink)."""
    h.watch_memory = True
    for retries in (3, 9):
        h.frames_seen.clear()
        h.peak_alive = 0
        h.run(loop_prompt(9 + retries, max_retries=retries, p=0.0), h.executor("none"))
        gc.collect()
        alive = [i for i, ref in enumerate(h.frames_seen) if ref() is not None]
        assert len(h.frames_seen) == retries + 1 and alive == [h.sink["attempt"]]
        assert h.peak_alive <= 3, (retries, h.peak_alive)


def test_nested_loops(h):
    """A loop inside another loop's body: the inner loop restarts (fresh run) on every outer attempt."""
    p = loop_prompt(5, max_retries=2, p=0.3)
    p["outer_open"] = {"class_type": "RewardLoopRetryOpen",
                       "inputs": {"seed": 77, "threshold": 0.99, "max_retries": 2, "mode": "best_of",
                                  "seed_policy": "hash", "reward_range": "0..1"}}
    p["open"]["inputs"]["seed"] = ["outer_open", 2]
    p["outer_reward"] = {"class_type": "RLTestReward",
                         "inputs": {"frames": ["close", 0], "keys": ["scene", 0], "attempt": ["outer_open", 1]}}
    p["outer_close"] = {"class_type": "RewardLoopRetryClose",
                        "inputs": {"loop": ["outer_open", 0], "frames": ["close", 0], "reward": ["outer_reward", 0]}}
    p["sink"]["inputs"].update(frames=["outer_close", 0], reward=["outer_close", 1], attempt=["outer_close", 2],
                               passed=["outer_close", 3], log=["outer_close", 4])
    h.run(p)
    outer = h.sink["log"]
    assert outer["attempts_run"] == 3
    inner = [e for e in h.loop_events() if e["node_id"] == "close"]
    starts = [i for i, e in enumerate(inner) if e["attempt"] == 0]
    assert len(starts) == 3  # one inner loop per outer attempt
    # each inner loop starts from the seed the outer attempt handed it
    assert [inner[i]["seed"] for i in starts] == [a["seed"] for a in outer["attempts"]]
    assert h.counts["reward"] == len(inner) + 3


def test_body_error_on_attempt_3_surfaces_and_keeps_the_earlier_log(h, caplog):
    h.fail_at = 2
    with caplog.at_level(logging.INFO, logger="rewardloop.loop"):
        ex = h.run(loop_prompt(11, max_retries=5, p=0.0))
    assert not ex.success and h.sink is None
    errors = [d for e, d in ex.status_messages if e == "execution_error"]
    assert errors and "generator exploded" in errors[0]["exception_message"]
    events = h.loop_events()
    assert [e["attempt"] for e in events] == [0, 1] and events[-1]["next_attempt"] == 2
    started = [r.getMessage() for r in caplog.records if "starting attempt 3/6" in r.getMessage()]
    assert started and '"attempt": 1' in started[0]  # the earlier attempts' log is in the console


def test_interrupt_stops_the_loop(h):
    h.interrupt_at = 1
    ex = h.run(loop_prompt(13, max_retries=5, p=0.0))
    assert not ex.success and any(e == "execution_interrupted" for e, _ in ex.status_messages)
    assert h.counts["reward"] == 2 and h.sink is None


def test_miswired_loop_is_a_clear_error(h):
    prompt = loop_prompt(2)
    prompt["close"]["inputs"]["frames"] = ["scene", 0]  # frames do not depend on the open node
    ex = h.run(prompt)
    errors = [d for e, d in ex.status_messages if e == "execution_error"]
    assert errors and "does not depend on the loop's open node" in errors[0]["exception_message"]


@pytest.mark.parametrize("change, message", [
    (dict(threshold=1.5), "outside [0, 1]"),
    (dict(threshold=-0.2), "outside [0, 1]"),
    (dict(max_retries=-1), "max_retries must be >= 0"),
])
def test_bad_settings_are_rejected_before_running(h, change, message):
    prompt = loop_prompt(1)
    prompt["open"]["inputs"].update(change)
    ok, error, outputs, node_errors = h.validate(prompt)
    assert not ok
    assert message in json.dumps(node_errors["open"]["errors"])


def test_unbounded_reward_range_accepts_large_thresholds(h):
    prompt = loop_prompt(1)
    prompt["open"]["inputs"].update(threshold=3.0, reward_range="unbounded")
    assert h.validate(prompt)[0]


def test_per_segment_gating_rerolls_only_failing_segments(h):
    """Four loops, one per segment between keyframes, joined: each segment is retried on its own."""
    frames, every, p = 33, 8, 0.6
    prompt = {"join": {"class_type": "RewardLoopJoinSegments", "inputs": {"overlap": 1}}}
    for i, (a, b) in enumerate(gating.segment_ranges(frames, every=every)):
        prompt.update({
            f"anchors{i}": {"class_type": "RLTestScene", "inputs": {"n": frames, "first": a, "last": b - 1}},
            f"open{i}": {"class_type": "RewardLoopRetryOpen",
                         "inputs": {"seed": 40 + i, "threshold": THRESHOLD, "max_retries": 4, "mode": "first_pass",
                                    "seed_policy": "hash", "reward_range": "0..1"}},
            f"gen{i}": {"class_type": "RewardLoopPerturbedScene",
                        "inputs": {"width": SIZE, "height": SIZE, "length": frames, "scene_seed": 0,
                                   "motion": "pan", "keyframe_every": every, "first_frame": a,
                                   "last_frame": b - 1, "seed": [f"open{i}", 2], "pass_probability": p}},
            f"reward{i}": {"class_type": "RLTestReward", "inputs": {"frames": [f"gen{i}", 0],
                                                                     "keys": [f"anchors{i}", 0],
                                                                     "attempt": [f"open{i}", 1]}},
            f"close{i}": {"class_type": "RewardLoopRetryClose",
                          "inputs": {"loop": [f"open{i}", 0], "frames": [f"gen{i}", 0],
                                     "reward": [f"reward{i}", 0]}},
        })
        prompt["join"]["inputs"].update({f"segment_{i + 1}": [f"close{i}", 0], f"log_{i + 1}": [f"close{i}", 4]})
    prompt["sink"] = {"class_type": "RLTestSink",
                      "inputs": {"frames": ["join", 0], "reward": ["close0", 1], "attempt": ["close0", 2],
                                 "passed": ["join", 1], "log": ["join", 2]}}
    h.run(prompt)
    summary = h.sink["log"]
    expected_runs = []
    for i in range(4):
        s = gating.make_settings(THRESHOLD, 4, base_seed=40 + i)
        goods = [perturb.segment_draw(s.seed(k), i, p, SIZE)[0] for k in range(5)]
        expected_runs.append(goods.index(True) + 1 if True in goods else 5)
    assert [seg["attempts_run"] for seg in summary["segments"]] == expected_runs
    assert h.counts["reward"] == sum(expected_runs) and h.counts["scene"] == 4
    assert max(expected_runs) > 1 and min(expected_runs) == 1  # some segments re-rolled, others not
    assert h.sink["frames"].shape == (frames, SIZE, SIZE, 3)
    assert h.sink["passed"] == all(r < 5 for r in expected_runs) == summary["all_passed"]


def test_join_segments_needs_segments_in_order(h):
    node = h.loop.RewardLoopJoinSegments
    seg = torch.zeros(5, 16, 16, 3)
    with pytest.raises(ValueError, match="in order"):
        node.execute(overlap=1, segment_1=seg, segment_3=seg)
    out = node.execute(overlap=1, segment_1=seg, segment_2=seg + 1, log_1=None, log_2=None)
    assert out.args[0].shape[0] == 9 and out.args[1] is True


def test_perturbed_scene_pass_probability_matches_its_draws():
    """The generator's contract: keyframe SSIM >= 0.85 exactly when the draw is 'good', and 'good' occurs with
    the requested probability (binomial check over 200 seeds)."""
    from rewardloop.motion import scene

    clean = scene.render_scene(scene.frame_times(FRAMES), SIZE, SIZE, 0, "pan")
    goods = 0
    for seed in range(200):
        good, _ = perturb.segment_draw(seed, 0, 0.4, SIZE)
        goods += good
        if seed < 40:
            frames, draws = perturb.perturbed_scene(FRAMES, SIZE, SIZE, 0, "pan", seed, 0.4)
            assert draws[0]["good"] == good
            assert (ssim_min(frames[[0, -1]], clean[[0, -1]]) >= THRESHOLD) == good
    assert 0.4 - 3 * (0.24 / 200) ** 0.5 < goods / 200 < 0.4 + 3 * (0.24 / 200) ** 0.5


def test_perturbed_segments_match_the_whole_clip():
    whole, draws = perturb.perturbed_scene(17, SIZE, SIZE, 0, "pan", 42, 0.5, keyframe_every=8)
    assert [d["segment"] for d in draws] == [0, 1]
    for d in draws:
        part, own = perturb.perturbed_scene(17, SIZE, SIZE, 0, "pan", 42, 0.5, keyframe_every=8,
                                            first_frame=d["first_frame"], last_frame=d["last_frame"])
        assert own == [d]
        inner = slice(d["first_frame"] + 1, d["last_frame"])  # shared keyframes may take the neighbour's warp
        assert torch.equal(part[1:-1], whole[inner])
    with pytest.raises(ValueError, match="frame range"):
        perturb.perturbed_scene(17, SIZE, SIZE, 0, "pan", 1, 0.5, first_frame=5, last_frame=20)
    with pytest.raises(ValueError, match="pass_probability"):
        perturb.segment_draw(1, 0, 1.5, SIZE)


# ---- one-node best-of-N sampler on ComfyUI's real sampler + the tiny Wan models --------------------------
@pytest.fixture(scope="module")
def tiny_wan(h, tmp_path_factory):
    import comfy.sd
    import comfy.utils
    from tiny_models import write_tiny_wan

    paths = write_tiny_wan(tmp_path_factory.mktemp("models"))
    model = comfy.sd.load_diffusion_model(str(paths["dit"]))
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(paths["vae"])))
    gen = torch.Generator().manual_seed(0)
    cond = lambda: [[torch.randn(1, 8, 4096, generator=gen), {}]]  # noqa: E731  (UMT5-shaped, see testpack)
    latent = {"samples": torch.zeros(1, 16, 2, 4, 4)}  # 32x32, 5 frames: the VAE decode dominates on CPU
    return dict(model=model, vae=vae, positive=cond(), negative=cond(), latent_image=latent)


def best_of_n(h, tiny_wan, **kw):
    args = dict(tiny_wan, seed=5, steps=2, cfg=3.0, sampler_name="euler", scheduler="simple", denoise=1.0,
                candidates=3, batch_size=1, reward="keyframe_ssim", threshold=0.85, mode="best_of",
                seed_policy="hash", reward_range="0..1",
                keyframes=torch.linspace(0, 1, 32 * 32 * 3).view(1, 32, 32, 3).expand(2, 32, 32, 3).contiguous())
    args.update(kw)
    node = importlib.import_module("rewardloop.nodes.best_of_n").RewardLoopBestOfN
    clone = node.PREPARE_CLASS_CLONE({h.io.Hidden.unique_id: "bon"})
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        return clone.execute(**args)


@torch.inference_mode()
def plain_ksampler(h, tiny_wan, seed):
    (latent,) = h.comfy_nodes.common_ksampler(tiny_wan["model"], seed, 2, 3.0, "euler", "simple", tiny_wan["positive"],
                                              tiny_wan["negative"], tiny_wan["latent_image"])
    return importlib.import_module("rewardloop.nodes.best_of_n").decode(tiny_wan["vae"], latent["samples"])


def test_best_of_n_keeps_the_best_candidate_and_matches_a_plain_ksampler(h, tiny_wan):
    out = best_of_n(h, tiny_wan)
    frames, latent, reward, chosen, passed, log_json = out.args
    log = json.loads(log_json)
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == torch.float32
    rewards = [a["reward"] for a in log["attempts"]]
    assert len(rewards) == 3 and chosen == max(range(3), key=lambda i: rewards[i]) and reward == rewards[chosen]
    assert passed == (reward >= 0.85)
    seed = log["attempts"][chosen]["seed"]
    assert torch.equal(frames, plain_ksampler(h, tiny_wan, seed))  # the logged seed reproduces the choice
    assert latent["samples"].shape == (1, 16, 2, 4, 4)
    series = out.ui["rewardloop_chart"][0]["series"][0]
    assert series["y"] == pytest.approx(rewards) and series["x"] == [1, 2, 3]  # candidates counted from 1
    assert [e["attempt"] for e in h.loop_events()][-3:] == [0, 1, 2]


def test_best_of_n_batched_equals_one_at_a_time_and_exits_early(h, tiny_wan):
    single = best_of_n(h, tiny_wan, seed=9, candidates=2)
    batched = best_of_n(h, tiny_wan, seed=9, candidates=2, batch_size=2)
    assert single.args[3] == batched.args[3]
    assert torch.allclose(single.args[0], batched.args[0], atol=1e-4)
    assert [a["seed"] for a in json.loads(batched.args[5])["attempts"]] == \
        [a["seed"] for a in json.loads(single.args[5])["attempts"]]
    early = best_of_n(h, tiny_wan, seed=9, mode="first_pass", threshold=-1.0, reward_range="unbounded", candidates=4)
    log = json.loads(early.args[5])
    assert log["attempts_run"] == 1 and log["stop_reason"] == "passed" and early.args[4] is True


def test_best_of_n_halves_the_batch_when_out_of_memory(h, tiny_wan, monkeypatch):
    import comfy.model_management
    import comfy.sample

    real, sizes = comfy.sample.sample, []

    def small_memory(model, noise, *args, **kw):
        sizes.append(noise.shape[0])
        if noise.shape[0] > 1:
            raise comfy.model_management.OOM_EXCEPTION("simulated out of memory")
        return real(model, noise, *args, **kw)

    monkeypatch.setattr(comfy.sample, "sample", small_memory)
    single = best_of_n(h, tiny_wan, seed=21, candidates=2)
    assert sizes == [1, 1]
    sizes.clear()
    batched = best_of_n(h, tiny_wan, seed=21, candidates=2, batch_size=2)
    assert sizes == [2, 1, 1] and torch.equal(single.args[0], batched.args[0])


def test_best_of_n_without_keyframes_logs_not_applicable_instead_of_crashing(h, tiny_wan):
    out = best_of_n(h, tiny_wan, keyframes=None, candidates=1)
    log = json.loads(out.args[5])
    assert out.args[4] is False and all(a["reward"] is None for a in log["attempts"])
    assert "no keyframes" in log["attempts"][0]["breakdown"]["note"]
    with pytest.raises(ValueError, match="keyframe_positions"):
        best_of_n(h, tiny_wan, keyframe_positions="first and last")
