"""DeepLabV3+: output shapes of every forward_dict key, gradients, param groups, pretrained weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from slumwatch.models import UnsupportedOutputError, WeightsError, get_model, save_checkpoint
from slumwatch.models.base import BACKBONE_GROUP, HEAD_GROUP, call_forward_dict
from slumwatch.models.weights import adapt_first_conv

SMALL = "deeplabv3plus_resnet18"
AUX = "deeplabv3plus_aux_resnet50"
PROJ_DIM = 128


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (2, 3, 70, 90), (1, 3, 17, 33)])
def test_forward_returns_logits_at_input_resolution(shape: tuple[int, int, int, int]) -> None:
    model = get_model(SMALL, num_classes=3).eval()
    x = torch.rand(shape)
    logits = model(x)
    assert logits.shape == (shape[0], 3, shape[2], shape[3])
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, model.forward_dict(x)["logits"])


def test_forward_dict_shapes_even(images_even: torch.Tensor) -> None:
    model = get_model(SMALL)
    out = model.forward_dict(images_even, fp=True, proj=True)
    assert set(out) == {"logits", "logits_fp", "proj"}
    assert out["logits"].shape == (2, 2, 64, 64)
    assert out["logits_fp"].shape == (2, 2, 64, 64)
    assert out["proj"].shape == (2, PROJ_DIM, 16, 16)


def test_forward_dict_shapes_odd(images_odd: torch.Tensor) -> None:
    model = get_model(SMALL, proj_dim=32)
    out = model.forward_dict(images_odd, fp=True, proj=True)
    assert out["logits"].shape == (2, 2, 70, 90)
    assert out["logits_fp"].shape == (2, 2, 70, 90)
    assert out["proj"].shape == (2, 32, 18, 23)  # ceil(70/4), ceil(90/4)


def test_aux_model_gram_map_is_16x16(images_odd: torch.Tensor) -> None:
    model = get_model(AUX)
    out = model.forward_dict(images_odd, fp=True, gram=True, proj=True)
    assert out["gram"].shape == (2, 1, 16, 16)
    assert out["logits"].shape == out["logits_fp"].shape == (2, 2, 70, 90)
    assert out["proj"].shape == (2, PROJ_DIM, 18, 23)


def test_gram_on_a_model_without_branch_raises(images_even: torch.Tensor) -> None:
    model = get_model(SMALL)
    with pytest.raises(UnsupportedOutputError, match="GRAM"):
        model.forward_dict(images_even, gram=True)


def test_feature_perturbation_changes_the_prediction(images_even: torch.Tensor) -> None:
    model = get_model(SMALL).eval()
    out = model.forward_dict(images_even, fp=True)
    assert not torch.allclose(out["logits"], out["logits_fp"])
    torch.testing.assert_close(out["logits"], model(images_even))


def test_call_forward_dict_goes_through_module_call(images_even: torch.Tensor) -> None:
    model = get_model(SMALL).eval()
    out = call_forward_dict(model, images_even, proj=True)
    assert set(out) == {"logits", "proj"}


def _grad_names(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradients_reach_expected_parameters(images_even: torch.Tensor) -> None:
    model = get_model(SMALL)
    out = model.forward_dict(images_even, fp=True)
    target = torch.randint(0, 2, (2, 64, 64))
    (F.cross_entropy(out["logits"], target) + F.cross_entropy(out["logits_fp"], target)).backward()
    names = _grad_names(model)
    assert any(n.startswith("backbone.conv1") for n in names)
    assert any(n.startswith("backbone.layer4") for n in names)
    assert any(n.startswith("decoder.aspp") for n in names)
    assert any(n.startswith("decoder.block1") for n in names)
    assert "classifier.weight" in names
    assert not any(n.startswith("proj_head") for n in names)


def test_proj_and_gram_losses_reach_their_heads(images_even: torch.Tensor) -> None:
    model = get_model(AUX)
    out = model.forward_dict(images_even, gram=True, proj=True)
    (out["gram"].mean() + out["proj"].pow(2).mean()).backward()
    names = _grad_names(model)
    assert any(n.startswith("gram_branch") for n in names)
    assert any(n.startswith("proj_head") for n in names)
    assert any(n.startswith("decoder.") for n in names)
    assert not any(n.startswith("classifier") for n in names)


def test_param_groups_split_backbone_and_head() -> None:
    model = get_model(SMALL)
    groups = model.param_groups(0.01, 10.0)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {BACKBONE_GROUP, HEAD_GROUP}
    assert by_name[BACKBONE_GROUP]["lr"] == pytest.approx(0.01)
    assert by_name[HEAD_GROUP]["lr"] == pytest.approx(0.1)
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in by_name[BACKBONE_GROUP]["params"]} == backbone_ids
    assert not backbone_ids & {id(p) for p in by_name[HEAD_GROUP]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_four_band_input() -> None:
    model = get_model(SMALL, in_channels=4).eval()
    assert model(torch.rand(1, 4, 40, 40)).shape == (1, 2, 40, 40)


def test_weights_from_torchvision_state_dict(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = get_model(SMALL, weights=path)
    for name, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[name])


def test_weights_adapt_first_conv_to_four_bands(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    model = get_model(SMALL, in_channels=4, weights=path)
    expected = adapt_first_conv(reference.conv1.weight.detach(), 4)
    torch.testing.assert_close(model.backbone.conv1.weight.detach(), expected)
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_mismatched_weights_report_matched_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(WeightsError, match=r"\d+ of \d+ backbone keys matched") as info:
        get_model(SMALL, weights=path)
    assert "unexpected" in str(info.value)


def test_shape_mismatch_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(WeightsError, match="shape mismatch"):
        get_model(SMALL, weights=path)


def test_missing_and_unreadable_weight_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        get_model(SMALL, weights=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot be read"):
        get_model(SMALL, weights=junk)


def test_weights_from_a_slumwatch_checkpoint(tmp_path: Path) -> None:
    source = get_model(SMALL)
    path = save_checkpoint(
        tmp_path / "ckpt.pt",
        model=source,
        model_name=SMALL,
        model_kwargs=source.model_kwargs,
        normalization={},
        metadata={},
    )
    model = get_model(SMALL, weights=path)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[name])
    with pytest.raises(WeightsError, match="keys matched"):
        get_model(SMALL, num_classes=3, weights=path)
