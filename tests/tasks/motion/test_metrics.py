"""Trajectory metrics against numpy references, and exact merging of states (as DDP does)."""

import numpy as np
import pytest
import torch

from visionkit.tasks.motion.metrics import ADE, FDE, MSE, MinADE, MinFDE, MPJPEHorizons


def _data(seed=0, K=4):
    g = torch.Generator().manual_seed(seed)
    modes = torch.randn(3, K, 5, 12, 2, generator=g)
    target = torch.randn(3, 5, 12, 2, generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.3
    mask[0, 0] = True
    return modes, target, mask


def test_ade_fde_against_numpy():
    modes, target, mask = _data()
    p, t, m = modes[:, 0].numpy(), target.numpy(), mask.numpy()
    d = np.sqrt(((p - t) ** 2).sum(-1))  # (B, A, T)
    ade, fde = ADE(), FDE()
    ade.update(modes[:, 0], target, mask)
    fde.update(modes[:, 0], target, mask)
    np.testing.assert_allclose(ade.compute().item(), d.mean(-1)[m].mean(), rtol=1e-6)
    np.testing.assert_allclose(fde.compute().item(), d[..., -1][m].mean(), rtol=1e-6)
    mse = MSE()
    mse.update(modes[:, 0], target, mask)
    np.testing.assert_allclose(mse.compute().item(), ((p - t) ** 2)[m].mean(), rtol=1e-6)


def test_min_ade_fde_against_numpy():
    modes, target, mask = _data(K=6)
    p, t, m = modes.numpy(), target.numpy(), mask.numpy()
    d = np.sqrt(((p - t[:, None]) ** 2).sum(-1))  # (B, K, A, T)
    for k in (1, 3, 6):
        ma, mf = MinADE(k), MinFDE(k)
        ma.update(modes, target, mask)
        mf.update(modes, target, mask)
        np.testing.assert_allclose(ma.compute().item(), d[:, :k].mean(-1).min(1)[m].mean(), rtol=1e-6)
        np.testing.assert_allclose(mf.compute().item(), d[:, :k, :, -1].min(1)[m].mean(), rtol=1e-6)
    one = MinADE()
    one.update(modes[:, 0], target, mask)
    ade = ADE()
    ade.update(modes[:, 0], target, mask)
    assert abs(one.compute().item() - ade.compute().item()) < 1e-7


def test_mpjpe_horizons():
    target = torch.zeros(2, 4, 25, 3)
    pred = torch.zeros(2, 4, 25, 3)
    pred[..., 0] = torch.arange(1, 26, dtype=torch.float32)  # error at future frame f (1-based) is f
    metric = MPJPEHorizons((80, 160, 400, 1000, 2000), fps=25)
    metric.update(pred, target)
    out = metric.compute()
    assert out["MPJPE_80ms"].item() == 2.0 and out["MPJPE_160ms"].item() == 4.0 and out["MPJPE_400ms"].item() == 10.0
    assert out["MPJPE_1000ms"].item() == 25.0 and torch.isnan(out["MPJPE_2000ms"])


def test_states_merge_like_ddp():
    """Two 'processes' with unequal batches: summing states equals one metric over all data."""
    modes, target, mask = _data(seed=3)
    whole, a, b = MinADE(3), MinADE(3), MinADE(3)
    whole.update(modes, target, mask)
    a.update(modes[:1], target[:1], mask[:1])
    b.update(modes[1:], target[1:], mask[1:])
    merged = (a.total + b.total) / (a.count + b.count)
    assert abs(merged.item() - whole.compute().item()) < 1e-6
    # a naive mean of per-process means would differ
    assert abs(0.5 * (a.compute() + b.compute()).item() - whole.compute().item()) > 1e-4


def _ddp_worker(rank: int, world: int, port: int, out_path: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    modes, target, mask = _data(seed=5)
    shard = slice(0, 1) if rank == 0 else slice(1, 3)  # unequal shards
    metrics = [ADE(), MinADE(3), MPJPEHorizons((40, 200), fps=25)]
    metrics[0].update(modes[shard, 0], target[shard], mask[shard])
    metrics[1].update(modes[shard], target[shard], mask[shard])
    metrics[2].update(modes[shard, 0], target[shard], mask[shard])
    values = [metrics[0].compute(), metrics[1].compute(), *metrics[2].compute().values()]
    if rank == 0:
        torch.save(torch.stack(values), out_path)
    dist.destroy_process_group()


@pytest.mark.distributed
def test_metrics_under_ddp_equal_single_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "values.pt")
    mp.spawn(_ddp_worker, args=(2, port, out), nprocs=2, join=True)
    modes, target, mask = _data(seed=5)
    ade, mina, mp_ = ADE(), MinADE(3), MPJPEHorizons((40, 200), fps=25)
    ade.update(modes[:, 0], target, mask)
    mina.update(modes, target, mask)
    mp_.update(modes[:, 0], target, mask)
    single = torch.stack([ade.compute(), mina.compute(), *mp_.compute().values()])
    torch.testing.assert_close(torch.load(out), single, rtol=1e-6, atol=1e-7)
