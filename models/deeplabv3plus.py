"""DeepLabV3+ on ResNet backbones (output stride 16, ASPP rates 6/12/18, 256-channel decoder).

Built from segmentation-models-pytorch parts: the smp ResNet encoder (torchvision ResNet with
dilated ``layer4``, ``encoder_weights=None``: never downloads) and the smp ``DeepLabV3PlusDecoder``
(ASPP on the 1/16 feature, upsampled ×4 and fused with the 48-channel projection of the 1/4 feature).
Added here: stride padding, UniMatch feature perturbation, the SegSlum GRAM branch and a projection head.

Registered names: ``deeplabv3plus_resnet18|50|101`` and ``deeplabv3plus_aux_resnet50|101`` (with GRAM).
"""

from __future__ import annotations

from collections.abc import Sequence

from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
from torch import Tensor, nn

from slumwatch.models.base import GRAM, LOGITS, LOGITS_FP, PROJ
from slumwatch.models.gram import GramBranch
from slumwatch.models.heads import DEFAULT_PROJ_DIM, FP_DROPOUT, ProjectionHead, perturb_features
from slumwatch.models.padding import crop_to, pad_to_multiple, scaled_size, upsample_to
from slumwatch.models.registry import register_model
from slumwatch.models.resnet_backbone import RESNET_DEPTH, ResNetSegmentationModel, resnet_encoder

OUTPUT_STRIDE = 16
ASPP_RATES = (6, 12, 18)
DECODER_CHANNELS = 256
ASPP_DROPOUT = 0.5
LOW_LEVEL_INDEX = 2  # smp encoder feature list: [x, 1/2, 1/4, 1/8, 1/16, 1/16 (dilated)]
LOW_LEVEL_STRIDE = 4


class DeepLabV3Plus(ResNetSegmentationModel):
    """DeepLabV3+ (B, C, H, W) → logits (B, K, H, W); see :mod:`slumwatch.models.base` for ``forward_dict``.

    Args:
        encoder: smp encoder name (``resnet18``, ``resnet50``, ``resnet101``).
        num_classes: K.
        in_channels: C.
        gram_branch: add the SegSlum GRAM branch (``forward_dict(gram=True)`` → (B, 1, 16, 16)).
        gram_normalize: divide the Gram matrix by the number of pixels (see :func:`gram_matrix`).
        proj_dim: D of the projection head (``forward_dict(proj=True)`` → (B, D, H/4, W/4)).
        fp_dropout: Dropout2d probability of the feature perturbation.
        aspp_rates: ASPP atrous rates at output stride 16.
        input_mean, input_std: per-band input standardisation (default: ImageNet for RGB).
    """

    def __init__(
        self,
        *,
        encoder: str,
        num_classes: int,
        in_channels: int,
        gram_branch: bool = False,
        gram_normalize: bool = True,
        proj_dim: int = DEFAULT_PROJ_DIM,
        fp_dropout: float = FP_DROPOUT,
        aspp_rates: Sequence[int] = ASPP_RATES,
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
        self.decoder = DeepLabV3PlusDecoder(
            encoder_channels=self.backbone.out_channels,
            encoder_depth=RESNET_DEPTH,
            out_channels=DECODER_CHANNELS,
            atrous_rates=tuple(aspp_rates),
            output_stride=OUTPUT_STRIDE,
            aspp_separable=False,
            aspp_dropout=ASPP_DROPOUT,
        )
        self.classifier = nn.Conv2d(DECODER_CHANNELS, num_classes, kernel_size=1)
        self.fp_dropout = fp_dropout
        self.has_gram = gram_branch
        self.gram_branch = GramBranch(normalize=gram_normalize) if gram_branch else None
        self.has_proj = True
        self.proj_head = ProjectionHead(DECODER_CHANNELS, dim=proj_dim)

    def forward_dict(
        self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
    ) -> dict[str, Tensor]:
        """x (B, C, H, W) → ``logits`` (B, K, H, W) [+ ``logits_fp``, ``gram`` (B,1,16,16), ``proj``]."""
        self._require(gram=gram, proj=proj)
        batch = x.shape[0]
        padded, size = pad_to_multiple(self.standardize(x), self.pad_multiple)
        features = list(self.backbone(padded))
        if fp:
            features[LOW_LEVEL_INDEX] = perturb_features(features[LOW_LEVEL_INDEX], p=self.fp_dropout)
            features[-1] = perturb_features(features[-1], p=self.fp_dropout)
        decoded = self.decoder(features)  # (B or 2B, 256, H'/4, W'/4)
        logits = crop_to(upsample_to(self.classifier(decoded), tuple(padded.shape[-2:])), size)
        out: dict[str, Tensor] = {LOGITS: logits[:batch]}
        if fp:
            out[LOGITS_FP] = logits[batch:]
        feature = crop_to(decoded[:batch], scaled_size(size, LOW_LEVEL_STRIDE))
        if gram and self.gram_branch is not None:
            out[GRAM] = self.gram_branch(feature)
        if proj:
            out[PROJ] = self.proj_head(feature)
        return out


def _build(
    encoder: str, *, gram_branch: bool, num_classes: int, in_channels: int, **kwargs: object
) -> DeepLabV3Plus:
    return DeepLabV3Plus(
        encoder=encoder,
        num_classes=num_classes,
        in_channels=in_channels,
        gram_branch=gram_branch,
        **kwargs,  # type: ignore[arg-type]
    )


@register_model("deeplabv3plus_resnet18")
def deeplabv3plus_resnet18(*, num_classes: int = 2, in_channels: int = 3, **kwargs: object) -> DeepLabV3Plus:
    """Small DeepLabV3+ (ResNet-18) for CPU demos and tests."""
    return _build("resnet18", gram_branch=False, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model("deeplabv3plus_resnet50")
def deeplabv3plus_resnet50(*, num_classes: int = 2, in_channels: int = 3, **kwargs: object) -> DeepLabV3Plus:
    """DeepLabV3+ (ResNet-50), the UniMatch / SLUM-i remote-sensing setting."""
    return _build("resnet50", gram_branch=False, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model("deeplabv3plus_resnet101")
def deeplabv3plus_resnet101(*, num_classes: int = 2, in_channels: int = 3, **kwargs: object) -> DeepLabV3Plus:
    """DeepLabV3+ (ResNet-101)."""
    return _build("resnet101", gram_branch=False, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model("deeplabv3plus_aux_resnet50")
def deeplabv3plus_aux_resnet50(
    *, num_classes: int = 2, in_channels: int = 3, **kwargs: object
) -> DeepLabV3Plus:
    """SegSlum ``deeplabv3plusaux``: DeepLabV3+ (ResNet-50) with the GRAM branch."""
    return _build("resnet50", gram_branch=True, num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model("deeplabv3plus_aux_resnet101")
def deeplabv3plus_aux_resnet101(
    *, num_classes: int = 2, in_channels: int = 3, **kwargs: object
) -> DeepLabV3Plus:
    """DeepLabV3+ (ResNet-101) with the GRAM branch."""
    return _build("resnet101", gram_branch=True, num_classes=num_classes, in_channels=in_channels, **kwargs)
