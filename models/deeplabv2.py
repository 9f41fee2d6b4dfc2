"""DeepLabV2: dilated ResNet-101 (output stride 8) + ASPP classifier (sum of 3x3 convs, rates 6/12/18/24).

Registered as ``deeplabv2_resnet101``. The encoder is smp's ResNet (torchvision layout, dilated
``layer3``/``layer4``); the "decoder feature" used by ``proj`` is the 2048-channel ``layer4`` output and
feature perturbation (``fp``) drops channels of that map.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from slumwatch.models.heads import (
    DEFAULT_PROJ_DIM,
    FP_DROPOUT,
    ProjectionHead,
    decoded_outputs,
    perturb_features,
)
from slumwatch.models.padding import pad_to_multiple
from slumwatch.models.registry import register_model
from slumwatch.models.resnet_backbone import ResNetSegmentationModel, resnet_encoder

OUTPUT_STRIDE = 8
ASPP_V2_RATES = (6, 12, 18, 24)
CLASSIFIER_INIT_STD = 0.01


class ASPPClassifier(nn.Module):
    """Sum of dilated 3x3 convs straight to K classes: (B, C, h, w) → (B, K, h, w)."""

    def __init__(self, in_channels: int, num_classes: int, rates: Sequence[int]) -> None:
        super().__init__()
        convs = [nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r) for r in rates]
        for conv in convs:
            nn.init.normal_(conv.weight, std=CLASSIFIER_INIT_STD)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.branches = nn.ModuleList(convs)

    def forward(self, x: Tensor) -> Tensor:
        """Summed logits of all rates."""
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class DeepLabV2(ResNetSegmentationModel):
    """DeepLabV2 (B, C, H, W) → logits (B, K, H, W); ``fp`` and ``proj`` supported, no GRAM branch."""

    def __init__(
        self,
        *,
        encoder: str,
        num_classes: int,
        in_channels: int,
        rates: Sequence[int] = ASPP_V2_RATES,
        proj_dim: int = DEFAULT_PROJ_DIM,
        fp_dropout: float = FP_DROPOUT,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            in_channels=in_channels,
            pad_multiple=OUTPUT_STRIDE,
            input_mean=input_mean,
            input_std=input_std,
        )
        self.backbone = resnet_encoder(encoder, in_channels=in_channels, output_stride=OUTPUT_STRIDE)
        channels = self.backbone.out_channels[-1]
        self.classifier = ASPPClassifier(channels, num_classes, rates)
        self.has_proj = True
        self.proj_head = ProjectionHead(channels, dim=proj_dim)
        self.fp_dropout = fp_dropout

    def forward_dict(
        self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
    ) -> dict[str, Tensor]:
        """x (B, C, H, W) → ``logits`` (B, K, H, W) [+ ``logits_fp``, ``proj`` (B, D, H/4, W/4)]."""
        self._require(gram=gram, proj=proj)
        batch = x.shape[0]
        padded, size = pad_to_multiple(self.standardize(x), self.pad_multiple)
        high = self.backbone(padded)[-1]  # (B, 2048, H'/8, W'/8)
        head_in = perturb_features(high, p=self.fp_dropout) if fp else high
        return decoded_outputs(self, head_in, batch=batch, padded=padded, size=size, fp=fp, proj=proj)


@register_model("deeplabv2_resnet101")
def deeplabv2_resnet101(*, num_classes: int = 2, in_channels: int = 3, **kwargs: object) -> DeepLabV2:
    """DeepLabV2 on a dilated ResNet-101 (output stride 8)."""
    return DeepLabV2(encoder="resnet101", num_classes=num_classes, in_channels=in_channels, **kwargs)  # type: ignore[arg-type]
