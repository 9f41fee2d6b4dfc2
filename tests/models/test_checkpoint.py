"""Checkpoints: round trip, atomic write, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slumwatch.models import CheckpointError, get_model, load_checkpoint, save_checkpoint
from slumwatch.models.checkpoint import read_checkpoint

SMALL = "deeplabv3plus_resnet18"
NORMALIZATION = {"low": [1.0, 2.0, 3.0], "high": [200.0, 210.0, 220.0], "method": "percentile"}


def _save(path: Path, **overrides: object) -> torch.nn.Module:
    model = get_model(SMALL, num_classes=2, proj_dim=16)
    kwargs: dict[str, object] = {
        "model": model,
        "model_name": SMALL,
        "model_kwargs": model.model_kwargs,
        "normalization": NORMALIZATION,
        "metadata": {"method": "supervised", "split": Path("/data/split.txt"), "metrics": {"miou": 0.5}},
    }
    kwargs.update(overrides)
    save_checkpoint(path, **kwargs)  # type: ignore[arg-type]
    return model


def test_round_trip_rebuilds_model_in_eval_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "model.pt"
    model = _save(path).eval()
    loaded = load_checkpoint(path)
    assert loaded.model_name == SMALL
    assert loaded.model_kwargs == {"num_classes": 2, "in_channels": 3, "proj_dim": 16}
    assert not loaded.model.training
    assert loaded.normalization == NORMALIZATION
    assert loaded.metadata["split"] == "/data/split.txt"
    assert loaded.metadata["metrics"] == {"miou": 0.5}
    x = torch.rand(1, 3, 40, 40)
    torch.testing.assert_close(loaded.model(x), model(x))


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _save(path)
    _save(path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_optimizer_and_step_state_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    model = get_model(SMALL)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    save_checkpoint(
        path,
        model=model,
        model_name=SMALL,
        model_kwargs=model.model_kwargs,
        normalization={},
        metadata={},
        optimizer=optimizer,
        scheduler_state={"iteration": 3},
        step_state={"threshold": torch.tensor([0.9, 0.8])},
    )
    raw = read_checkpoint(path)
    assert raw["optimizer_state"]["param_groups"][0]["lr"] == 0.1
    assert raw["scheduler_state"] == {"iteration": 3}
    torch.testing.assert_close(raw["step_state"]["threshold"], torch.tensor([0.9, 0.8]))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_wrong_format(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a slumwatch checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("hello")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(garbage)


def test_architecture_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _save(path)
    raw = read_checkpoint(path)
    raw["model_kwargs"]["num_classes"] = 5
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="does not fit architecture") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_unknown_model_name(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _save(path)
    raw = read_checkpoint(path)
    raw["model_name"] = "nonexistent_net"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="unknown model 'nonexistent_net'"):
        load_checkpoint(path)
