"""SLUM-i on UniMatch V2 (the paper's DINOv2 variant): EMA-teacher pseudo-labels gated by CAAT and
strong-view losses weighted by Prototype Bank reliability.

The teacher's weak-view prediction feeds CAAT (updated before gating) and, with its projection features
(``forward_dict(proj=True)``), the Prototype Bank (weights computed before the bank is updated). Inside a
CutMix box the target, gate and weight of the mirrored batch image are used, as for the pseudo-labels.
``use_caat`` / ``use_prototypes`` switch the parts off for ablations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from slumwatch.models.methods import register_method
from slumwatch.models.methods.caat import CAATConfig
from slumwatch.models.methods.consistency import PseudoLabels
from slumwatch.models.methods.overrides import apply_overrides
from slumwatch.models.methods.prototype_bank import PrototypeBankConfig
from slumwatch.models.methods.slum_i import SlumIGating
from slumwatch.models.methods.unimatch_v2 import UniMatchV2Config, UniMatchV2Step


@dataclass(frozen=True)
class UniMatchV2SlumIConfig:
    """Hyper-parameters of SLUM-i on UniMatch V2.

    Attributes:
        num_classes: K.
        use_caat: CAAT thresholds instead of ``unimatch_v2.threshold``.
        use_prototypes: prototype reliability weights on the strong-view losses.
        unimatch_v2: the underlying V2 settings.
        caat: CAAT settings (``num_classes`` overridden).
        bank: Prototype Bank settings (``num_classes`` overridden).
    """

    num_classes: int = 2
    use_caat: bool = True
    use_prototypes: bool = True
    unimatch_v2: UniMatchV2Config = field(default_factory=UniMatchV2Config)
    caat: CAATConfig = field(default_factory=CAATConfig)
    bank: PrototypeBankConfig = field(default_factory=PrototypeBankConfig)


@register_method("unimatch-v2-slum-i")
class UniMatchV2SlumIStep(UniMatchV2Step):
    """UniMatch V2 + CAAT + Prototype Bank."""

    name = "unimatch-v2-slum-i"

    def __init__(self, *, config: UniMatchV2SlumIConfig | None = None, **overrides: Any) -> None:
        self.slum_config = apply_overrides(config or UniMatchV2SlumIConfig(), overrides)
        cfg = self.slum_config
        super().__init__(config=cfg.unimatch_v2)
        self.gating = SlumIGating.from_config(cfg, threshold=cfg.unimatch_v2.threshold)
        self.uses_projection = cfg.use_prototypes

    def _gate(self, weak: PseudoLabels) -> Tensor:
        return self.gating.gate(weak)[0]

    def _weight(self, weak: PseudoLabels, gate: Tensor, feat: Tensor | None) -> Tensor | None:
        return self.gating.weights((weak,), (feat,), gate)[0]

    def _extra_logs(self) -> dict[str, float]:
        return self.gating.logs()

    def _check_num_classes(self, num_classes: int) -> None:
        self.gating.check_num_classes(num_classes)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "gating": self.gating.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "gating" in state:
            self.gating.load_state_dict(state["gating"])
