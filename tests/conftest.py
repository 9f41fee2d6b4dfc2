"""Shared fixtures: a throwaway Prefect API, a local Ray cluster, a tiny synthetic city.

Everything is generated (no committed binaries) and deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Keep every test single-threaded and quiet: CI has 2 cores, and results must not depend on them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The raylet waits for the metrics agent; on a loaded 2-core machine that start can take a while.
os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real sample scenes in ../shared/data (skips when absent)."""
    if not (SHARED_DATA / "RGB.byte.tif").is_file():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API and database for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local two-CPU Ray cluster shared by the session's Ray tests."""
    import ray

    from slumwatch.actors.cluster import init_local_ray

    if not ray.is_initialized():
        init_local_ray(num_cpus=2, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
