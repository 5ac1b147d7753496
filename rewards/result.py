"""What every scorer returns, and its JSON-able form (the REWARDLOOP_SCORES socket type)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..common.jsonsafe import json_safe

SCORES_VERSION = 1

# Where an item sits on the clip's frame axis, so charts and the loop can put every scorer on one axis.
ITEM_KINDS = ("frame", "pair", "keyframe", "sample", "seam", "crop", "signal")


@dataclass
class RewardResult:
    """One scorer's answer for one clip.

    value       aggregate, higher = better, in `value_range` (documented per scorer); NaN when not applicable
    per_item    float32 [n] CPU tensor, one value per item (frame, pair, sampled frame, seam ...); NaN marks an
                item without a value (e.g. no face in that frame)
    positions   float32 [n] frame position of each item (pair t -> t+1 sits at t + 0.5)
    item_kind   one of ITEM_KINDS
    details     JSON-able extras (raw distances, settings, sampled indices ...)
    applicable  False = "this scorer does not apply to this clip" (no face, too short ...), which is not a
                zero reward: composites exclude it and say why in `note`
    """

    name: str
    value: float
    per_item: torch.Tensor
    positions: torch.Tensor
    item_kind: str
    value_range: tuple[float, float]
    details: dict = field(default_factory=dict)
    applicable: bool = True
    note: str = ""

    def __post_init__(self):
        if self.item_kind not in ITEM_KINDS:
            raise ValueError(f"item_kind must be one of {ITEM_KINDS}, got {self.item_kind!r}")
        self.per_item = torch.as_tensor(self.per_item, dtype=torch.float32).detach().reshape(-1).cpu()
        self.positions = torch.as_tensor(self.positions, dtype=torch.float32).detach().reshape(-1).cpu()
        if self.per_item.shape != self.positions.shape:
            raise ValueError(f"{self.name}: per_item {tuple(self.per_item.shape)} and positions "
                             f"{tuple(self.positions.shape)} differ")
        self.value = float(self.value)

    @classmethod
    def not_applicable(cls, name: str, note: str, value_range: tuple[float, float], item_kind: str = "frame",
                       details: dict | None = None) -> "RewardResult":
        empty = torch.zeros(0)
        return cls(name, math.nan, empty, empty, item_kind, value_range, details or {}, False, note)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": json_safe(self.value),
            "applicable": self.applicable,
            "note": self.note,
            "range": json_safe(self.value_range),
            "item_kind": self.item_kind,
            "per_item": json_safe(self.per_item),
            "positions": json_safe(self.positions),
            "details": json_safe(self.details),
        }


def scores_payload(results: list[RewardResult], num_frames: int, aggregate: RewardResult | None = None) -> dict:
    """The REWARDLOOP_SCORES object: what loops, charts and the report node consume."""
    out = {"version": SCORES_VERSION, "frames": int(num_frames),
           "scores": {r.name: r.to_dict() for r in results}}
    if aggregate is not None:
        out["aggregate"] = aggregate.to_dict()
    return out
