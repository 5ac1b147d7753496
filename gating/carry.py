"""What a graph-expanded retry loop hands from one attempt to the next.

- `LoopRun` is created by the closing node on attempt 0 and shared by every later attempt of that run: the attempt
  log plus a reference to the best candidate so far. Only the best is referenced (the current candidate is the
  closing node's input and is dropped unless it becomes the best), so the loop itself holds at most two candidates
  whatever the number of attempts, and never concatenates them.
- `LoopCarry` is the constant the closing node writes into the re-created opening node: attempt index, seed and
  the run. Its identity is new on every attempt, so ComfyUI's cache never serves a previous attempt's body.
- `LoopControl` is the opening node's output, read by the closing node; `recorded` marks a control whose attempt
  was already logged (by the collector node of an expanded attempt), so the closing node only decides.
- `ProviderCall` is what a guarded API node of the body reports to the collector: which node, how long it took,
  and the provider's error if it failed (then the attempt is a failed attempt, not the end of the prompt).
A run is never shared between two executions of the original graph: attempt 0's closing node always starts a new
one (the opening node's cached output carries no run), so a re-queued or resumed prompt cannot see stale state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .retry import LoopSettings, RetryState


@dataclass(eq=False)
class LoopRun:
    state: RetryState
    best: Any = None          # candidate of state.chosen (frames tensor); replaced, never accumulated

    def keep(self, candidate, improved: bool) -> None:
        """Keep `candidate` when it is the best so far, or the first candidate at all (an attempt whose reward was
        NaN still returns frames; one whose generator failed has none)."""
        if candidate is not None and (improved or self.best is None):
            self.best = candidate


@dataclass(frozen=True, eq=False)
class LoopCarry:
    attempt: int
    seed: int
    run: LoopRun


@dataclass(frozen=True, eq=False)
class LoopControl:
    settings: LoopSettings
    attempt: int
    seed: int
    open_id: str              # node id of the opening node that produced this control (an expanded copy after attempt 0)
    opened_at: float          # perf_counter() when the opening node ran: start of this attempt
    run: LoopRun | None = None
    recorded: bool = False


@dataclass(frozen=True)
class ProviderCall:
    provider: str             # node class of the API node (e.g. LumaImageToVideoNode)
    node: str                 # display id of the user's API node
    seconds: float            # wall time of the node's run: uploads, generation, polling, download
    error: str | None = None  # the provider's (or the node's) error message; None = a video came back
