"""Reward-gated retry loop nodes (graph expansion): generate, evaluate, re-roll until the reward clears the
threshold, around any sub-graph placed between RewardLoopRetryOpen and RewardLoopRetryClose.

Mechanism (ComfyUI's own flow-control test pack does the same): when an attempt does not stop the loop, the close
node re-creates the body (every node downstream of the open node and upstream of the close node) with GraphBuilder,
plus a copy of the open node carrying the next attempt index and seed, plus a copy of itself, and returns links to
that copy's outputs. Nodes outside the body keep their cached results and run once.

Memory: a node that expands stays pending until its expansion answers, and ComfyUI keeps a pending node's input
values alive. So in the expanded attempts the candidate frames and reward go into a small collector node
(RewardLoopRetryCollect) that logs the attempt, keeps the frames only if they are the best so far, and finishes at
once; the close node's copy only receives the collector's small control object. The loop therefore holds the first
attempt's frames (input of the user's close node), the best so far and the current one: flat over attempts.

Paid API nodes in the body (ComfyUI's first/last-frame video nodes: any node class flagged as an API node). In
ComfyUI 0.3.75 an exception in any node ends the whole prompt, so a provider error would end the user's queue. When
the body holds API nodes, the close node's frames/reward inputs (lazy) are never evaluated on the user's graph:
every attempt, the first one included, runs in an expansion where each API node is replaced by a guard node
(RewardLoopProviderCall) that runs that very node class the way the executor does (same inputs, same hidden API
key) and turns its exception into a report. The collector waits for the guards' reports (links) and only asks for
the frames and reward (lazy inputs) when no provider failed; otherwise the attempt is logged as failed (error,
time, API calls) and the loop goes on. Only when every attempt failed does the close node raise. An interrupt is
never swallowed: it stops the loop at once.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import time

from comfy_api.latest import io

from .. import gating
from ..gating.body import consumers, find_body, is_link, remap_inputs, split_links
from ..gating import perturb
from ..gating.carry import LoopCarry, LoopControl, LoopRun, ProviderCall
from ..motion import scene
from ..rewards.chart import attempts_chart
from . import send_status

log = logging.getLogger("rewardloop.loop")

CATEGORY = "RewardLoop/Loop"
EVENT = "rewardloop.loop"
LoopType = io.Custom("REWARDLOOP_LOOP")
CarryType = io.Custom("REWARDLOOP_LOOP_CARRY")
ScoresType = io.Custom("REWARDLOOP_SCORES")
CallType = io.Custom("REWARDLOOP_PROVIDER_CALL")
ConstantsType = io.Custom("REWARDLOOP_NODE_INPUTS")
CLOSE_COPY_ID = "rl_close"  # GraphBuilder suffix of the close node's copy: keeps ids linear in the attempt count
COLLECT_NODE_ID = "RewardLoopRetryCollect"
GUARD_NODE_ID = "RewardLoopProviderCall"
LINK_PREFIX = "in:"        # a guard's inputs named after the guarded node's linked inputs
CALL_PREFIX = "call:"      # a collector's inputs carrying the guards' reports
MAX_PROVIDER_OUTPUTS = 8
LAZY_RESULTS = ("frames", "reward", "breakdown", "scores")
# Hides a node from the node library while old workflows and graph expansion still run it. Newer ComfyUI has a
# dev-only flag for that; 0.3.75 only has "deprecated", which both frontends hide the same way.
INTERNAL_NODE = {"is_dev_only": True} if "is_dev_only" in io.Schema.__dataclass_fields__ else {"is_deprecated": True}


def _server():
    try:
        from server import PromptServer

        return PromptServer.instance
    except (ImportError, AttributeError):  # no server (in-process tests, scripts)
        return None


def _notify(display_id: str, text: str, data: dict | None = None, final: bool = False) -> None:
    """A status line on the node and a `rewardloop.loop` event, to the client that queued the prompt."""
    srv = _server()
    if srv is None:
        return
    send_status(display_id, text, final, srv)
    try:
        if data is not None:
            srv.send_sync(EVENT, data, srv.client_id)
    except Exception:  # a closed websocket must never fail the loop
        log.exception("RewardLoop: could not send loop progress")


def _display_id(dynprompt, unique_id: str) -> str:
    return dynprompt.get_display_node_id(unique_id) if dynprompt is not None else unique_id


def _check_interrupt() -> None:
    try:
        import comfy.model_management
    except ImportError:
        return
    comfy.model_management.throw_exception_if_processing_interrupted()


def _node_class(class_type):
    import nodes  # ComfyUI's node registry (the pack's own `nodes` package is only ever imported relatively)

    return nodes.NODE_CLASS_MAPPINGS.get(class_type)


def is_api_node(class_type) -> bool:
    """A V3 node class that ComfyUI flags as a paid API node (comfy_api_nodes/: Luma, Kling, Runway, Veo...)."""
    cls = _node_class(class_type) if isinstance(class_type, str) else None
    return cls is not None and bool(getattr(cls, "API_NODE", False)) and hasattr(cls, "PREPARE_CLASS_CLONE")


def _providers(dynprompt, body) -> list[str]:
    """Body nodes that call a paid API: API nodes (the user's graph) and their guards (earlier expansions)."""
    return [n for n in body if dynprompt.get_node(n)["class_type"] == GUARD_NODE_ID
            or is_api_node(dynprompt.get_node(n)["class_type"])]


def _input_max(class_type: str | None, name: str) -> int | None:
    cls = _node_class(class_type) if class_type else None
    try:
        spec = cls.INPUT_TYPES() if cls is not None else {}
    except Exception:  # a node whose INPUT_TYPES fails is the executor's problem, not the seed range's
        return None
    for group in ("required", "optional"):
        entry = (spec.get(group) or {}).get(name)
        if isinstance(entry, (list, tuple)) and len(entry) > 1 and isinstance(entry[1], dict):
            top = entry[1].get("max")
            if isinstance(top, int) and not isinstance(top, bool):
                return top
    return None


def _seed_limit(dynprompt, open_id: str) -> tuple[int, str | None]:
    """The largest seed that every input fed by the open node's attempt_seed accepts (Runway and Veo take 32-bit
    seeds, Vidu 31-bit), and which input sets it."""
    limit, by = gating.SEED_MAX, None
    for node_id, name in consumers(dynprompt.all_node_ids(), dynprompt.get_node, open_id, 2):
        node = dynprompt.get_node(node_id)
        class_type = node["class_type"]
        if class_type == GUARD_NODE_ID and name.startswith(LINK_PREFIX):
            class_type, name = node["inputs"].get("provider"), name[len(LINK_PREFIX):]
        top = _input_max(class_type, name)
        if top is not None and 0 < top < limit:
            limit, by = top, f"{class_type}.{name}"
    return limit, by


def _validate_settings(threshold=None, reward_range=None, max_retries=None, mode=None, seed_policy=None,
                       max_total_seconds=None, max_api_calls=None):
    try:
        if reward_range is not None and reward_range not in gating.REWARD_RANGES:
            raise ValueError(f"unknown reward_range {reward_range!r}; choose one of {', '.join(gating.REWARD_RANGES)}")
        if threshold is not None:
            gating.check_threshold(threshold, reward_range if reward_range is not None else "0..1")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 (0 runs the body once), got {max_retries}")
        if mode is not None and mode not in gating.MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(gating.MODES)}")
        if seed_policy is not None and seed_policy not in gating.SEED_POLICIES:
            raise ValueError(f"unknown seed_policy {seed_policy!r}; choose one of {', '.join(gating.SEED_POLICIES)}")
        if max_total_seconds is not None or max_api_calls is not None:
            gating.check_budget(0.0 if max_total_seconds is None else max_total_seconds,
                                0 if max_api_calls is None else max_api_calls)
    except ValueError as e:
        return str(e)
    return True


def _record(loop, frames, reward, breakdown=None, scores=None, calls=()) -> LoopControl:
    """Log one attempt into its loop run (created on attempt 0) and keep its frames if they are the best so far.
    `calls`: the reports of the attempt's guarded API nodes (time, errors); a failed one fails the attempt."""
    if not isinstance(loop, LoopControl):
        raise ValueError("'loop' must come from a RewardLoopRetryOpen node's 'loop' output")
    if loop.recorded:
        raise ValueError("this attempt was already recorded: connect the close node's 'loop' to the open node")
    run = loop.run if loop.run is not None else LoopRun(gating.RetryState(loop.settings))
    state = run.state
    if state.attempts_run != loop.attempt:
        raise ValueError(f"attempt {loop.attempt} arrived but {state.attempts_run} were logged; each open node must "
                         f"feed exactly one close node")
    error = "; ".join(f"{c.provider} (node {c.node}): {c.error}" for c in calls if c.error) or None
    best_before = state.best
    state.record(reward, seed=loop.seed, breakdown=scores if scores is not None else breakdown,
                 seconds=time.perf_counter() - loop.opened_at, provider_seconds=sum(c.seconds for c in calls),
                 api_calls=len(calls), error=error)
    run.keep(None if error else frames, improved=state.best != best_before)
    return dataclasses.replace(loop, run=run, recorded=True)


def _needed(results: dict) -> list[str]:
    """Lazy result inputs that are connected (present) but not evaluated yet (None)."""
    return [name for name in LAZY_RESULTS if name in results and results[name] is None]


class RewardLoopRetryOpen(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RewardLoopRetryOpen",
            display_name="Reward Retry Loop (open)",
            category=CATEGORY,
            description=(
                "Start of a reward-gated retry loop. Put your generator and a reward node between this node and "
                "Reward Retry Loop (close) and wire 'attempt seed' into the generator's seed: attempts whose reward "
                "is below the threshold are re-run with a new seed."),
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=gating.SEED_MAX, control_after_generate=True,
                             tooltip="Base seed: attempt 0 uses it as is; later attempts derive theirs (seed_policy)."),
                io.Float.Input("threshold", default=0.85, min=-1e6, max=1e6, step=0.01,
                               tooltip="An attempt passes when its reward is at least this (0.85 suits keyframe "
                                       "SSIM; 0.98 shows where a model breaks)."),
                io.Int.Input("max_retries", default=5, min=0, max=10000,
                             tooltip=f"Retries after the first attempt (0 = run once). Capped at "
                                     f"{gating.MAX_RETRIES}."),
                io.Combo.Input("mode", options=list(gating.MODES), default="first_pass",
                               tooltip="first_pass: stop at the first attempt that passes. best_of: run every "
                                       "attempt and keep the highest reward."),
                io.Combo.Input("seed_policy", options=list(gating.SEED_POLICIES), default="hash",
                               tooltip="hash: reproducible seeds far from neighbouring base seeds; increment: "
                                       "seed + attempt; random: fresh each attempt (logged)."),
                io.Combo.Input("reward_range", options=list(gating.REWARD_RANGES), default="0..1",
                               tooltip="0..1 for bounded rewards (SSIM, composites): the threshold must lie in "
                                       "[0, 1]. unbounded for rewards without that range."),
                CarryType.Input("carry", optional=True,
                                tooltip="Set by the loop itself on retries; leave unconnected."),
                io.Float.Input("max_total_seconds", default=0.0, min=0.0, max=1e7, step=1.0, optional=True,
                               tooltip="Time budget of the whole loop in seconds (0 = none): a retry starts only "
                                       "if what is left covers an attempt as long as the longest one so far."),
                io.Int.Input("max_api_calls", default=0, min=0, max=10000, optional=True,
                             tooltip="Budget of paid API calls (0 = none): each run of an API node inside the loop "
                                     "(one video generation request) counts one; no retry starts that could "
                                     "exceed it."),
            ],
            outputs=[
                LoopType.Output("loop", display_name="loop", tooltip="Connect to the close node's 'loop' input."),
                io.Int.Output("attempt", display_name="attempt",
                              tooltip="Index of this attempt, counted from 0 (the first attempt is 0)."),
                io.Int.Output("attempt_seed", display_name="attempt seed",
                              tooltip="Seed of this attempt: wire it into the generator."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
        )

    @classmethod
    def validate_inputs(cls, threshold=None, reward_range=None, max_retries=None, mode=None, seed_policy=None,
                        max_total_seconds=None, max_api_calls=None):
        # Linked inputs arrive as None here and are checked when the node runs. ComfyUI 0.3.75 does not check
        # V3 combo values itself, so mode / seed_policy / reward_range are checked here (400 on /prompt).
        return _validate_settings(threshold, reward_range, max_retries, mode, seed_policy, max_total_seconds,
                                  max_api_calls)

    @classmethod
    def execute(cls, seed, threshold, max_retries, mode, seed_policy, reward_range, carry=None,
                max_total_seconds=0.0, max_api_calls=0) -> io.NodeOutput:
        unique_id, dynprompt = cls.hidden.unique_id, cls.hidden.dynprompt
        display = _display_id(dynprompt, unique_id)
        if carry is None:
            limit, limited_by = _seed_limit(dynprompt, unique_id) if dynprompt is not None else (gating.SEED_MAX, None)
            settings = gating.make_settings(threshold, max_retries, mode, seed_policy, seed, reward_range,
                                            max_total_seconds, max_api_calls, limit)
            attempt, attempt_seed, run = 0, settings.seed(0), None
            if limited_by:
                log.info("RewardLoop loop at node %s: attempt seeds kept within 0..%d (the range of %s)", display,
                         limit, limited_by)
            if settings.capped:
                log.warning("RewardLoop loop at node %s: max_retries %d capped to %d", display, max_retries,
                            settings.max_retries)
        elif isinstance(carry, LoopCarry):
            # Every attempt of a run uses the settings attempt 0 made (its seed range included).
            settings = carry.run.state.settings
            attempt, attempt_seed, run = carry.attempt, carry.seed, carry.run
        else:
            raise ValueError("the 'carry' input of RewardLoopRetryOpen is set by the loop itself; disconnect it")
        _notify(display, f"attempt {attempt + 1}/{settings.attempts} running (seed {attempt_seed})")
        control = LoopControl(settings=settings, attempt=attempt, seed=attempt_seed, open_id=unique_id,
                              opened_at=time.perf_counter(), run=run)
        return io.NodeOutput(control, attempt, attempt_seed)


class RewardLoopRetryClose(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RewardLoopRetryClose",
            display_name="Reward Retry Loop (close)",
            category=CATEGORY,
            description=(
                "End of a reward-gated retry loop: returns the attempt that passed, or the best attempt when none "
                "did (with passed = false, never an error), its reward and a log of every attempt."),
            inputs=[
                LoopType.Input("loop", tooltip="From the open node's 'loop' output."),
                io.Image.Input("frames", lazy=True, tooltip="This attempt's candidate frames."),
                io.Float.Input("reward", force_input=True, lazy=True,
                               tooltip="This attempt's reward (NaN = failed attempt)."),
                io.String.Input("breakdown", optional=True, force_input=True, lazy=True,
                                tooltip="Optional per-component breakdown (JSON object), stored in the log."),
                ScoresType.Input("scores", optional=True, lazy=True,
                                 tooltip="Optional reward bundle from a RewardLoop reward node; its breakdown is "
                                         "stored in the log."),
            ],
            outputs=[
                io.Image.Output("chosen_frames", display_name="chosen frames",
                                tooltip="Frames of the passing attempt, or of the best one when none passed."),
                io.Float.Output("chosen_reward", display_name="chosen reward",
                                tooltip="Reward of the chosen frames (NaN only when every attempt's reward was NaN)."),
                io.Int.Output("chosen_attempt", display_name="chosen attempt",
                              tooltip="Index of the chosen attempt, counted from 0."),
                io.Boolean.Output("passed", display_name="passed",
                                  tooltip="Whether the chosen attempt reached the threshold."),
                io.String.Output("attempt_log", display_name="attempt log",
                                 tooltip="JSON: settings, one entry per attempt (seed, reward, breakdown, seconds), "
                                         "decision."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            enable_expand=True,
        )

    @classmethod
    def check_lazy_status(cls, loop=None, **results):
        if not isinstance(loop, LoopControl) or loop.recorded:
            return []  # a copy: the collector already recorded this attempt
        dynprompt = cls.hidden.dynprompt
        if dynprompt is not None and loop.attempt == 0:
            try:
                if _providers(dynprompt, find_body(dynprompt.get_node, loop.open_id, cls.hidden.unique_id)):
                    return []  # API nodes: every attempt runs guarded in an expansion (module docstring)
            except ValueError:
                pass  # miswired: execute() explains
        return _needed(results)

    @classmethod
    def execute(cls, loop, frames=None, reward=None, breakdown=None, scores=None) -> io.NodeOutput:
        # frames/reward are absent only in the close node's own copies, which get an already recorded control
        # from the collector node, and on the user's close node when the body holds API nodes (see above).
        _check_interrupt()
        if not isinstance(loop, LoopControl):
            raise ValueError("RewardLoopRetryClose: 'loop' must come from a RewardLoopRetryOpen node's 'loop' output")
        unique_id, dynprompt = cls.hidden.unique_id, cls.hidden.dynprompt
        display = _display_id(dynprompt, unique_id)
        body = None
        if not loop.recorded:
            if dynprompt is not None and loop.attempt == 0:
                body = cls._body(dynprompt, loop.open_id, unique_id)  # checks the wiring before the first retry
                if _providers(dynprompt, body):
                    cls._warn_outside_users(dynprompt, body, unique_id, display)
                    run = LoopRun(gating.RetryState(loop.settings))
                    return cls._expand(dynprompt, loop.open_id, unique_id, body,
                                       LoopCarry(attempt=0, seed=loop.seed, run=run))
            if frames is None or reward is None:
                raise ValueError("RewardLoopRetryClose: connect 'frames' and 'reward'")
            try:
                loop = _record(loop, frames, reward, breakdown, scores)
            except ValueError as e:
                raise ValueError(f"RewardLoopRetryClose: {e}") from None
        run, settings = loop.run, loop.settings
        state = run.state
        record = state.records[-1]
        event = {"node_id": display, "node": unique_id, "attempt": record.attempt, "attempts": settings.attempts,
                 "seed": record.seed, "reward": record.reward, "passed": record.passed,
                 "seconds": round(record.seconds, 6), "provider_seconds": round(record.provider_seconds, 6),
                 "api_calls": record.api_calls, "error": record.error, "best_reward": state.best_reward,
                 "best_attempt": state.best, "threshold": settings.threshold, "done": state.done,
                 "failed_reason": record.failed_reason, "breakdown": record.breakdown,
                 "total_api_calls": state.total_api_calls, "total_seconds": round(state.total_seconds, 6)}
        log.info("RewardLoop loop %s: attempt %d/%d seed %d reward %s (%s) in %.2f s", display, record.attempt + 1,
                 settings.attempts, record.seed, "NaN" if record.reward is None else f"{record.reward:.4f}",
                 "passed" if record.passed else (record.failed_reason or "below threshold"), record.seconds)
        if state.done:
            return cls._finish(run, display, event)
        next_seed = state.next_seed()
        event.update(next_attempt=record.attempt + 1, next_seed=next_seed)
        _notify(display, f"{state.progress_text()}; running attempt {record.attempt + 2} (seed {next_seed})",
                gating.json_safe(event))
        # If the body fails from here on, ComfyUI reports the error on this node (the copies' real node); this
        # line and the event above say which attempt it was, and the log of the earlier attempts.
        log.info("RewardLoop loop %s: starting attempt %d/%d (seed %d); attempts so far: %s", display,
                 record.attempt + 2, settings.attempts, next_seed, state.to_json())
        if body is None:
            body = find_body(dynprompt.get_node, loop.open_id, unique_id)
        carry = LoopCarry(attempt=record.attempt + 1, seed=next_seed, run=run)
        return cls._expand(dynprompt, loop.open_id, unique_id, body, carry)

    @staticmethod
    def _body(dynprompt, open_id: str, close_id: str) -> list[str]:
        body = find_body(dynprompt.get_node, open_id, close_id)
        inputs = dynprompt.get_node(close_id)["inputs"]
        for name in ("frames", "reward"):
            src = inputs.get(name)
            if not is_link(src) or src[0] not in body:
                raise ValueError(
                    f"RewardLoopRetryClose: '{name}' does not depend on the loop's open node, so every retry would "
                    f"return the same {name}. Wire the open node's 'attempt_seed' into the generator that makes the "
                    f"frames, and score those frames for 'reward'.")
        return body

    @staticmethod
    def _warn_outside_users(dynprompt, body: list[str], close_id: str, display: str) -> None:
        """Nodes outside the loop that use a node of its body make ComfyUI run the user's (unguarded) API node
        once more, at the price of a generation: say so, since the attempts themselves never feed them."""
        inside = set(body) | {close_id}
        users = sorted({dynprompt.get_display_node_id(n) for n in dynprompt.all_node_ids() if n not in inside
                        and any(is_link(v) and v[0] in body for v in dynprompt.get_node(n)["inputs"].values())})
        if users:
            log.warning("RewardLoop loop %s: node(s) %s outside the loop use nodes inside it; ComfyUI runs the loop's "
                        "API node once more for them (an extra paid call). Connect them to the close node's "
                        "outputs instead.", display, ", ".join(users))

    @classmethod
    def _expand(cls, dynprompt, open_id: str, close_id: str, body: list[str], carry: LoopCarry) -> io.NodeOutput:
        from comfy_execution.graph_utils import GraphBuilder

        graph = GraphBuilder()
        close_display = dynprompt.get_display_node_id(close_id)
        # Name copies after the user's original node ids (display ids) so ids grow linearly with attempts.
        names = {}
        for node_id in (open_id, *body):
            display = dynprompt.get_display_node_id(node_id)
            is_collector = dynprompt.get_node(node_id)["class_type"] == COLLECT_NODE_ID
            names[node_id] = f"{display}_collect" if is_collector else display
        names[close_id] = CLOSE_COPY_ID
        copies, guarded, offsets = {}, {}, {}
        for node_id, name in names.items():
            class_type = dynprompt.get_node(node_id)["class_type"]
            if node_id in body and is_api_node(class_type):
                guarded[node_id], offsets[node_id] = class_type, 1  # the guard's report comes first
                class_type = GUARD_NODE_ID
            copy = graph.node(class_type, name)
            copy.set_override_display_id(dynprompt.get_display_node_id(node_id))
            copies[node_id] = copy
        id_map = {node_id: copy.id for node_id, copy in copies.items()}
        for node_id, copy in copies.items():
            inputs = remap_inputs(dynprompt.get_node(node_id)["inputs"], id_map, offsets)
            if node_id in guarded:
                constants, links = split_links(inputs)
                copy.set_input("provider", guarded[node_id])
                copy.set_input("constants", constants)
                for key, value in links.items():
                    copy.set_input(LINK_PREFIX + key, value)
            else:
                for key, value in inputs.items():
                    copy.set_input(key, value)
        copies[open_id].set_input("carry", carry)
        close_copy = copies[close_id]
        close_inputs = dynprompt.get_node(close_id)["inputs"]
        if "frames" in close_inputs:
            # The user's close node: route this attempt's candidate through a collector (already a body node in
            # every later expansion, where it is copied like the rest), which also waits for the API nodes' reports.
            collector = graph.node(COLLECT_NODE_ID, f"{close_display}_collect")
            collector.set_override_display_id(close_display)
            for key in LAZY_RESULTS:
                if key in close_inputs:
                    collector.set_input(key, remap_inputs({key: close_inputs[key]}, id_map, offsets)[key])
                    close_copy.set_input(key, None)
            for i, node_id in enumerate(_providers(dynprompt, body)):
                collector.set_input(f"{CALL_PREFIX}{i}", copies[node_id].out(0))
            collector.set_input("loop", copies[open_id].out(0))
            close_copy.set_input("loop", collector.out(0))
        return io.NodeOutput(*(close_copy.out(i) for i in range(5)), expand=graph.finalize())

    @staticmethod
    def _finish(run: LoopRun, display: str, event: dict) -> io.NodeOutput:
        state = run.state
        log_json = state.to_json()
        chosen = state.chosen
        reward = state.best_reward if state.best_reward is not None else math.nan
        text = state.progress_text()
        _notify(display, text, gating.json_safe(dict(event, chosen_attempt=chosen, stop_reason=state.stop_reason)),
                final=True)
        log.info("RewardLoop loop %s: %s", display, text)
        chart = attempts_chart([r.reward for r in state.records], state.settings.threshold)
        ui = {"rewardloop_chart": [chart], "rewardloop_log": [state.as_dict()]}
        # The expanded graph (kept by ComfyUI until the next prompt) references the run through its carry
        # constants: drop the candidate so the loop holds nothing once it has answered.
        frames, run.best = run.best, None
        if chosen is None:
            errors = "; ".join(f"attempt {r.attempt + 1}: {r.error}" for r in state.records)
            raise RuntimeError(f"every attempt of the retry loop failed, so there is no video to return "
                               f"({state.attempts_run} attempt(s){state.spend_text()}). {errors[:2000]}")
        return io.NodeOutput(frames, reward, chosen, state.passed, log_json, ui=gating.json_safe(ui))


class RewardLoopRetryCollect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=COLLECT_NODE_ID,
            display_name="Reward Retry Loop (internal: attempt collector)",
            category=CATEGORY,
            description=(
                "Internal: Reward Retry Loop (close) creates it on retries to record each attempt and keep only the "
                "best frames. You never place it yourself; it is hidden from the node library."),
            inputs=[
                LoopType.Input("loop", tooltip="This attempt's loop control (wired by the close node)."),
                io.Image.Input("frames", lazy=True, tooltip="This attempt's candidate frames."),
                io.Float.Input("reward", force_input=True, lazy=True, tooltip="This attempt's reward."),
                io.String.Input("breakdown", optional=True, force_input=True, lazy=True,
                                tooltip="Optional per-component breakdown (JSON object)."),
                ScoresType.Input("scores", optional=True, lazy=True, tooltip="Optional reward bundle from a reward node."),
            ],
            outputs=[LoopType.Output("recorded", display_name="recorded", tooltip="To a close node's 'loop' input.")],
            **INTERNAL_NODE,
        )

    @staticmethod
    def _calls(kw: dict) -> list[ProviderCall]:
        calls = [kw[k] for k in sorted(kw) if k.startswith(CALL_PREFIX)]
        if not all(isinstance(c, ProviderCall) for c in calls):
            raise ValueError(f"{COLLECT_NODE_ID}: '{CALL_PREFIX}*' inputs come from the loop's API-call guards only")
        return calls

    @classmethod
    def check_lazy_status(cls, loop=None, **kw):
        if any(c.error for c in cls._calls(kw)):
            return []  # a provider failed: there are no frames to ask for
        return _needed(kw)

    @classmethod
    def execute(cls, loop, frames=None, reward=None, breakdown=None, scores=None, **kw) -> io.NodeOutput:
        return io.NodeOutput(_record(loop, frames, reward, breakdown, scores, cls._calls(kw)))


def _api_node_class(provider):
    if not isinstance(provider, str) or not is_api_node(provider):
        raise ValueError(f"{GUARD_NODE_ID}: 'provider' must name one of ComfyUI's installed API nodes (such as "
                         f"LumaImageToVideoNode), got {str(provider)[:100]!r}; this node is created by the retry "
                         f"loop itself")
    return _node_class(provider)


def _reraise_interrupt(error: Exception) -> None:
    """Cancel always wins: an interrupt (ComfyUI's, or the API client's ProcessingInterrupted) is re-raised as
    ComfyUI's interrupt, never recorded as a failed attempt."""
    import comfy.model_management as mm

    if isinstance(error, mm.InterruptProcessingException):
        raise error
    mm.throw_exception_if_processing_interrupted()
    if type(error).__name__ == "ProcessingInterrupted":
        raise mm.InterruptProcessingException() from error


class RewardLoopProviderCall(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=GUARD_NODE_ID,
            display_name="Reward Retry Loop (internal: API call guard)",
            category=CATEGORY,
            description=(
                "Internal: the close node puts it in place of each API node inside its loop. It runs that node with "
                "your API key and reports its time; a provider error becomes a failed attempt instead of ending the "
                "queue. Hidden from the node library."),
            inputs=[
                io.String.Input("provider", tooltip="Node id of the ComfyUI API node to run (set by the loop)."),
                ConstantsType.Input("constants", optional=True,
                                    tooltip="The API node's widget values (set by the loop)."),
            ],
            outputs=[CallType.Output("call", display_name="call report",
                                     tooltip="Time and error of the call, for the loop's collector."),
                     *[io.AnyType.Output(f"output_{i}", display_name=f"API node output {i + 1}",
                                         tooltip=f"Output {i + 1} of the API node.")
                       for i in range(MAX_PROVIDER_OUTPUTS)]],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt, io.Hidden.auth_token_comfy_org,
                    io.Hidden.api_key_comfy_org],
            **INTERNAL_NODE,
        )

    @classmethod
    def validate_inputs(cls, provider=None):
        if provider is None:
            return True
        try:
            _api_node_class(provider)
        except ValueError as e:
            return str(e)
        return True

    @classmethod
    async def execute(cls, provider, constants=None, **links) -> io.NodeOutput:
        node_cls = _api_node_class(provider)
        if constants is not None and not isinstance(constants, dict):
            raise ValueError(f"{GUARD_NODE_ID}: 'constants' must be the API node's inputs (set by the loop)")
        unknown = [k for k in links if not k.startswith(LINK_PREFIX)]
        if unknown:
            raise ValueError(f"{GUARD_NODE_ID}: unexpected inputs {unknown[:5]}")
        inputs = {**(constants or {}), **{k[len(LINK_PREFIX):]: v for k, v in links.items()}}
        display = _display_id(cls.hidden.dynprompt, cls.hidden.unique_id)
        # The same hidden values the executor gives the API node (its progress text lands on the user's node).
        clone = node_cls.PREPARE_CLASS_CLONE({
            io.Hidden.unique_id: display, io.Hidden.dynprompt: cls.hidden.dynprompt,
            io.Hidden.auth_token_comfy_org: cls.hidden.auth_token_comfy_org,
            io.Hidden.api_key_comfy_org: cls.hidden.api_key_comfy_org})
        start = time.perf_counter()
        try:
            result = getattr(clone, node_cls.FUNCTION)(**inputs)  # the executor's own entry point of V3 nodes
            if inspect.isawaitable(result):
                result = await result
            if result.block_execution is not None:
                raise RuntimeError(f"the node blocked execution: {result.block_execution}")
            outputs = tuple(result.args)
            if len(outputs) > MAX_PROVIDER_OUTPUTS:
                raise RuntimeError(f"{provider} has {len(outputs)} outputs; the loop guards at most "
                                   f"{MAX_PROVIDER_OUTPUTS}")
        except Exception as e:
            _reraise_interrupt(e)
            message = str(e).strip() or type(e).__name__
            call = ProviderCall(provider, display, time.perf_counter() - start, message)
            log.warning("RewardLoop: API node %s (%s) failed after %.1f s: %s; the retry loop records a failed "
                        "attempt", display, provider, call.seconds, message)
            _notify(display, f"{provider} failed: {message[:300]}\n(the retry loop records a failed attempt)")
            # No outputs: nothing reads them (the collector does not ask for this attempt's frames). Not
            # ExecutionBlockers: the collector's lazy inputs may link here directly and would block it too.
            return io.NodeOutput(call, *[None] * MAX_PROVIDER_OUTPUTS)
        call = ProviderCall(provider, display, time.perf_counter() - start)
        return io.NodeOutput(call, *outputs, *[None] * (MAX_PROVIDER_OUTPUTS - len(outputs)))


class RewardLoopPerturbedScene(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RewardLoopPerturbedScene",
            display_name="Perturbed Scene (known pass rate)",
            category=CATEGORY,
            description=(
                "A stand-in generator for trying retry loops without a video model: the procedural scene with each "
                "segment warped a little (passes) or a lot (fails), a little with probability pass_probability. Wire "
                "a retry loop's 'attempt seed' into 'seed'."),
            inputs=[
                io.Int.Input("width", default=128, min=16, max=4096, step=8, tooltip="Frame width in pixels."),
                io.Int.Input("height", default=128, min=16, max=4096, step=8, tooltip="Frame height in pixels."),
                io.Int.Input("length", default=33, min=2, max=4096,
                             tooltip="Length of the whole clip (the segment structure is defined on it)."),
                io.Int.Input("scene_seed", default=0, min=0, max=2**31 - 1, tooltip="Which world is rendered."),
                io.Combo.Input("motion", options=list(scene.MOTIONS), default="pan",
                               tooltip="pan: sideways camera travel (parallax); dolly: forward; pan_dolly: both."),
                io.Int.Input("keyframe_every", default=8, min=0, max=4096,
                             tooltip="Segment length in frames (segments share keyframes); 0 = one segment."),
                io.Int.Input("first_frame", default=0, min=0, max=4095, tooltip="First clip frame to render."),
                io.Int.Input("last_frame", default=-1, min=-1, max=4095,
                             tooltip="Last clip frame to render (inclusive); -1 = the clip's last frame."),
                io.Int.Input("seed", default=0, min=0, max=gating.SEED_MAX,
                             tooltip="Perturbation seed: wire the loop's attempt_seed here."),
                io.Float.Input("pass_probability", default=0.8, min=0.0, max=1.0, step=0.01,
                               tooltip="Probability that a segment gets the small warp."),
            ],
            outputs=[
                io.Image.Output("frames", display_name="frames", tooltip="The rendered (warped) frames."),
                io.Boolean.Output("expected_pass", display_name="expected pass",
                                  tooltip="True when every rendered segment drew the small warp."),
                io.String.Output("draws", display_name="draws",
                                 tooltip="JSON object: expected_pass and, per segment, its frames, good/bad draw and "
                                         "warp amplitude (usable as the loop's breakdown)."),
            ],
        )

    @classmethod
    def execute(cls, width, height, length, scene_seed, motion, keyframe_every, first_frame, last_frame, seed,
                pass_probability) -> io.NodeOutput:
        frames, draws = perturb.perturbed_scene(length, width, height, scene_seed, motion, seed,
                                                pass_probability, keyframe_every, first_frame, last_frame)
        expected = all(d["good"] for d in draws)
        return io.NodeOutput(frames, expected, json.dumps({"expected_pass": expected, "segments": draws}))


MAX_SEGMENTS = 8


class RewardLoopJoinSegments(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        segments = [io.Image.Input(f"segment_{i}", optional=i > 1, tooltip="Frames of segment %d." % i)
                    for i in range(1, MAX_SEGMENTS + 1)]
        logs = [io.String.Input(f"log_{i}", optional=True, force_input=True,
                                tooltip=f"Attempt log of segment {i}'s retry loop (for the summary).")
                for i in range(1, MAX_SEGMENTS + 1)]
        return io.Schema(
            node_id="RewardLoopJoinSegments",
            display_name="Join Gated Segments",
            category=CATEGORY,
            description=(
                "Joins segments that were each gated by their own retry loop into one clip, keeping shared keyframes "
                "once. Connect the loops' attempt logs to see whether every segment passed."),
            inputs=[io.Int.Input("overlap", default=1, min=0, max=64,
                                 tooltip="Frames each segment repeats from the previous one (1 = shared keyframe)."),
                    *segments, *logs],
            outputs=[io.Image.Output("frames", display_name="frames", tooltip="The joined clip."),
                     io.Boolean.Output("all_passed", display_name="all passed",
                                       tooltip="Whether every segment with a connected log reached its threshold."),
                     io.String.Output("summary", display_name="summary",
                                      tooltip="JSON: per segment passed / attempts / reward / seconds.")],
        )

    @classmethod
    def execute(cls, overlap, **kw) -> io.NodeOutput:
        present = [i for i in range(1, MAX_SEGMENTS + 1) if kw.get(f"segment_{i}") is not None]
        if present != list(range(1, len(present) + 1)):
            raise ValueError(f"connect segments in order without gaps (segment_1, segment_2, ...); connected: "
                             f"{', '.join(f'segment_{i}' for i in present)}")
        logs = []
        for i in present:
            text = kw.get(f"log_{i}")
            try:
                logs.append(json.loads(text) if text else None)
            except json.JSONDecodeError:
                raise ValueError(f"log_{i} is not an attempt log (JSON) from a retry loop's close node") from None
        frames = gating.join_segments([kw[f"segment_{i}"] for i in present], overlap)
        summary = gating.json_safe(gating.summarize_logs(logs))
        ui = None
        if any(log is not None for log in logs):
            segs = summary["segments"]
            threshold = next((log["settings"]["threshold"] for log in logs if log), None)
            ui = {"rewardloop_summary": [summary], "rewardloop_chart": [
                attempts_chart([s.get("best_reward") for s in segs], threshold, "segment", "best reward"),
                attempts_chart([s.get("attempts_run") for s in segs], None, "segment", "attempts")]}
        return io.NodeOutput(frames, summary["all_passed"], json.dumps(summary), ui=ui)


NODES = [RewardLoopRetryOpen, RewardLoopRetryClose, RewardLoopRetryCollect, RewardLoopProviderCall,
         RewardLoopJoinSegments, RewardLoopPerturbedScene]
