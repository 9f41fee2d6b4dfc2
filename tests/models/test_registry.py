"""Model registry: names, errors, recorded kwargs."""

from __future__ import annotations

import pytest
from torch import Tensor

from slumwatch.models import SegmentationModel, UnknownModelError, get_model, list_models, register_model

EXPECTED = {
    "deeplabv3plus_resnet18",
    "deeplabv3plus_resnet50",
    "deeplabv3plus_resnet101",
    "deeplabv3plus_aux_resnet50",
    "deeplabv3plus_aux_resnet101",
}


def test_list_models_holds_the_deeplab_family() -> None:
    names = list_models()
    assert set(names) >= EXPECTED
    assert names == sorted(names)


def test_unknown_name_lists_available_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        get_model("deeplabv3plus_resnet7")
    message = str(info.value)
    assert "deeplabv3plus_resnet7" in message
    assert "deeplabv3plus_resnet18" in message
    assert isinstance(info.value, KeyError)


def test_get_model_records_name_and_kwargs() -> None:
    model = get_model("deeplabv3plus_resnet18", num_classes=3, in_channels=4, proj_dim=16)
    assert isinstance(model, SegmentationModel)
    assert model.model_name == "deeplabv3plus_resnet18"
    assert model.model_kwargs == {"num_classes": 3, "in_channels": 4, "proj_dim": 16}
    assert model.num_classes == 3
    assert model.in_channels == 4


def test_register_model_rejects_a_second_builder_for_a_name() -> None:
    def other(*, num_classes: int, in_channels: int) -> SegmentationModel:
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already registered"):
        register_model("deeplabv3plus_resnet18")(other)


def test_register_model_makes_a_custom_network_available() -> None:
    class Tiny(SegmentationModel):
        def __init__(self, *, num_classes: int, in_channels: int) -> None:
            super().__init__(num_classes=num_classes, in_channels=in_channels, pad_multiple=1)
            import torch.nn as nn

            self.backbone = nn.Conv2d(in_channels, num_classes, 1)

        def forward_dict(self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False):
            return {"logits": self.backbone(x)}

    register_model("test_tiny_registry")(Tiny)
    model = get_model("test_tiny_registry", num_classes=5)
    assert "test_tiny_registry" in list_models()
    assert model.model_name == "test_tiny_registry"
    assert model.num_classes == 5


def test_importing_the_package_does_not_import_network_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, slumwatch.models as m; "
        "heavy = {'timm', 'segmentation_models_pytorch'} & set(sys.modules); "
        "assert not heavy, heavy; "
        "assert 'dinov2_vits14_dpt' in m.list_models()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
