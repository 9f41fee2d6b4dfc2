"""CAAT thresholds and Prototype Bank queues stay identical across DDP ranks (two gloo processes on CPU).

Each rank sees half of a fixed batch. After the updates, every rank must hold the state that a single
process gets from the whole batch (CAAT), or the same queues on every rank holding both ranks' samples in
rank order (bank).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from slumwatch.models.methods.caat import CAATConfig, ClassAwareThreshold
from slumwatch.models.methods.prototype_bank import PrototypeBank, PrototypeBankConfig
from slumwatch.models.methods.sync import all_gather_rows, all_reduce_sum, world_size

WORLD = 2
STEPS = 3
CAAT_CFG = CAATConfig(num_classes=3, momentum=0.5, tau_low=0.1, tau_high=0.99)
BANK_CFG = PrototypeBankConfig(num_classes=2, dim=4, queue_size=16, samples_per_class=3, seed=0)


def _batch(step: int) -> dict[str, torch.Tensor]:
    """A fixed global batch of 2 images (one per rank) for one step."""
    gen = torch.Generator().manual_seed(100 + step)
    conf = torch.rand(2, 6, 6, generator=gen)
    label = torch.randint(0, 3, (2, 6, 6), generator=gen)
    label[1] = label[1].clamp(max=1)  # rank 1 never sees class 2
    valid = torch.rand(2, 6, 6, generator=gen) > 0.2
    feats = torch.randn(2, 4, 3, 3, generator=gen)
    bank_label = torch.randint(0, 2, (2, 6, 6), generator=gen)
    keep = torch.rand(2, 6, 6, generator=gen) > 0.5
    keep[1, :, :] = keep[1] & (torch.arange(6) < 2)  # fewer pixels on rank 1
    return {
        "conf": conf,
        "label": label,
        "valid": valid,
        "feats": feats,
        "bank_label": bank_label,
        "keep": keep,
    }


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        caat = ClassAwareThreshold(CAAT_CFG)
        bank = PrototypeBank(BANK_CFG)
        sl = slice(rank, rank + 1)
        for step in range(STEPS):
            b = _batch(step)
            caat.update(b["conf"][sl], b["label"][sl], b["valid"][sl])
            bank.update(b["feats"][sl], b["bank_label"][sl], b["keep"][sl])
        gathered = all_gather_rows(torch.full((rank, 2), float(rank)))
        summed = all_reduce_sum(torch.tensor([1.0, float(rank)]))
        torch.save(
            {
                "tau": caat.thresholds,
                "bank": bank.state_dict(),
                "gathered": gathered,
                "summed": summed,
                "world": world_size(),
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_states(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("sync")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_collectives_are_identity_without_a_process_group() -> None:
    rows = torch.ones(3, 2)
    assert world_size() == 1
    assert all_gather_rows(rows) is rows
    assert all_reduce_sum(rows) is rows


def test_collectives_across_two_ranks(rank_states: list[dict[str, object]]) -> None:
    for state in rank_states:
        assert state["world"] == WORLD
        # rank 0 contributes no rows, rank 1 one row of ones
        assert torch.equal(state["gathered"], torch.ones(1, 2))  # type: ignore[arg-type]
        assert torch.equal(state["summed"], torch.tensor([2.0, 1.0]))  # type: ignore[arg-type]


def test_caat_thresholds_follow_the_global_batch_on_every_rank(rank_states: list[dict[str, object]]) -> None:
    single = ClassAwareThreshold(CAAT_CFG)
    for step in range(STEPS):
        b = _batch(step)
        single.update(b["conf"], b["label"], b["valid"])
    for state in rank_states:
        assert torch.allclose(state["tau"], single.thresholds, atol=1e-6)  # type: ignore[arg-type]


def test_prototype_queues_are_identical_on_every_rank(rank_states: list[dict[str, object]]) -> None:
    bank0, bank1 = (s["bank"] for s in rank_states)
    assert torch.equal(bank0["queues"], bank1["queues"])  # type: ignore[index]
    assert torch.equal(bank0["count"], bank1["count"])  # type: ignore[index]
    assert torch.equal(bank0["ptr"], bank1["ptr"])  # type: ignore[index]
    # both ranks' samples went in: per class, the sum over steps and ranks of min(gated pixels, cap)
    expected = torch.zeros(BANK_CFG.num_classes, dtype=torch.long)
    for step in range(STEPS):
        b = _batch(step)
        small_label = F.interpolate(b["bank_label"].unsqueeze(1).float(), size=(3, 3), mode="nearest")
        small_keep = F.interpolate(b["keep"].unsqueeze(1).float(), size=(3, 3), mode="nearest") > 0
        for rank in range(WORLD):
            for cls in range(BANK_CFG.num_classes):
                n = int((small_keep[rank] & (small_label[rank] == cls)).sum())
                expected[cls] += min(n, BANK_CFG.samples_per_class)
    assert torch.equal(bank0["count"], expected.clamp(max=BANK_CFG.queue_size))  # type: ignore[index]
    rebuilt = PrototypeBank(BANK_CFG)
    rebuilt.load_state_dict(bank0)  # type: ignore[arg-type]
    assert torch.allclose(rebuilt.queues.norm(dim=-1)[rebuilt.queues.abs().sum(-1) > 0], torch.tensor(1.0))
