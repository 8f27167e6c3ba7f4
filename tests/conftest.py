"""Shared test configuration: hypothesis profiles, RNG isolation, device parametrisation."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
import torch
from hypothesis import HealthCheck, settings

from cuda_marker import skip_cuda_items_without_gpu, unmarked_cuda_items

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

CUDA = torch.cuda.is_available()

# pytest-xdist runs several workers, each with torch's own pool of CPU threads: share the cores out, for
# the workers would otherwise oversubscribe them and spin-wait on each other (many times slower here)
if (workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))) > 1:
    torch.set_num_threads(max(1, torch.get_num_threads() // workers))


@pytest.fixture(autouse=True)
def _restore_rng() -> Iterator[None]:
    """Give every test the same seeds and put the global RNG state back afterwards."""
    py_state = random.getstate()
    torch_state = torch.random.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if CUDA else None
    torch.manual_seed(0)
    random.seed(0)
    yield
    random.setstate(py_state)
    torch.random.set_rng_state(torch_state)
    if cuda_state is not None:
        torch.cuda.set_rng_state_all(cuda_state)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse tests that take a CUDA device without the ``cuda`` marker; skip ``cuda`` tests without a GPU."""
    unmarked = unmarked_cuda_items(items)
    if unmarked:
        raise pytest.UsageError(
            "these tests take a CUDA device but do not carry @pytest.mark.cuda (mark the test, or the "
            "parameter with pytest.param(..., marks=pytest.mark.cuda)):\n" + "\n".join(unmarked)
        )
    skip_cuda_items_without_gpu(items, CUDA)
