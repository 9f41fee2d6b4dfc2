"""predict_proba and sliding_window_proba."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slumwatch.models import get_model, predict_proba, sliding_window_proba
from slumwatch.models.inference import blend_weights, window_starts


class PixelwiseNet(nn.Module):
    """Per-pixel (1x1 conv) network: its output does not depend on the window position."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_predict_proba_is_a_distribution_and_restores_mode(images_odd: torch.Tensor) -> None:
    model = get_model("deeplabv3plus_resnet18", num_classes=3).train()
    probs = predict_proba(model, images_odd)
    assert probs.shape == (2, 3, 70, 90)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 70, 90))
    assert model.training
    tta = predict_proba(model, images_odd, tta_flip=True)
    assert tta.shape == probs.shape
    torch.testing.assert_close(tta.sum(1), torch.ones(2, 70, 90))


def test_predict_proba_rejects_3d_input() -> None:
    with pytest.raises(ValueError, match="B, C, H, W"):
        predict_proba(PixelwiseNet(), torch.rand(3, 8, 8))


@pytest.mark.parametrize("blend", ["gaussian", "uniform"])
def test_sliding_window_equals_full_prediction_for_pixelwise_net(blend: str) -> None:
    model = PixelwiseNet()
    image = torch.rand(2, 3, 45, 70)
    expected = predict_proba(model, image)
    got = sliding_window_proba(model, image, window=32, overlap=0.25, batch_size=3, blend=blend)  # type: ignore[arg-type]
    assert got.shape == (2, 3, 45, 70)
    torch.testing.assert_close(got, expected)


def test_sliding_window_accepts_chw_and_small_images() -> None:
    model = PixelwiseNet()
    image = torch.rand(3, 20, 11)
    got = sliding_window_proba(model, image, window=32, overlap=0.5, batch_size=2)
    assert got.shape == (1, 3, 20, 11)
    torch.testing.assert_close(got, predict_proba(model, image[None]))


def test_sliding_window_with_a_real_network(images_odd: torch.Tensor) -> None:
    model = get_model("deeplabv3plus_resnet18")
    got = sliding_window_proba(model, images_odd[:1], window=48, overlap=0.5, batch_size=4)
    assert got.shape == (1, 2, 70, 90)
    torch.testing.assert_close(got.sum(1), torch.ones(1, 70, 90))


def test_window_starts_cover_the_image() -> None:
    assert window_starts(10, 32, 16) == [0]
    assert window_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    weights = blend_weights(16, "gaussian", device=torch.device("cpu"))
    assert weights.max() == pytest.approx(1.0)
    assert weights.min() > 0
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_proba(PixelwiseNet(), torch.rand(3, 8, 8), window=4, overlap=1.0)
