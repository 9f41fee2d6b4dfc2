"""Every SSL step through the real engine: finite losses, and a resumed run reproduces the losses of an
uninterrupted one exactly (step state -- CAAT, prototype bank, EMA teacher -- travels in the checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from slumwatch.models.engine import Engine, EpochReport, TrainConfig
from slumwatch.models.methods import get_method
from slumwatch.models.methods.augment import UnlabeledViews

SIZE = 16
CASES = {
    "fixmatch": ("fixmatch", {"threshold": 0.6}),
    "unimatch": ("unimatch", {"threshold": 0.6}),
    "slum-i": (
        "unimatch",
        {"tau_low": 0.55, "momentum": 0.9, "queue_size": 16, "samples_per_class": 4, "dim": 8},
    ),
    "unimatch-v2": ("unimatch_v2", {"threshold": 0.6}),
    "unimatch-v2-slum-i": (
        "unimatch_v2",
        {"tau_low": 0.55, "queue_size": 16, "samples_per_class": 4, "dim": 8},
    ),
}


class _Tiles(Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int, seed: int, *, labels: bool) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, SIZE, SIZE, generator=g)
        self.labels = (self.images[:, 0] > 0.5).long() if labels else None

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = {"image": self.images[index]}
        if self.labels is not None:
            sample["label"] = self.labels[index]
        return sample


class _StopError(Exception):
    pass


def _engine(name: str, run_dir: Path, model_factory, *, stop_after: int | None = None) -> Engine:
    mode, kwargs = CASES[name]
    labeled = DataLoader(_Tiles(4, 0, labels=True), batch_size=2, shuffle=True)
    unlabeled = DataLoader(
        UnlabeledViews(_Tiles(4, 1, labels=False), seed=0, mode=mode), batch_size=2, shuffle=True
    )

    def stop(report: EpochReport) -> None:
        if stop_after is not None and report.epoch == stop_after:
            raise _StopError

    return Engine(
        TrainConfig(epochs=2, batch_size=2, lr=0.05, device="cpu", amp=False, seed=1),
        model=model_factory(seed=0, sharpen=60.0),
        step=get_method(name, **kwargs),
        run_dir=run_dir,
        train_loader=labeled,
        unlabeled_loader=unlabeled,
        progress=False,
        on_epoch_end=stop,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_resumed_run_reproduces_losses(name: str, tmp_path: Path, model_factory) -> None:
    engine = _engine(name, tmp_path / "a", model_factory)
    straight = engine.fit()
    gating = getattr(engine.step, "gating", None)
    if gating is not None:  # the resumed state is not trivial
        assert int(gating.bank.count.sum()) > 0
        assert not torch.allclose(gating.caat.thresholds, torch.full((2,), 0.55))
    assert len(straight.losses) == 4 and all(torch.isfinite(torch.tensor(v)) for _, v in straight.losses)
    with pytest.raises(_StopError):
        _engine(name, tmp_path / "b", model_factory, stop_after=1).fit()
    resumed = _engine(name, tmp_path / "b", model_factory).fit()
    assert resumed.resumed_from_epoch == 1
    assert list(resumed.losses) == list(straight.losses[2:])
