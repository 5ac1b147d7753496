"""Scoring a batch of clips: each shared analysis computed once for the whole batch, then the ordinary per-clip
scorers.

    clips = make_clips(frames, [{"prompt": p} for p in prompts], device="cuda")   # frames [B,T,H,W,C] or a list
    results = score_clips(clips, "composite", weights)                             # one RewardResult per clip

`score_clips` runs batched *prefetch* steps that put each clip's products into that clip's memo under exactly the
key its scorer reads, then calls the same `composite` / scorer functions a single clip goes through, which find them
there. So per-clip logic lives in one place, and a clip scores the same alone or in a batch (up to float round-off
of networks run on other batch sizes). The steps:
  1. optical flow of every pair of every clip (never across two clips) in one thread-pool map, on the runtime's
     background thread, while
  2. the scorers' model features run batched across clips on the main thread: CLIP image and text embeddings,
     BLIP captions and their text similarities, I3D crops, face detection (MTCNN) and embedding; then
  3. LPIPS over the pairs of all clips, which needs the flow.
Each scorer module with a batched feature path defines `prefetch(clips, **options)` taking the scorer's own options.
The factory's `reward_function(...).batch(frames, inputs)` is the usual way in.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future

import torch

from ..modelfiles import WeightNotFound
from ..motion import optical_flow
from .composite import DEFAULT_WEIGHTS, NAME as COMPOSITE, composite
from .context import PREFETCH_MAX_PIXELS, Clip, background_flow_workers
from .registry import MODULES, SCORERS, check_options, run
from .result import RewardResult
from .runtime import RewardRuntime, default_runtime

log = logging.getLogger(__name__)

# Inputs of a clip rather than settings shared by the batch.
CLIP_INPUTS = ("keyframes", "keyframe_positions", "prompt", "reference", "windows")
PREFETCHERS = {m.score.scorer.name: m.prefetch for m in MODULES if hasattr(m, "prefetch")}


def as_clip_list(frames) -> list[torch.Tensor]:
    """[B,T,H,W,C] or a sequence of [T,H,W,C] tensors -> a list of clips (views, no copy)."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 5:
            raise ValueError(f"a batch of clips must be [B,T,H,W,C] (or a list of [T,H,W,C] clips), got shape "
                             f"{tuple(frames.shape)}.")
        return list(frames.unbind(0))
    if isinstance(frames, (str, bytes)) or not isinstance(frames, Sequence):
        raise ValueError(f"a batch of clips must be a [B,T,H,W,C] tensor or a list of [T,H,W,C] tensors, got "
                         f"{type(frames).__name__}.")
    return list(frames)


def clip_inputs(inputs, count: int) -> list[dict]:
    """None, one dict of clip inputs for every clip, or one dict per clip -> `count` dicts (checked)."""
    if inputs is None:
        per_clip = [{} for _ in range(count)]
    elif isinstance(inputs, dict):
        per_clip = [dict(inputs) for _ in range(count)]
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        per_clip = [dict(i) for i in inputs]
        if len(per_clip) != count:
            raise ValueError(f"{len(per_clip)} sets of clip inputs given for {count} clips: give one per clip, or one "
                             "dict for all.")
    else:
        raise ValueError(f"clip inputs must be a dict (the same for every clip) or a list of dicts (one per clip), "
                         f"got {type(inputs).__name__}.")
    for i, item in enumerate(per_clip):
        unknown = sorted(set(item) - set(CLIP_INPUTS))
        if unknown:
            raise ValueError(f"clip {i}: unknown clip input(s) {unknown}; give any of {', '.join(CLIP_INPUTS)}")
    return per_clip


def make_clips(frames, inputs=None, *, runtime: RewardRuntime | None = None, **settings) -> list[Clip]:
    """One Clip per clip of `frames` (see `as_clip_list`), all in one runtime with the same `settings` (device,
    flow_method, analysis_size, precision ...); `inputs`: see `clip_inputs`. A bad clip raises ValueError naming it."""
    clips = as_clip_list(frames)
    per_clip = clip_inputs(inputs, len(clips))
    runtime = runtime if runtime is not None else default_runtime()
    out = []
    for i, (x, kw) in enumerate(zip(clips, per_clip)):
        try:
            out.append(Clip(x, runtime=runtime, **settings, **kw))
        except ValueError as err:
            raise ValueError(f"clip {i} of the batch: {err}") from None
    return out


def scorer_options(name: str, weights: dict[str, float] | None, options: dict | None) -> dict[str, dict]:
    """{scorer: its options} of what `name` (a scorer or "composite") runs."""
    options = dict(options or {})
    if name == COMPOSITE:
        weights = DEFAULT_WEIGHTS if weights is None else weights
        return {n: dict(options.get(n) or {}) for n in SCORERS if weights.get(n, 0) > 0}
    return {name: options}


def _groups(clips: list[Clip]) -> list[list[Clip]]:
    """Clips that can share network calls: the same runtime, device and precision."""
    groups: dict[tuple, list[Clip]] = {}
    for clip in clips:
        groups.setdefault((id(clip.runtime), str(clip.device), clip.precision), []).append(clip)
    return list(groups.values())


def start_flows(clips: list[Clip]) -> int:
    """Start the optical flow of the clips that need it on the runtime's background thread: all pairs of clips of one
    analysis size and method in one thread-pool map. Like `Clip.prefetch_flow`, only OpenCV flows, and at most
    PREFETCH_MAX_PIXELS pixel-pairs per batch (the rest compute when first needed, in the foreground, where progress
    and cancel work). Returns how many clips' flows were started."""
    groups: dict[tuple, list[Clip]] = {}
    for clip in clips:
        if clip.needs_flow() and clip.method != "raft":
            groups.setdefault((clip.analysis_hw, clip.method, str(clip.device), id(clip.runtime)), []).append(clip)
    started = 0
    for (hw, method, _, _), members in groups.items():
        chosen, pixels = [], 0
        for clip in members:
            if pixels + clip.num_pairs * hw[0] * hw[1] > PREFETCH_MAX_PIXELS:
                break
            chosen.append(clip)
            pixels += clip.num_pairs * hw[0] * hw[1]
        if not chosen:
            continue
        frames = [clip.analysis_frames() for clip in chosen]  # downscaled here, not on the worker thread
        pending = [Future() for _ in chosen]
        for clip, future in zip(chosen, pending):
            clip.expect_flow(future)
        job = chosen[0].runtime.background().submit(_flows, chosen, frames, method, background_flow_workers())
        job.add_done_callback(lambda job, pending=pending: _hand_out(job, pending))
        started += len(chosen)
    return started


def _flows(clips: list[Clip], frames: list[torch.Tensor], method: str, workers: int) -> list:
    pairs = optical_flow.bidirectional_flows(frames, method, workers=workers)
    return [optical_flow.FlowPair(p.forward.to(c.device, c.flow_dtype), p.backward.to(c.device, c.flow_dtype), method)
            for c, p in zip(clips, pairs)]


def _hand_out(job: Future, pending: list[Future]) -> None:
    """Each clip's share of a batch flow job; a cancelled job (the runtime was cleared) cancels them, so each clip
    computes its own flow when it needs it."""
    if job.cancelled():
        for future in pending:
            future.cancel()
        return
    error = job.exception()
    for i, future in enumerate(pending):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(job.result()[i])


def prefetch(clips: list[Clip], todo: dict[str, dict]) -> None:
    """Batched steps for the scorers in `todo` ({name: options}): the flow on the background thread, the model
    features batched across clips, then LPIPS (which needs the flow). A step that fails (a model file missing, an
    option the scorer will reject) is left to the per-clip scorer, which reports it as a single clip would."""
    if any("flow" in SCORERS[n].uses for n in todo):
        start_flows(clips)
    order = sorted((n for n in todo if n in PREFETCHERS), key=lambda n: "flow" in SCORERS[n].uses)
    for group in _groups(clips):
        for name in order:
            try:
                PREFETCHERS[name](group, **todo[name])
            except (WeightNotFound, ImportError, ValueError) as err:
                log.debug("batched %s skipped (%s); the clips compute it one by one", name, err)


def score_clips(clips: list[Clip], name: str, weights: dict[str, float] | None = None,
                options: dict | None = None) -> list[RewardResult]:
    """Reward `name` (a scorer or "composite") of every clip: batched prefetch, then the per-clip scorer or composite
    (whose results they equal)."""
    todo = scorer_options(name, weights, options)
    for scorer, opts in todo.items():
        check_options(scorer, opts)
    prefetch(clips, todo)
    if name == COMPOSITE:
        return [composite(clip, weights, options)[0] for clip in clips]
    return [run(name, clip, **todo[name]) for clip in clips]
