"""PSPNet (ResNet-50, pyramid pooling)."""

from __future__ import annotations

import torch

from slumwatch.models import get_model


def test_shapes_and_gradients(images_odd: torch.Tensor) -> None:
    model = get_model("pspnet_resnet50", num_classes=3)
    out = model.forward_dict(images_odd, fp=True, proj=True)
    assert out["logits"].shape == out["logits_fp"].shape == (2, 3, 70, 90)
    assert out["proj"].shape == (2, 128, 18, 23)
    out["logits"].mean().backward()
    assert model.backbone.layer4[0].conv1.weight.grad is not None
    assert model.decoder.psp.blocks[0].pool[1][0].weight.grad is not None
    assert model.eval()(images_odd[:1]).shape == (1, 3, 70, 90)
