"""DeepLabV2 (ResNet-101, ASPP classifier 6/12/18/24)."""

from __future__ import annotations

import torch

from slumwatch.models import get_model


def test_shapes_and_gradients(images_odd: torch.Tensor) -> None:
    model = get_model("deeplabv2_resnet101")
    assert len(model.classifier.branches) == 4
    assert [b.dilation[0] for b in model.classifier.branches] == [6, 12, 18, 24]
    out = model.forward_dict(images_odd[:1], fp=True, proj=True)
    assert out["logits"].shape == out["logits_fp"].shape == (1, 2, 70, 90)
    assert out["proj"].shape == (1, 128, 18, 23)
    out["logits"].mean().backward()
    assert model.backbone.layer4[0].conv1.weight.grad is not None
    assert model.classifier.branches[3].weight.grad is not None
