"""Cross-rank synchronisation of method state under data-parallel training (DDP).

Step objects that keep state outside the network (CAAT thresholds, Prototype Bank queues) must hold the
*same* state on every rank, or each rank gates and weights its pixels differently and a resumed run
(which restores rank 0's state everywhere) diverges from the uninterrupted one. These helpers are
collectives when a ``torch.distributed`` process group with more than one rank is running, and return
their input unchanged otherwise, so a step object calls them unconditionally.

Every rank must call them the same number of times in the same order (the usual collective contract):
call them from code every rank runs, never under a data-dependent ``if``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_rows", "all_reduce_sum", "world_size"]


def world_size() -> int:
    """Ranks of the running process group (1 when none is running)."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The element-wise sum of ``tensor`` over ranks (a new tensor; the input is left as is).

    Args:
        tensor: (...) any shape, identical on every rank, on the process group's device.
    """
    if world_size() == 1:
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_rows(rows: Tensor) -> Tensor:
    """Concatenate every rank's rows, in rank order.

    Args:
        rows: (n_r, D) with n_r rows on rank r (may be 0 and differ between ranks); D and dtype equal on
            every rank.

    Returns:
        (sum_r n_r, D): rank 0's rows first, then rank 1's, and so on (identical on every rank).
    """
    size = world_size()
    if size == 1:
        return rows
    count = torch.tensor([rows.shape[0]], dtype=torch.long, device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(size)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    if longest == 0:
        return rows
    padded = rows.new_zeros((longest, *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    gathered = [torch.zeros_like(padded) for _ in range(size)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(gathered, sizes, strict=True)], dim=0)
