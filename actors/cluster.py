"""Connect to a Ray cluster, or start a local one for the duration of a run."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["RayStartError", "init_local_ray", "ray_cluster"]

log = logging.getLogger(__name__)

RAY_ADDRESS_ENV = "RAY_ADDRESS"
AGENT_TIMEOUT_ENV = "RAY_agent_register_timeout_ms"
AGENT_TIMEOUT_MS = "180000"
"""A local node's agents can start slowly on small, busy machines: give them time."""
LOCAL_START_ATTEMPTS = 3


class RayStartError(RuntimeError):
    """A local Ray node could not be started."""


def init_local_ray(
    *, num_cpus: int | None = None, num_gpus: int | None = None, log_to_driver: bool = True, **kwargs: Any
) -> None:
    """Start a local Ray node, retrying when a busy machine makes the node start time out.

    ``log_to_driver`` forwards workers' output (their progress bars) to this process.
    """
    import ray

    os.environ.setdefault(AGENT_TIMEOUT_ENV, AGENT_TIMEOUT_MS)
    last: Exception | None = None
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                num_gpus=num_gpus,
                include_dashboard=False,
                log_to_driver=log_to_driver,
                configure_logging=False,
                **kwargs,
            )
            return
        except Exception as err:  # Ray raises a bare Exception on node start time-outs
            last = err
            log.warning("local Ray start failed (attempt %d/%d): %s", attempt, LOCAL_START_ATTEMPTS, err)
            ray.shutdown()
    raise RayStartError(f"could not start a local Ray node after {LOCAL_START_ATTEMPTS} attempts: {last}")


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
        init_local_ray(num_cpus=num_cpus, num_gpus=num_gpus)
    try:
        yield
    finally:
        ray.shutdown()
