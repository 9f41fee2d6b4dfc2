"""DINOv2 ViT-S/14 + DPT: shapes, padding to 14, frozen backbone, DINOv2 weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from slumwatch.models import UnsupportedOutputError, WeightsError, get_model
from slumwatch.models.base import BACKBONE_GROUP

NAME = "dinov2_vits14_dpt"


def test_forward_dict_shapes_odd(images_odd: torch.Tensor) -> None:
    model = get_model(NAME, num_classes=3)
    out = model.forward_dict(images_odd, fp=True, proj=True)
    assert out["logits"].shape == (2, 3, 70, 90)
    assert out["logits_fp"].shape == (2, 3, 70, 90)
    assert out["proj"].shape == (2, 128, 18, 23)
    with pytest.raises(UnsupportedOutputError):
        model.forward_dict(images_odd, gram=True)


def test_eval_forward_matches_forward_dict(images_even: torch.Tensor) -> None:
    model = get_model(NAME).eval()
    logits = model(images_even)
    assert logits.shape == (2, 2, 64, 64)
    torch.testing.assert_close(logits, model.forward_dict(images_even)["logits"])


def test_frozen_backbone_gets_no_gradient(images_even: torch.Tensor) -> None:
    model = get_model(NAME, freeze_backbone=True)
    out = model.forward_dict(images_even, fp=True)
    target = torch.randint(0, 2, (2, 64, 64))
    (F.cross_entropy(out["logits"], target) + F.cross_entropy(out["logits_fp"], target)).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.classifier[-1].weight.grad is not None
    assert model.head.projects[0].weight.grad is not None
    groups = model.param_groups(5e-6, 40.0)
    assert BACKBONE_GROUP not in {g["name"] for g in groups}


def test_unfrozen_backbone_gets_gradient(images_even: torch.Tensor) -> None:
    model = get_model(NAME)
    model(images_even).mean().backward()
    assert model.backbone.vit.blocks[0].attn.qkv.weight.grad is not None
    assert model.backbone.vit.blocks[11].mlp.fc2.weight.grad is not None  # the last block (index 11) is used
    assert model.backbone.vit.norm.weight.grad is not None  # features are normed, as DINOv2's


def test_loads_official_dinov2_style_weights(tmp_path: Path) -> None:
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    state = dict(vit.state_dict())
    state["mask_token"] = torch.zeros(1, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    model = get_model(NAME, weights=path)
    torch.testing.assert_close(model.backbone.vit.pos_embed, vit.pos_embed)
    torch.testing.assert_close(model.backbone.vit.blocks[3].attn.qkv.weight, vit.blocks[3].attn.qkv.weight)
    resnet = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, resnet)
    with pytest.raises(WeightsError, match="backbone keys matched"):
        get_model(NAME, weights=resnet)
