"""Point-cloud metrics against scikit-learn and a per-shape loop reference."""

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from visionkit.tasks.pointcloud.metrics import MeanClassAccuracy, RepeatedAccuracy, ShapeNetPartMIoU


def test_mean_class_accuracy_matches_sklearn_over_several_batches():
    g = torch.Generator().manual_seed(0)
    macc = MeanClassAccuracy(5)
    ys, ps = [], []
    for _ in range(3):
        y = torch.randint(0, 4, (37,), generator=g)  # class 4 never occurs: skipped by mAcc
        logits = torch.randn(37, 5, generator=g) + 2 * torch.nn.functional.one_hot(y, 5)
        macc.update(logits, y)
        ys.append(y)
        ps.append(logits.argmax(-1))
    y, p = torch.cat(ys).numpy(), torch.cat(ps).numpy()
    assert macc.compute().item() == pytest.approx(balanced_accuracy_score(y, p), abs=1e-6)


def test_merged_states_equal_single_pass():
    """What DDP does: the sum-reduced states of two processes give the metric of the union."""
    y = torch.randint(0, 3, (40,))
    p = torch.randint(0, 3, (40,))
    a, b, whole = MeanClassAccuracy(3), MeanClassAccuracy(3), MeanClassAccuracy(3)
    a.update(p[:13], y[:13])
    b.update(p[13:], y[13:])
    whole.update(p, y)
    a.merge_state(b)
    assert torch.equal(a.confmat, whole.confmat)
    assert a.compute() == whole.compute()


def reference_miou(pred, gt, cat, category_parts):
    shape_ious, per_cat = [], {}
    for b in range(len(cat)):
        ious = []
        for part in category_parts[int(cat[b])]:
            i = np.sum((pred[b] == part) & (gt[b] == part))
            u = np.sum((pred[b] == part) | (gt[b] == part))
            ious.append(1.0 if u == 0 else i / u)
        shape_ious.append(np.mean(ious))
        per_cat.setdefault(int(cat[b]), []).append(np.mean(ious))
    return np.mean(shape_ious), np.mean([np.mean(v) for v in per_cat.values()])


def test_shapenetpart_miou_matches_loop_reference():
    category_parts = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    rng = np.random.default_rng(0)
    m = ShapeNetPartMIoU(category_parts)
    P, G, C = [], [], []
    for _ in range(3):
        cat = rng.integers(0, 2, 6)  # category 2 is absent: class mIoU averages present ones
        gt = np.stack([rng.choice(category_parts[c][:-1], 50) for c in cat])  # last part absent from the truth
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 9, gt.shape))
        m.update(torch.as_tensor(pred), torch.as_tensor(gt), torch.as_tensor(cat))
        P.append(pred), G.append(gt), C.append(cat)
    inst, cls = reference_miou(np.concatenate(P), np.concatenate(G), np.concatenate(C), category_parts)
    out = m.compute()
    assert out["instance_mIoU"].item() == pytest.approx(inst, abs=1e-6)
    assert out["class_mIoU"].item() == pytest.approx(cls, abs=1e-6)


def test_miou_perfect_prediction_and_absent_parts_count_one():
    m = ShapeNetPartMIoU([[0, 1], [2, 3]])
    gt = torch.tensor([[0, 0, 0, 0]])  # part 1 absent in truth and prediction -> IoU 1
    m.update(gt.clone(), gt, torch.tensor([0]))
    assert m.compute()["instance_mIoU"].item() == 1.0
    m.reset()
    m.update(torch.tensor([[1, 1, 1, 1]]), gt, torch.tensor([0]))  # both parts IoU 0
    assert m.compute()["instance_mIoU"].item() == 0.0


def test_repeated_accuracy_mean_and_std():
    m = RepeatedAccuracy(2)
    y = torch.tensor([0, 1, 1, 0])
    m.update(torch.tensor([0, 1, 1, 0]), y, 0)  # 1.0
    m.update(torch.tensor([0, 0, 1, 1]), y, 1)  # 0.5
    out = m.compute()
    assert out["mean"].item() == pytest.approx(0.75)
    assert out["std"].item() == pytest.approx(0.25)


def _ddp_data():
    """Labels, predictions, part labels and categories shared by the DDP workers and the one-process reference."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (40,), generator=g)
    p = torch.randint(0, 3, (40,), generator=g)
    seg_p = torch.randint(0, 5, (6, 30), generator=g)
    seg_t = torch.randint(0, 5, (6, 30), generator=g)
    return y, p, seg_p, seg_t, torch.tensor([0, 1, 0, 1, 1, 0])


def _ddp_worker(rank, world, port, results):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    y, p, seg_p, seg_t, cat = _ddp_data()
    macc, miou = MeanClassAccuracy(3), ShapeNetPartMIoU([[0, 1], [2, 3, 4]])
    macc.update(p[rank::world], y[rank::world])
    miou.update(seg_p[rank::world], seg_t[rank::world], cat[rank::world])
    out = (macc.compute().item(), miou.compute()["instance_mIoU"].item(), miou.compute()["class_mIoU"].item())
    results[rank] = out
    dist.destroy_process_group()


@pytest.mark.distributed
def test_metrics_are_exact_under_ddp():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_ddp_worker, args=(2, port, results), nprocs=2, join=True)
    y, p, seg_p, seg_t, cat = _ddp_data()
    macc, miou = MeanClassAccuracy(3), ShapeNetPartMIoU([[0, 1], [2, 3, 4]])
    macc.update(p, y)
    miou.update(seg_p, seg_t, cat)
    ref = (macc.compute().item(), miou.compute()["instance_mIoU"].item(), miou.compute()["class_mIoU"].item())
    for rank in range(2):
        assert results[rank] == pytest.approx(ref, abs=1e-6)
