"""PointOBB: geometry of the bags and RoIs, dense-to-sparse matching, losses, metric and a learning curve."""

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Point, Polygon

from visionkit.datamodules.base import collate_dict, images_to_float
from visionkit.datamodules.obb.synthetic import SyntheticOBBDataset
from visionkit.ops.rotated_boxes import obb2corners, points_in_obb
from visionkit.tasks.obb.coders import UCRCoder, build_coder
from visionkit.tasks.obb.pointobb import (
    PointOBB,
    PointOBBConfig,
    PointOBBTask,
    PseudoBoxIoU,
    rotated_roi_grid,
    weighted_box_mean,
)
from visionkit.tasks.obb.pointobb_losses import _ssc

TINY = dict(backbone_kwargs={"widths": [8, 16, 16, 24, 24], "out_indices": [2, 3, 4]}, fpn_channels=16,
            roi_size=3, head_dim=32)


def _model(**kw):
    torch.manual_seed(0)
    args = dict(TINY)
    args.update(kw)
    return PointOBB(3, UCRCoder(dims=3), PointOBBConfig(**args))


def _task(net=None, **kw):
    """A tiny task: ``net`` overrides the network options of :data:`TINY`, ``kw`` are task arguments."""
    return PointOBBTask(pointobb=PointOBBConfig(**{**TINY, **(net or {})}), **kw)


def _batch(n=4, seed=0, **kw):
    ds = SyntheticOBBDataset(n, seed=seed, label_mode="point", **kw)
    return images_to_float(collate_dict([ds[i] for i in range(n)]), ("image",))  # as it reaches the task


def test_roi_grid_lies_in_the_box_and_is_centred():
    boxes = torch.tensor([[40.0, 30.0, 20.0, 8.0, 0.7], [10.0, 12.0, 6.0, 14.0, -1.2]], dtype=torch.float64)
    pts = rotated_roi_grid(boxes, 4)  # (2, 16, 2)
    assert pts.shape == (2, 16, 2)
    for k in range(2):
        assert points_in_obb(pts[k], boxes[k:k + 1]).all()
        assert torch.allclose(pts[k].mean(0), boxes[k, :2], atol=1e-12)
    # axis-aligned box: cell centres at cx + (i + 0.5)/S w - w/2
    b = torch.tensor([[50.0, 20.0, 8.0, 4.0, 0.0]], dtype=torch.float64)
    g = rotated_roi_grid(b, 2)[0]
    ref = torch.tensor([[48.0, 19.0], [52.0, 19.0], [48.0, 21.0], [52.0, 21.0]], dtype=torch.float64)
    assert torch.allclose(g, ref)


def test_roi_features_sample_a_linear_map_exactly():
    m = _model()
    m.strides = [8, 16, 32]
    H = W = 64
    # feature maps whose channels are linear functions of the pixel position: bilinear sampling is exact inside
    feats = []
    for s in m.strides:
        h, w = H // s, W // s
        ys = (torch.arange(h, dtype=torch.float64) + 0.5) * s
        xs = (torch.arange(w, dtype=torch.float64) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        f = torch.stack([xx, yy, 2 * xx - yy + 3] + [xx * 0 + s] * 13)  # (16, h, w); channel 3 marks the level
        feats.append(f[None].repeat(2, 1, 1, 1))
    boxes = torch.tensor([[30.0, 28.0, 8.0, 6.0, 0.3], [33.0, 31.0, 40.0, 30.0, -0.5], [29.0, 33.0, 5.0, 4.0, 1.0]],
                         dtype=torch.float64)
    bidx = torch.tensor([0, 1, 1])
    out = m.roi_features(feats, boxes, bidx).view(3, 16, 9)
    grid = rotated_roi_grid(boxes, 3)  # (3, 9, 2)
    assert torch.allclose(out[:, 0], grid[..., 0], atol=1e-9)
    assert torch.allclose(out[:, 1], grid[..., 1], atol=1e-9)
    assert torch.allclose(out[:, 2], 2 * grid[..., 0] - grid[..., 1] + 3, atol=1e-9)
    lvl = m.level_of(boxes[:, 2:4])
    assert torch.equal(out[:, 3, 0], torch.tensor([m.strides[int(i)] for i in lvl], dtype=torch.float64))


def test_level_of_follows_the_scale():
    m = _model(finest_scale=24.0)
    wh = torch.tensor([[10.0, 10.0], [23.9, 23.9], [24.0, 24.0], [47.0, 47.0], [48.0, 48.0], [500.0, 500.0]])
    assert m.level_of(wh).tolist() == [0, 0, 1, 1, 2, 2]


def test_weighted_box_mean_against_numpy_and_angle_wrap():
    g = torch.Generator().manual_seed(1)
    boxes = torch.rand(3, 5, 5, generator=g, dtype=torch.float64) * 10
    boxes[..., 4] = 0.2 + 0.1 * torch.rand(3, 5, generator=g, dtype=torch.float64)
    w = torch.rand(3, 5, generator=g, dtype=torch.float64)
    out = weighted_box_mean(boxes, w)
    b, ww = boxes.numpy(), w.numpy()
    ref = (b[..., :4] * ww[..., None]).sum(1) / ww.sum(1, keepdims=True)
    assert np.allclose(out[:, :4].numpy(), ref)
    assert np.allclose(out[:, 4].numpy(), (b[..., 4] * ww).sum(1) / ww.sum(1), atol=1e-3)  # small spread: ~linear
    # angles on both sides of the le90 boundary average to the boundary, not to 0
    across = torch.tensor([[[0, 0, 4, 2, math.pi / 2 - 0.05], [0, 0, 4, 2, -math.pi / 2 + 0.05]]], dtype=torch.float64)
    t = float(weighted_box_mean(across, torch.ones(1, 2, dtype=torch.float64))[0, 4])
    assert abs(abs(t) - math.pi / 2) < 1e-9


def test_stage0_bags_and_stage1_jitter():
    m = _model()
    pts = torch.tensor([[30.0, 40.0], [70.0, 20.0]])
    labels = torch.tensor([0, 2])
    bags = m.stage0_bags(pts, None, labels)  # (2, 70, 5)
    assert bags.shape == (2, 70, 5)
    assert torch.allclose(bags[..., :2], pts[:, None].expand(2, 70, 2))
    area = bags[..., 2] * bags[..., 3]
    scales = torch.tensor([8.0, 9.8, 11.9, 14.6, 17.8, 21.8, 26.6, 32.5, 39.7, 48.5])
    assert torch.allclose(area.view(2, 10, 7), (scales**2)[None, :, None].expand(2, 10, 7), rtol=1e-5)
    ratios = (bags[..., 2] / bags[..., 3]).view(2, 10, 7)
    assert torch.allclose(ratios[0, 3], torch.tensor([1 / 3, 1 / 2, 2 / 3, 1, 3 / 2, 2, 3]), rtol=1e-5)
    assert (bags[..., 4] == 0).all()
    # per-level angles: a proposal takes the angle of its level; rotation-agnostic classes stay horizontal
    m2 = _model(agnostic_classes=[2])
    theta = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    rb = m2.stage0_bags(pts, theta, labels)
    lvl = m2.level_of(rb[0, :, 2:4])
    assert torch.allclose(rb[0, :, 4], theta[0][lvl])
    assert (rb[1, :, 4] == 0).all()
    # stage 1: jittered boxes keep the angle, and the centre offsets are along the box axes
    b0 = torch.tensor([[50.0, 50.0, 20.0, 10.0, 0.5]])
    j = m.stage1_bags(b0)[0]  # (81, 5)
    assert j.shape == (81, 5) and torch.allclose(j[:, 4], torch.full((81,), 0.5))
    u = torch.tensor([math.cos(0.5), math.sin(0.5)])
    v = torch.tensor([-math.sin(0.5), math.cos(0.5)])
    d = j[:, :2] - b0[:, :2]
    ou, ov = d @ u / j[:, 2], d @ v / j[:, 3]
    assert set(np.round(ou.double().numpy(), 4).tolist()) == {-0.1, 0.0, 0.1}
    assert set(np.round(ov.double().numpy(), 4).tolist()) == {-0.1, 0.0, 0.1}
    assert set(np.round((j[:, 2] / 20).double().numpy(), 4).tolist()) == {0.8, 1.0, 1.2}


def test_negatives_overlap_little_with_the_boxes_of_their_image():
    m = _model(num_negatives=64, neg_iou_thr=0.3)
    torch.manual_seed(0)
    boxes0 = torch.tensor([[30.0, 30.0, 30.0, 12.0, 0.3], [90.0, 80.0, 40.0, 20.0, -0.7],
                           [60.0, 60.0, 30.0, 20.0, 1.0]])
    bidx = torch.tensor([0, 0, 1])
    neg, nb = m.negatives(boxes0, bidx, 2, (128, 128))
    assert neg.shape[0] > 30 and set(nb.tolist()) <= {0, 1}
    for box, b in zip(neg, nb):
        pn = Polygon(obb2corners(box[None])[0].tolist())
        for g, gb in zip(boxes0, bidx):
            if gb == b:
                pg = Polygon(obb2corners(g[None])[0].tolist())
                assert pn.intersection(pg).area / pn.union(pg).area < 0.3 + 1e-6


def test_negatives_cover_no_point_of_their_image():
    m = _model(num_negatives=64, neg_iou_thr=1.01)  # IoU filter off: only the point filter acts
    torch.manual_seed(1)
    boxes0 = torch.tensor([[30.0, 30.0, 60.0, 40.0, 0.3], [90.0, 80.0, 60.0, 40.0, -0.7],
                           [60.0, 60.0, 50.0, 40.0, 1.0]])
    points = boxes0[:, :2] + torch.tensor([[3.0, -2.0], [0.0, 4.0], [-5.0, 1.0]])
    bidx = torch.tensor([0, 0, 1])
    neg, nb = m.negatives(boxes0, bidx, 2, (128, 128), points=points)
    all_neg, _ = m.negatives(boxes0, bidx, 2, (128, 128))
    assert 0 < neg.shape[0] < all_neg.shape[0]  # large random boxes often cover a point: some are dropped
    for box, b in zip(neg, nb):
        poly = Polygon(obb2corners(box[None])[0].tolist())
        for p, pb in zip(points, bidx):
            if pb == b:
                assert not poly.covers(Point(p.tolist()))


def test_scaled_negatives_overlap_their_box_by_the_square_of_the_factor():
    boxes0 = torch.tensor([[30.0, 30.0, 30.0, 12.0, 0.3], [90.0, 80.0, 40.0, 20.0, -0.7]], dtype=torch.float64)
    neg, nb = PointOBB.scaled_negatives(boxes0, torch.tensor([0, 1]), [0.4, 2.5])
    assert neg.shape == (4, 5) and nb.tolist() == [0, 0, 1, 1]
    for box, b in zip(neg, nb):
        pn = Polygon(obb2corners(box[None])[0].tolist())
        pg = Polygon(obb2corners(boxes0[b][None])[0].tolist())
        assert pn.intersection(pg).area / pn.union(pg).area == pytest.approx(0.16, abs=1e-6)
        assert torch.equal(box[[0, 1, 4]], boxes0[b][[0, 1, 4]])


def test_angle_head_and_scale_negative_options_are_checked():
    with pytest.raises(ValueError, match="pointobb.angle_head"):
        _task({"angle_head": "steerable"})
    with pytest.raises(ValueError, match="scale_negatives"):
        _task(scale_negatives=[0.5, 1.0])


def test_background_head_scores_classes_and_background():
    m = _model(stage0_background=True)
    assert m.head0.cls.out_features == 4 and m.head0.ins.out_features == 3
    batch = _batch(2)
    out = m.run(batch["image"], list(batch["points"]), list(batch["labels"]), rotate_proposals=False)
    # class columns of a softmax over classes + background: positive, summing to less than one
    cls0 = out.stage0.cls
    assert cls0.shape[-1] == 3 and (cls0 > 0).all() and (cls0.sum(-1) < 1).all()
    with pytest.raises(ValueError, match="choose one"):
        _model(stage0_background=True, stage0_sigmoid=True)
    task = _task({"stage0_background": True})
    losses = task.batch_losses(batch)
    assert float(losses["neg"]) > 0
    losses["loss"].backward()
    assert task.model.head0.cls.weight.grad[3].abs().sum() > 0  # the negatives train the background logit


def test_pseudo_box_is_the_weighted_mean_of_the_top_k():
    m = _model(topk=3)
    g = torch.Generator().manual_seed(0)
    bags = torch.rand(2, 10, 5, generator=g) * 20
    bags[..., 4] = 0.1
    cls = torch.rand(2, 10, 3, generator=g)
    ins = torch.softmax(torch.randn(2, 10, 3, generator=g), 1)
    labels = torch.tensor([1, 2])
    boxes, bag = m.pseudo_boxes(bags, cls, ins, labels)
    for n in range(2):
        s = (cls[n, :, labels[n]] * ins[n, :, labels[n]]).numpy()
        top = np.argsort(-s)[:3]
        ref = (bags[n, top, :4].numpy() * s[top, None]).sum(0) / s[top].sum()
        assert np.allclose(boxes[n, :4].numpy(), ref, atol=1e-5)
        assert math.isclose(float(bag[n]), float(s.sum()), rel_tol=1e-5)
        assert math.isclose(float(boxes[n, 4]), 0.1, abs_tol=1e-6)


def test_dense_to_sparse_against_brute_force():
    m = _model()
    m.strides = [8, 16]
    coder = m.coder
    g = torch.Generator().manual_seed(0)
    amaps = [torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64),
             torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)]
    pts = torch.tensor([[3.0, 60.0], [33.3, 17.9], [63.0, 2.0]], dtype=torch.float64)
    bidx = torch.tensor([0, 1, 1])
    theta, enc, _ = m.dense_to_sparse(amaps, pts, bidx)
    for lvl, (a, s) in enumerate(zip(amaps, m.strides)):
        for n in range(3):
            acc, cnt = torch.zeros(3, dtype=torch.float64), 0
            for i in range(a.shape[-2]):
                for j in range(a.shape[-1]):
                    if math.hypot((j + 0.5) * s - pts[n, 0], (i + 0.5) * s - pts[n, 1]) <= 1.5 * s:
                        acc += a[bidx[n], :, i, j]
                        cnt += 1
            assert cnt > 0
            assert torch.allclose(enc[n, lvl], acc / cnt)
            assert math.isclose(float(theta[n, lvl]), float(coder.decode(acc / cnt)), abs_tol=1e-9)


def test_dense_to_sparse_recovers_a_constant_angle_field():
    m = _model()
    amaps = [m.coder.encode(torch.full((1, 16, 16), 0.7)).permute(0, 3, 1, 2)]
    m.strides = [8]
    theta, _, cons = m.dense_to_sparse(amaps, torch.tensor([[40.0, 50.0]]), torch.tensor([0]))
    assert math.isclose(float(theta[0, 0]), 0.7, abs_tol=1e-5)
    assert float(cons.abs().max()) < 1e-5  # valid encodings satisfy the unit-circle constraint


def test_ssc_loss_properties():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 70, 3, generator=g)
    labels = torch.tensor([0, 1, 2, 1])
    assert float(_ssc(a, a, labels, 10, 7)) < 1e-6
    assert float(_ssc(a, 3.0 * a, labels, 10, 7)) < 1e-6  # cosine: invariant to a positive factor
    b = a.clone()
    b.view(4, 10, 7, 3)[:, :5] = 0  # scale distributions on disjoint halves: orthogonal per group
    c = a.clone()
    c.view(4, 10, 7, 3)[:, 5:] = 0
    assert math.isclose(float(_ssc(b, c, labels, 10, 7)), 1.0, abs_tol=1e-6)


def test_pseudo_box_iou_metric_against_shapely():
    g = torch.Generator().manual_seed(2)
    a = torch.cat([torch.rand(6, 2, generator=g) * 20 + 20, torch.rand(6, 2, generator=g) * 10 + 5,
                   torch.rand(6, 1, generator=g) * 3 - 1.5], 1).double()
    b = a + torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    b[:, 2:4] = b[:, 2:4].abs() + 1
    met = PseudoBoxIoU()
    met.update(a[:3], b[:3])
    met.update(a[3:], b[3:])
    ref = []
    for x, y in zip(a, b):
        px, py = Polygon(obb2corners(x[None])[0].tolist()), Polygon(obb2corners(y[None])[0].tolist())
        ref.append(px.intersection(py).area / px.union(py).area)
    assert math.isclose(float(met.compute()), float(np.mean(ref)), abs_tol=1e-9)


def test_csl_coder_is_rejected():
    with pytest.raises(ValueError, match="differentiable"):
        PointOBB(3, build_coder("csl"), PointOBBConfig(**TINY))


def test_task_losses_phases_and_gradients():
    batch = _batch(4)
    task = _task(angle_loss_start=0.5, angle_proposal_start=0.8)
    torch.manual_seed(0)
    early = task.batch_losses(batch)
    assert float(early["sym"]) == 0.0 and all(torch.isfinite(v) for v in early.values())
    task.progress.fill_(0.6)  # the trainer-less task keeps the progress it is given
    task._update_progress = lambda: None
    late = task.batch_losses(batch)
    assert float(late["sym"].detach()) > 0 and float(late["ssc"].detach()) >= 0
    late["loss"].backward()
    assert task.model.angle_head.out.weight.grad.abs().sum() > 0  # the symmetry loss trains the angle branch
    assert task.model.head0.ins.weight.grad.abs().sum() > 0
    assert task.model.head1.cls.weight.grad.abs().sum() > 0
    assert not task.rotate_proposals()
    task.progress.fill_(0.9)
    assert task.rotate_proposals()


def test_forward_contract_and_metrics():
    batch = _batch(3)
    task = _task().eval()
    out = task(batch)
    for i in range(3):
        n = len(batch["points"][i])
        assert out["boxes"][i].shape == (n, 5) and out["scores"][i].shape == (n,)
        assert torch.equal(out["labels"][i], batch["labels"][i])
        assert (out["boxes"][i][:, 2] >= out["boxes"][i][:, 3]).all()  # le90
    task.update_metrics(task.val_metrics, out, batch)
    res = task.val_metrics.compute()
    assert 0 <= float(res["val_miou"]) <= 1 and "val_map50" in res
    # perfect pseudo boxes give IoU 1 and mAP 1
    met = task.test_metrics
    perfect = {"boxes": list(batch["gt_boxes"]), "scores": [torch.ones(len(b)) for b in batch["gt_boxes"]],
               "labels": list(batch["labels"])}
    task.update_metrics(met, perfect, batch)
    res = met.compute()
    assert math.isclose(float(res["test_miou"]), 1.0, abs_tol=1e-6) and math.isclose(float(res["test_map50"]), 1.0)


def test_one_pass_serves_the_predictions_and_the_validation_losses(monkeypatch):
    batch = _batch(3)
    task = _task().eval()
    with torch.no_grad():
        out = task(batch)
        ref = task.model.predict(batch["image"], list(batch["points"]), list(batch["labels"]),
                                 rotate_proposals=task.rotate_proposals())
    for i, r in enumerate(ref):  # the same pseudo boxes as the model's own inference
        for k in ("boxes", "scores", "labels"):
            assert torch.equal(out[k][i], r[k])
    passes = []
    monkeypatch.setattr(task.model, "run", lambda *a, _run=task.model.run, **kw: passes.append(1) or _run(*a, **kw))
    logged = {}
    monkeypatch.setattr(task, "log_dict", lambda d, **kw: logged.update(d))
    torch.manual_seed(3)
    with torch.no_grad():
        preds = task.evaluation_step(batch, "val")
    torch.manual_seed(3)
    with torch.no_grad():
        losses = task.batch_losses(batch)
    assert len(passes) == 2  # one per call above
    assert set(logged) == {f"val_{k}" for k in losses}
    for k, v in losses.items():
        torch.testing.assert_close(logged[f"val_{k}"], v)
    for i in range(3):
        assert torch.equal(preds["boxes"][i], out["boxes"][i])


def test_learning_curve_drops():
    torch.manual_seed(0)
    batch = _batch(4, seed=3)
    task = _task(angle_loss_start=0.0, angle_proposal_start=1.0, lr=3e-3)
    task._update_progress = lambda: None
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    hist = []
    for step in range(25):
        torch.manual_seed(step)
        loss = task.batch_losses(batch)
        opt.zero_grad()
        loss["loss"].backward()
        opt.step()
        hist.append((float(loss["mil0"]), float(loss["mil1"])))
    first, last = np.mean(hist[:4], 0), np.mean(hist[-4:], 0)
    assert last[0] < 0.7 * first[0] and last[1] < 0.7 * first[1], hist


def test_network_options_are_checked_and_old_flat_arguments_named():
    with pytest.raises(ValueError, match=r"model\.init_args\.pointobb\.head_dim"):
        PointOBBTask(head_dim=24)  # a pre-config checkpoint or script: the option moved
    with pytest.raises(ValueError, match=r"model\.init_args\.pointobb\.hed_dim: not an option"):
        PointOBBTask(pointobb={"hed_dim": 24})
    with pytest.raises(ValueError, match=r"model\.init_args\.pointobb\.roi_context"):
        PointOBBConfig(roi_context=0.5)


def test_network_options_in_yaml_reach_the_model_and_survive_the_checkpoint(tmp_path):
    """Non-default network options written in a config reach PointOBB; the checkpoint keeps them as plain values
    (it loads with weights_only=True) and ``load_from_checkpoint`` rebuilds the same network, as does a checkpoint
    of a task built in Python."""
    from lightning.pytorch import Trainer

    from visionkit.cli import main
    from visionkit.io import load_torch
    from visionkit.tasks.obb.pointobb_angle import TensorAngleHead

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"""
seed_everything: 0
trainer: {{max_steps: 1, limit_val_batches: 1, num_sanity_val_steps: 0, accelerator: cpu, devices: 1, logger: false,
           enable_progress_bar: false, default_root_dir: {tmp_path / 'run'}}}
model:
  class_path: PointOBBTask
  init_args:
    pointobb:
      backbone_kwargs: {{widths: [8, 16, 16], out_indices: [1, 2]}}
      fpn_channels: 16
      roi_size: 3
      head_dim: 24
      bag_scales: [10.0, 20.0]
      bag_ratios: [0.5, 2.0]
      angle_head: tensor
      tensor_maps: 3
      pseudo_stage: 0
data:
  class_path: SyntheticPointOBB
  init_args: {{num_train: 4, num_val: 2, num_test: 2, image_size: 128, batch_size: 2}}
""")
    trained = main(["fit", "--config", str(cfg)]).model
    net = trained.model
    assert net.head0.fc[0].out_features == 24 and net.bag_wh.shape == (4, 2) and net.pseudo_stage == 0
    assert isinstance(net.angle_head, TensorAngleHead) and net.config.tensor_maps == 3
    assert net.config.jitter_scales == PointOBBConfig().jitter_scales  # the other options keep their defaults
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    hp = load_torch(ckpt)["hyper_parameters"]  # weights_only: the options are plain values
    assert hp["pointobb"]["head_dim"] == 24 and hp["pointobb"]["angle_head"] == "tensor"
    batch = _batch(2)
    trained.eval()
    with torch.no_grad():
        ref = trained(batch)

    def same(task):
        assert task.model.config == net.config
        sd = trained.state_dict()
        assert all(torch.equal(v, sd[k]) for k, v in task.state_dict().items())
        with torch.no_grad():
            out = task.eval()(batch)
        assert all(torch.equal(a, b) for k in ref for a, b in zip(out[k], ref[k]))

    same(PointOBBTask.load_from_checkpoint(ckpt))
    # a task built in Python: its hyperparameters hold the options as a plain dict too
    py = PointOBBTask(pointobb=net.config)
    py.load_state_dict(trained.state_dict())
    py.progress.copy_(trained.progress)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(py)
    trainer.save_checkpoint(tmp_path / "py.ckpt")
    assert load_torch(tmp_path / "py.ckpt")["hyper_parameters"]["pointobb"]["head_dim"] == 24
    same(PointOBBTask.load_from_checkpoint(tmp_path / "py.ckpt"))


@pytest.mark.slow
def test_two_step_pipeline_through_the_cli(tmp_path):
    """fit -> predict (pseudo labels of the training images) -> detector fit on them, with the shipped configs."""
    import subprocess
    import sys
    from pathlib import Path

    from visionkit.datamodules.obb.dota import read_dota_txt

    root = Path(__file__).resolve().parents[3]
    small = ["--data.init_args.num_train", "16", "--data.init_args.num_val", "8", "--data.init_args.num_test", "8",
             "--trainer.max_epochs", "1"]
    labels = tmp_path / "pl"
    step1 = [sys.executable, "-m", "visionkit"]
    cfg1 = ["--config", str(root / "configs/obb/pointobb_synthetic.yaml")]
    run = dict(cwd=tmp_path, check=True, capture_output=True, text=True)
    subprocess.run(step1 + ["fit"] + cfg1 + small + ["--trainer.callbacks.init_args.output_dir", str(labels)], **run)
    ckpt = tmp_path / "runs/obb/pointobb_synthetic/checkpoints/last.ckpt"
    subprocess.run(step1 + ["predict"] + cfg1 + small + ["--trainer.callbacks.init_args.output_dir", str(labels),
                                                         "--ckpt_path", str(ckpt)], **run)
    files = sorted(labels.glob("train_*.txt"))
    assert len(files) == 16
    assert all(len(read_dota_txt(f, ["rectangle", "ellipse", "triangle"])["labels"]) >= 1 for f in files)
    cfg2 = ["--config", str(root / "configs/obb/pointobb_synthetic_detector.yaml")]
    subprocess.run(step1 + ["fit"] + cfg2 + small + ["--data.init_args.pseudo_label_dir", str(labels)], **run)
    assert (tmp_path / "runs/PointOBBDetector/checkpoints/last.ckpt").exists()


def test_dense_view_angles_of_an_equivariant_field():
    from visionkit.tasks.obb import pointobb_views as V

    m = _model()
    size = (64, 64)
    delta, alpha = 0.9, 0.3
    # constant angle alpha in the original; the turned view holds alpha - delta everywhere
    amaps = [m.coder.encode(torch.full((2, 64 // s, 64 // s), alpha)).permute(0, 3, 1, 2) for s in m.strides]
    amaps_v = [m.coder.encode(torch.full((2, 64 // s, 64 // s), alpha - delta)).permute(0, 3, 1, 2)
               for s in m.strides]
    th_o, th_v, ok = m.dense_view_angles(amaps, amaps_v, "rotate", delta, size)
    for a, b, v, s in zip(th_o, th_v, ok, m.strides):
        d = torch.remainder(a - b - delta + math.pi / 2, math.pi) - math.pi / 2
        assert d.abs().max() < 1e-4
        # validity: the mapped cell centre lies inside the view by half a stride
        ys = (torch.arange(64 // s) + 0.5) * s
        yy, xx = torch.meshgrid(ys, ys, indexing="ij")
        q = V.transform_points(torch.stack([xx.reshape(-1), yy.reshape(-1)], -1), "rotate", size, delta)
        assert torch.equal(v.reshape(-1), V.inside_image(q, size, margin=s / 2))
    assert ok[0].any() and not ok[0].all()  # the turned corners of the finest level fall outside


def test_disc_mask_is_a_disc_that_a_turn_keeps():
    from visionkit.tasks.obb import pointobb_views as V

    m = V.disc_mask((64, 64), dtype=torch.float64)
    assert m.shape == (1, 1, 64, 64)
    assert abs(float(m.sum()) - math.pi * 32**2) < 0.01 * math.pi * 32**2
    assert float(m[0, 0, 0, 0]) == 0.0 and float(m[0, 0, 32, 32]) == 1.0
    turned = V.rotate_view(m, 1.1)
    assert (turned - m).abs().mean() < 0.01  # only interpolation at the rim differs
    pts = torch.tensor([[32.0, 32.0], [2.0, 2.0], [32.0, 1.0], [60.0, 10.0]])
    assert V.inside_disc(pts, (64, 64)).tolist() == [True, False, True, False]


@pytest.mark.parametrize("padding", ["reflection", "disc"])
def test_symmetry_variants_train_the_angle_branch(padding):
    batch = _batch(3)
    task = _task(angle_loss_start=0.0, rotate_padding=padding, sym_dense_weight=0.5, rotate_prob=1.0)
    torch.manual_seed(0)
    losses = task.batch_losses(batch)
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["sym"]) > 0
    losses["loss"].backward()
    assert task.model.angle_head.out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="rotate_padding"):
        _task(rotate_padding="border")


def test_tensor_head_with_image_and_scale_negatives_train():
    batch = _batch(3)
    net = {"backbone_kwargs": {"widths": [8, 16, 16], "out_indices": [1, 2]}, "angle_head": "tensor",
           "tensor_image": True, "tensor_maps": 3}
    task = _task(net, angle_loss_start=0.0, angle_proposal_start=0.0, scale_negatives=[0.4, 2.5], rotate_prob=1.0)
    plain = _task(net, angle_loss_start=0.0, angle_proposal_start=0.0, rotate_prob=1.0)
    plain.load_state_dict(task.state_dict())
    torch.manual_seed(0)
    losses = task.batch_losses(batch)
    torch.manual_seed(0)
    ref = plain.batch_losses(batch)
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["sym"]) > 0
    assert float(losses["neg"]) != pytest.approx(float(ref["neg"]))  # the extra negatives enter the loss
    assert float(losses["mil0"]) == pytest.approx(float(ref["mil0"]))
    losses["loss"].backward()
    head = task.model.angle_head
    assert head.out.weight.grad.abs().sum() > 0 and head.image_gain.grad.abs() > 0
    # the angles come from the image's orientation tensor: proposals of elongated objects follow the objects
    with torch.no_grad():
        out = task.model.run(batch["image"], list(batch["points"]), list(batch["labels"]))
    assert out.stage0.bags[:, :, 4].abs().sum() > 0


def test_proposals_covering_another_point_get_no_instance_score():
    m = _model(exclude_other_points=True)
    pts = torch.tensor([[30.0, 30.0], [44.0, 30.0], [100.0, 100.0]])
    bidx = torch.tensor([0, 0, 1])
    bags = m.stage0_bags(pts, None, torch.zeros(3, dtype=torch.long))
    keep = m.free_of_other_points(bags, pts, bidx)
    for n in range(3):  # brute force with shapely
        for k in range(bags.shape[1]):
            poly = Polygon(obb2corners(bags[n, k][None])[0].tolist())
            covers = any(poly.covers(Point(pts[j].tolist())) for j in range(3) if j != n and bidx[j] == bidx[n])
            assert bool(keep[n, k]) == (not covers)
    assert keep[2].all() and not keep[0].all()  # alone in its image / a neighbour 14 px away
    feats = m.features(torch.rand(2, 3, 128, 128))
    _, ins, _ = m.mil_scores(m.head0, feats, bags, bidx, sigmoid=True, keep=keep)
    assert torch.all(ins[~keep] == 0) and torch.allclose(ins.sum(1), torch.ones(3, 3))
    assert _model().free_of_other_points(bags, pts, bidx) is None  # off by default


def test_pseudo_stage_selects_the_box_of_that_stage():
    from visionkit.ops.rotated_boxes import regularize_obb

    batch = _batch(2)
    m1 = _model()
    m0 = _model(pseudo_stage=0)
    m0.load_state_dict(m1.state_dict())
    m0.eval()
    m1.eval()
    with torch.no_grad():
        o1 = m1.run(batch["image"], list(batch["points"]), list(batch["labels"]))
        o0 = m0.run(batch["image"], list(batch["points"]), list(batch["labels"]))
    assert torch.allclose(o1.boxes, regularize_obb(o1.stage1.boxes, "le90"))
    assert torch.allclose(o0.boxes, regularize_obb(o1.stage0.boxes, "le90"), atol=1e-5)
    assert torch.allclose(o0.scores, o1.stage0.scores.clamp(0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="pseudo_stage"):
        _model(pseudo_stage=2)
