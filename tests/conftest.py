"""Shared test setup: quick profile, one torch thread per worker, headless matplotlib."""

import os

os.environ.setdefault("LESSONS_PROFILE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("LESSONS_TEST_THREADS", "1")))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every device this machine has: CPU always, CUDA when present."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def generator():
    """A seeded CPU generator, so every test draws the same numbers on every run."""
    return torch.Generator().manual_seed(0)
