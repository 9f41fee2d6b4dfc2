"""The file-based model registry: STAC-MLM-like entries round-trip, list in order, reject bad input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from slumwatch.actors.model_registry import (
    ENTRY_FILE,
    MLM_EXTENSION,
    RegistryError,
    list_model_runs,
    load_model_run,
    register_model_run,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _register(registry: Path, **overrides: Any):
    kwargs: dict[str, Any] = {
        "registry_dir": registry,
        "method": "slum-i",
        "model_name": "deeplabv3plus_resnet18",
        "checkpoint": registry / "ckpt" / "best.pt",
        "label_budget": 0.03,
        "split_sha256": "abc123",
        "train_config": {"epochs": 2, "lr": 0.01, "batch_size": 4},
        "training_data": [{"path": "/data/a.zarr", "city": "synth-a", "years": [2020, 2019]}],
        "metrics": {"miou": 0.5, "iou_per_class": {"non-slum": 0.9, "slum": 0.1}},
        "method_kwargs": {"tau_low": 0.7},
        "model_kwargs": {"num_classes": 2, "in_channels": 3},
        "bands": ("red", "green", "blue"),
        "normalization": {"bands": ["red", "green", "blue"], "low": [1, 2, 3], "high": [200, 210, 220]},
        "extra": {"wall_time_s": 12.5},
        "created": T0,
    }
    kwargs.update(overrides)
    return register_model_run(**kwargs)


def test_entry_round_trips_as_stac_mlm_item(tmp_path: Path) -> None:
    entry = _register(tmp_path)
    assert entry.run_id == "slum-i-deeplabv3plus_resnet18-b3-20250102T030405Z"
    assert entry.path == tmp_path / entry.run_id / ENTRY_FILE
    item = json.loads(entry.path.read_text())
    assert item["type"] == "Feature" and MLM_EXTENSION in item["stac_extensions"]
    props = item["properties"]
    assert props["mlm:architecture"] == "deeplabv3plus_resnet18"
    assert props["mlm:tasks"] == ["semantic-segmentation"]
    assert props["mlm:input"][0]["bands"] == ["red", "green", "blue"]
    assert props["slumwatch:label_budget"] == 0.03 and props["slumwatch:split_sha256"] == "abc123"
    assert props["slumwatch:cities"] == ["synth-a"] and props["slumwatch:years"] == [2019, 2020]
    assert "mlm:model" in item["assets"]["model"]["roles"]
    again = load_model_run(entry.path.parent)
    assert again == entry
    assert again.metrics["iou_per_class"]["slum"] == 0.1 and again.extra["wall_time_s"] == 12.5


def test_listing_is_ordered_and_ids_stay_unique(tmp_path: Path) -> None:
    assert list_model_runs(tmp_path / "absent") == []
    second = _register(tmp_path, method="st++", created=T0 + timedelta(hours=1))
    first = _register(tmp_path)
    clash = _register(tmp_path)  # same method/model/budget/time: a suffix keeps it apart
    assert clash.run_id == f"{first.run_id}-2"
    assert [e.run_id for e in list_model_runs(tmp_path)] == [first.run_id, clash.run_id, second.run_id]
    with pytest.raises(RegistryError, match="already registered"):
        _register(tmp_path, run_id=first.run_id)
    with pytest.raises(RegistryError, match="must match"):
        _register(tmp_path, run_id="../escape")


def test_malformed_entry_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken" / ENTRY_FILE
    bad.parent.mkdir()
    bad.write_text(json.dumps({"id": "broken", "properties": {}}))
    with pytest.raises(RegistryError, match="broken"):
        list_model_runs(tmp_path)
