"""The shape of a family's cost breakdown: per-component MACs and parameter counts that add up."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["CostBreakdown"]


@dataclass(frozen=True)
class CostBreakdown:
    """Base of a family's per-component cost for one image: its ``*_macs`` fields add up to
    :attr:`macs`, its ``*_params`` fields to :attr:`params`; ``flops = 2 * macs`` (the
    convention of ``FlopCounterMode``). Other integer fields (a stage's index, say) are context."""

    @property
    def macs(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name.endswith("_macs"))

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def params(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name.endswith("_params"))

    def to_dict(self) -> dict[str, int]:
        """Every integer field, then the totals ``macs``, ``flops`` and ``params``."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data = {k: v for k, v in data.items() if isinstance(v, int)}
        return {**data, "macs": self.macs, "flops": self.flops, "params": self.params}
