"""Shared test set-up: offline, deterministic, the tests folder importable (toy task for framework tests)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tests use tiny tensors, which gain nothing from threads on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: offline, the tests folder on PYTHONPATH, few threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["HF_HUB_OFFLINE"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_visionkit(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m visionkit *args`` in a subprocess (DDP re-executes its command line) and assert success."""
    r = subprocess.run([sys.executable, "-m", "visionkit", *args], env=subprocess_env(), capture_output=True,
                       text=True, timeout=timeout, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r
