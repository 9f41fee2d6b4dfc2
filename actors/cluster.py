"""Connect to a Ray cluster, or start a local one for the duration of a run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ray_cluster"]

RAY_ADDRESS_ENV = "RAY_ADDRESS"


@contextmanager
def ray_cluster(*, num_cpus: int | None = None, num_gpus: int | None = None) -> Iterator[None]:
    """Use the cluster named by ``$RAY_ADDRESS``, or start a local one (and stop it after).

    If Ray is already initialised in this process, it is reused and left running.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    address = os.environ.get(RAY_ADDRESS_ENV)
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            num_gpus=num_gpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield
    finally:
        ray.shutdown()
