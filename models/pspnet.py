"""PSPNet: dilated ResNet-50 (output stride 8) + pyramid pooling (bins 1, 2, 3, 6), ``pspnet_resnet50``.

Encoder and pyramid-pooling decoder are smp's (``PSPDecoder``, 512 output channels); the decoder feature
(1/8) feeds the classifier and, resized to 1/4, the projection head. ``fp`` drops channels of the
encoder's last feature before the pyramid pooling.
"""

from __future__ import annotations

from collections.abc import Sequence

from segmentation_models_pytorch.decoders.pspnet.decoder import PSPDecoder
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
PSP_CHANNELS = 512
PSP_DROPOUT = 0.1


class PSPNet(ResNetSegmentationModel):
    """PSPNet (B, C, H, W) → logits (B, K, H, W); ``fp`` and ``proj`` supported, no GRAM branch."""

    def __init__(
        self,
        *,
        encoder: str,
        num_classes: int,
        in_channels: int,
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
        self.decoder = PSPDecoder(
            encoder_channels=self.backbone.out_channels, out_channels=PSP_CHANNELS, dropout=PSP_DROPOUT
        )
        self.classifier = nn.Conv2d(PSP_CHANNELS, num_classes, 1)
        self.has_proj = True
        self.proj_head = ProjectionHead(PSP_CHANNELS, dim=proj_dim)
        self.fp_dropout = fp_dropout

    def forward_dict(
        self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
    ) -> dict[str, Tensor]:
        """x (B, C, H, W) → ``logits`` (B, K, H, W) [+ ``logits_fp``, ``proj`` (B, D, H/4, W/4)]."""
        self._require(gram=gram, proj=proj)
        batch = x.shape[0]
        padded, size = pad_to_multiple(self.standardize(x), self.pad_multiple)
        high = self.backbone(padded)[-1]
        decoded = self.decoder([perturb_features(high, p=self.fp_dropout) if fp else high])
        return decoded_outputs(self, decoded, batch=batch, padded=padded, size=size, fp=fp, proj=proj)


@register_model("pspnet_resnet50")
def pspnet_resnet50(*, num_classes: int = 2, in_channels: int = 3, **kwargs: object) -> PSPNet:
    """PSPNet on a dilated ResNet-50 (output stride 8)."""
    return PSPNet(encoder="resnet50", num_classes=num_classes, in_channels=in_channels, **kwargs)  # type: ignore[arg-type]
