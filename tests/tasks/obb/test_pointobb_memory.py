"""PointOBB's chunked, recomputed RoI heads and feature maps (same losses and gradients, bounded saved memory) and
bf16 autocast."""

import pytest
import torch

from visionkit.datamodules.base import collate_dict, images_to_float
from visionkit.datamodules.obb.synthetic import SyntheticOBBDataset
from visionkit.tasks.obb.pointobb import PointOBBConfig, PointOBBTask

TINY = dict(backbone_kwargs={"widths": [8, 16, 16, 24, 24], "out_indices": [2, 3, 4]}, fpn_channels=16,
            roi_size=3, head_dim=32)


def _batch(n=2, seed=0, **kw):
    ds = SyntheticOBBDataset(n, seed=seed, label_mode="point", **kw)
    return images_to_float(collate_dict([ds[i] for i in range(n)]), ("image",))  # as it reaches the task


def _task(roi_chunk, scale_negatives=(), **net):
    torch.manual_seed(0)
    task = PointOBBTask(pointobb=PointOBBConfig(**TINY, roi_chunk=roi_chunk, **net), angle_loss_start=0.0,
                        angle_proposal_start=0.0, scale_negatives=list(scale_negatives))
    task._update_progress = lambda: None  # late phase: symmetry loss on, predicted angles in the proposals
    task.progress.fill_(0.5)
    return task


def _losses_and_grads(task, batch, seed=1):
    torch.manual_seed(seed)  # the same views and negatives for every task
    losses = task.batch_losses(batch)
    task.zero_grad()
    losses["loss"].backward()
    grads = {n: p.grad.clone() for n, p in task.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize("options", [{}, {"stage0_background": True}, {"stage0_sigmoid": True},
                                     {"checkpoint_features": True, "angle_head": "tensor", "tensor_image": True}])
def test_chunked_recomputed_heads_give_the_losses_and_gradients_of_one_pass(options):
    batch = _batch(2)
    batch = {**batch, "image": batch["image"].double()}
    ref_options = {k: v for k, v in options.items() if k != "checkpoint_features"}
    ref_task = _task(0, scale_negatives=[0.5], **ref_options).double()
    chunk_task = _task(37, scale_negatives=[0.5], **options).double()  # a chunk size that splits bags and images
    chunk_task.load_state_dict(ref_task.state_dict())
    ref_l, ref_g = _losses_and_grads(ref_task, batch)
    out_l, out_g = _losses_and_grads(chunk_task, batch)
    assert float(ref_l["neg"]) > 0 and float(ref_l["sym"]) > 0
    for k in ref_l:
        torch.testing.assert_close(out_l[k], ref_l[k], rtol=1e-10, atol=1e-12, msg=k)
    assert ref_g.keys() == out_g.keys() and "model.head0.fc.0.weight" in ref_g
    for k in ref_g:
        torch.testing.assert_close(out_g[k], ref_g[k], rtol=1e-9, atol=1e-12, msg=k)


def _saved_bytes(task, batch):
    """Bytes of the tensors autograd keeps for backward during one loss computation (each storage once)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t):
        if t.device.type == "cpu" and t.numel():
            seen[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())] = t.untyped_storage().nbytes()
        return t

    torch.manual_seed(1)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        task.batch_losses(batch)
    return sum(seen.values())


def test_recomputed_heads_keep_almost_nothing_per_point():
    # the same images with 4x more points per image: extra kept memory per point, with and without chunks
    batch = _batch(2)
    g = torch.Generator().manual_seed(0)

    def with_points(n):
        pts = [torch.rand(n, 2, generator=g) * 100 + 14 for _ in range(2)]
        labels = [torch.randint(0, 3, (n,), generator=g) for _ in range(2)]
        return {"image": batch["image"], "points": pts, "point_labels": labels}

    few, many = with_points(4), with_points(16)
    per_point = {}
    for chunk in (0, 256):
        task = _task(chunk)
        extra = _saved_bytes(task, many) - _saved_bytes(task, few)
        per_point[chunk] = extra / (sum(map(len, many["points"])) - sum(map(len, few["points"])))
    m = task.model
    roi_bytes = TINY["fpn_channels"] * m.roi_size ** 2 * 4  # float32 features of one RoI
    rois_per_point = 2 * m.bag_wh.shape[0] + m.jitter.shape[0]  # stage 0 + its resized view + stage 1
    assert per_point[0] > rois_per_point * roi_bytes  # one pass keeps every RoI's features
    assert per_point[256] < 0.2 * per_point[0], per_point


def test_one_step_under_bf16_autocast_is_finite():
    batch = _batch(2)
    task = _task(64)
    opt = torch.optim.SGD(task.parameters(), lr=1e-3)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = task.batch_losses(batch)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert float(losses["neg"].detach()) > 0 and float(losses["sym"].detach()) > 0
    losses["loss"].backward()
    grads = [p.grad for p in task.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    opt.step()
    # RoI features under autocast: the bf16 maps sampled in float32, as without autocast from the same maps
    m = task.model
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        feats = m.features(batch["image"])
        boxes = torch.tensor([[20.0, 30.0, 12.0, 6.0, 0.4], [40.0, 25.0, 30.0, 20.0, -1.0]])
        bidx = torch.tensor([0, 1])
        x = m.roi_features(feats, boxes, bidx)
    assert feats[0].dtype == torch.bfloat16 and x.dtype == torch.float32
    ref = m.roi_features([f.float() for f in feats], boxes, bidx)
    torch.testing.assert_close(x, ref, rtol=0, atol=0)


def test_recomputed_feature_maps_keep_less():
    batch = _batch(2)
    kept = {flag: _saved_bytes(_task(256, checkpoint_features=flag), batch) for flag in (False, True)}
    assert kept[True] < 0.5 * kept[False], kept
