"""DIRNet pieces: bone splatting, camera recovery, shapes and the refinement wiring."""

import numpy as np
import pytest
import torch

from visionkit.tasks.hands.dir import DIRNet, bone_splat, local_evidence, soft_argmax, to_camera
from visionkit.tasks.hands.kinematics import BONES
from visionkit.tasks.hands.procedural import ProceduralHandLayer

TINY = {"backbone_kwargs": {"widths": [8, 16, 24, 32, 32], "out_indices": [2, 3, 4]}, "dim": 16, "hidden": 32}


def test_bone_splat_matches_numpy_distance_to_segment():
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(2, 42, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8
    feat = torch.randn(2, 40, 3, generator=g, dtype=torch.float64)
    H, W, radius = 10, 12, 1.5
    out = bone_splat(uv, feat, H, W, radius).reshape(2, 40, 3, H, W)
    px = ((uv + 1) * torch.tensor([W, H], dtype=torch.float64) / 2).numpy()
    pairs = BONES + [(c + 21, p + 21) for c, p in BONES]
    for b in range(2):
        for k in (0, 7, 25, 39):
            a, e = px[b, pairs[k][0]], px[b, pairs[k][1]]
            for y in range(H):
                for x in range(W):
                    p = np.array([x + 0.5, y + 0.5])
                    t = np.clip(np.dot(p - a, e - a) / np.dot(e - a, e - a), 0, 1)
                    w = max(0.0, 1 - np.linalg.norm(p - a - t * (e - a)) / radius)
                    np.testing.assert_allclose(out[b, k, :, y, x].numpy(), w * feat[b, k].numpy(), atol=1e-10)
    # channel groups do not mix: zeroing one bone's feature empties exactly its group
    feat2 = feat.clone()
    feat2[:, 5] = 0
    out2 = bone_splat(uv, feat2, H, W, radius).reshape(2, 40, 3, H, W)
    assert out2[:, 5].abs().max() == 0 and torch.equal(out2[:, 6], out[:, 6])


def test_to_camera_inverts_the_weak_perspective_at_the_root():
    B, H, W = 4, 128, 128
    g = torch.Generator().manual_seed(1)
    rel = torch.randn(B, 42, 3, generator=g) * 30
    rel[:, 20] = 0
    rel[:, 41] = 0
    params = torch.zeros(B, 2, 64)
    params[:, 0, 61] = torch.randn(B, generator=g) * 0.2
    params[:, 0, 62:] = torch.rand(B, 2, generator=g) - 0.5
    s = 0.5 * torch.exp(params[:, 0, 61])
    uv = torch.cat([s[:, None, None] * rel[:, :21, :2] / 100 + params[:, 0, None, 62:],
                    torch.zeros(B, 21, 2)], 1)
    K = torch.tensor([[200.0, 0, 60], [0, 200.0, 70], [0, 0, 1]]).expand(B, 3, 3)
    offset = torch.randn(B, 3, generator=g) * 50
    j3d, px = to_camera(rel, uv, offset, params, K, (H, W))
    root = j3d[:, 20]
    proj = root @ K[0].T
    assert torch.allclose(proj[:, :2] / proj[:, 2:], px[:, 20], atol=1e-3)
    # the scale is the pinhole magnification at the root: ppmm = f / Z
    assert torch.allclose(s * W / 200, 200 / root[:, 2], rtol=1e-5)
    assert torch.allclose(j3d[:, 41] - j3d[:, 20], offset, atol=1e-4)
    assert torch.allclose(j3d[:, :21] - root[:, None], rel[:, :21], atol=1e-4)


def test_shapes_and_iterations():
    layers = [ProceduralHandLayer("right"), ProceduralHandLayer("left")]
    net = DIRNet(layers, num_iterations=3, **TINY)
    outs = net(torch.rand(2, 3, 64, 64))
    assert len(outs) == 4 and net.refine_strides == [16, 8, 8]
    for o in outs:
        assert o["rel"].shape == (2, 42, 3) and o["uv"].shape == (2, 42, 2) and o["params"].shape == (2, 2, 64)
        assert torch.isfinite(o["rel"]).all()
    # zero-initialised refinement heads: before training every iteration repeats the initial estimate
    assert torch.allclose(outs[0]["rel"], outs[-1]["rel"], atol=1e-5)
    # the previous estimate enters detached: a loss on the last iteration sends no gradient to the initial head
    net.zero_grad()
    outs = net(torch.rand(2, 3, 64, 64))
    outs[-1]["rel"].sum().backward()
    assert net.init_head[0].weight.grad is None or net.init_head[0].weight.grad.abs().max() == 0
    assert net.blocks[-1].head[-1].weight.grad.abs().max() > 0


def test_soft_argmax_matches_the_expectation_in_grid_sample_coordinates():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64) * 2
    out = soft_argmax(logits)
    p = logits.flatten(2).softmax(-1).reshape(2, 3, 5, 7).numpy()
    xs, ys = (2 * np.arange(7) + 1) / 7 - 1, (2 * np.arange(5) + 1) / 5 - 1
    np.testing.assert_allclose(out[..., 0].numpy(), (p * xs).sum((2, 3)), atol=1e-12)
    np.testing.assert_allclose(out[..., 1].numpy(), (p * ys[:, None]).sum((2, 3)), atol=1e-12)
    # a sharp peak at cell (i, j) sits where grid_sample reads that cell's centre
    peak = torch.full((1, 1, 5, 7), -50.0, dtype=torch.float64)
    peak[0, 0, 3, 2] = 50.0
    uv = soft_argmax(peak)
    value = torch.nn.functional.grid_sample(peak, uv[:, :, None], align_corners=False)
    assert abs(value.item() - 50.0) < 1e-6


def test_keypoints_enter_the_initial_estimate_and_the_iterations():
    layers = [ProceduralHandLayer("right"), ProceduralHandLayer("left")]
    net = DIRNet(layers, num_iterations=2, keypoint_stride=8, **TINY)
    outs = net(torch.rand(2, 3, 64, 64))
    assert outs[0]["heatmaps"].shape == (2, 42, 8, 8) and outs[0]["keypoints"].shape == (2, 42, 2)
    assert torch.allclose(outs[0]["rel"], outs[-1]["rel"], atol=1e-5)  # untrained iterations repeat their input
    # the keypoints reach the regression heads detached: a loss on the joints sends nothing to the heatmap head
    net.zero_grad()
    outs[-1]["rel"].sum().backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in net.keypoint_head.parameters())
    # ... and the last iteration's head reads the evidence (its input grows by 42 offsets per hand)
    assert net.blocks[-1].head[0].in_features == 21 * 2 * 16 + 64 + 42


def test_local_evidence_reads_each_joints_own_heatmap_around_the_estimate():
    g = torch.Generator().manual_seed(3)
    B, N, h, w = 2, 3, 6, 8
    log_prob = torch.randn(B, N, h, w, generator=g, dtype=torch.float64).flatten(2).log_softmax(-1).reshape(B, N, h, w)
    # centres on cell centres: the 3x3 window reads the cells themselves (no interpolation), clamped at the border
    cells = torch.tensor([[[0, 0], [3, 2], [7, 5]], [[4, 1], [1, 4], [6, 3]]])  # (col, row)
    uv = ((2 * cells + 1) / torch.tensor([w, h]) - 1).to(torch.float64)
    offset, values = local_evidence(log_prob, uv, 3)
    lp = log_prob.numpy()
    for b in range(B):
        for n in range(N):
            c, r = cells[b, n].tolist()
            win, offs = [], []
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    win.append(lp[b, n, min(max(r + dy, 0), h - 1), min(max(c + dx, 0), w - 1)])
                    offs.append([2 * dx / w, 2 * dy / h])
            win = np.array(win)
            mass = np.log(np.exp(win).sum())
            p = np.exp(win - mass)
            np.testing.assert_allclose(offset[b, n].numpy(), (p[:, None] * np.array(offs)).sum(0), atol=1e-7)
            np.testing.assert_allclose(values[b, n].numpy(), np.append(win - mass, mass), atol=1e-7)


def test_local_evidence_sharpens_as_the_estimate_nears_the_peak():
    # a diffuse heatmap (half its mass in a Gaussian peak, half spread over the map): the global soft-argmax is
    # pulled towards the map centre; a window read near the peak lands closer to it, and closer the nearer it is
    h = w = 32
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    peak = torch.tensor([6.3, 24.8])  # (x, y) map pixels, near a corner
    bump = torch.exp(-((xs - peak[0]) ** 2 + (ys - peak[1]) ** 2) / (2 * 1.5**2))
    prob = 0.5 * bump / bump.sum() + 0.5 / (h * w)
    log_prob = prob.log().reshape(1, 1, h, w)
    target = peak / w * 2 - 1
    glob = (soft_argmax(log_prob)[0, 0] - target).norm()
    errs = []
    for dist in (3.0, 1.0):
        uv = (target + torch.tensor([dist, -dist]) * 2 / w)[None, None]
        off, _ = local_evidence(log_prob, uv, 3)
        errs.append((uv + off - target).norm())
    assert errs[1] < errs[0] < glob


def test_local_window_feeds_every_iteration_detached():
    layers = [ProceduralHandLayer("right"), ProceduralHandLayer("left")]
    net = DIRNet(layers, num_iterations=2, keypoint_stride=8, local_window=3, **TINY)
    outs = net(torch.rand(2, 3, 64, 64))
    assert torch.allclose(outs[0]["rel"], outs[-1]["rel"], atol=1e-5)  # untrained iterations repeat their input
    assert all(b.head[0].in_features == 21 * 2 * 16 + 64 + 42 + 42 for b in net.blocks)
    assert all(b.geom.in_features == 7 + 2 + 9 + 1 for b in net.blocks)
    for b in net.blocks:  # let the heads act, then check nothing flows back into the heatmaps
        torch.nn.init.normal_(b.head[-1].weight, std=0.01)
    net.zero_grad()
    net(torch.rand(2, 3, 64, 64))[-1]["rel"].sum().backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in net.keypoint_head.parameters())
    assert net.blocks[-1].geom.weight.grad[:, 7:].abs().max() > 0  # the local evidence is read
    with pytest.raises(ValueError, match="keypoint_stride"):
        DIRNet(layers, local_window=3, **TINY)


def test_each_iteration_reads_the_heatmaps_at_its_own_stride():
    layers = [ProceduralHandLayer("right"), ProceduralHandLayer("left")]
    net = DIRNet(layers, num_iterations=2, refine_strides=(16, 8), keypoint_stride=8, local_window=3, **TINY)
    g = torch.Generator().manual_seed(4)
    log_prob = torch.randn(2, 42, 8, 8, generator=g).flatten(2).log_softmax(-1).reshape(2, 42, 8, 8)
    assert net.evidence_at(log_prob, 8) is log_prob  # the finest iteration reads the heatmaps themselves
    coarse = net.evidence_at(log_prob, 16)  # the coarser one: probabilities summed over 2x2 cells
    expected = log_prob.exp().reshape(2, 42, 4, 2, 4, 2).sum((3, 5)).log()
    assert coarse.shape == (2, 42, 4, 4) and torch.allclose(coarse, expected, atol=1e-5)
    assert torch.allclose(coarse.exp().sum((2, 3)), torch.ones(2, 42), atol=1e-5)


def _acting_net(**kwargs) -> DIRNet:
    """A DIRNet whose refinement heads act (non-zero last layers), so each iteration makes an update."""
    torch.manual_seed(0)
    layers = [ProceduralHandLayer("right"), ProceduralHandLayer("left")]
    net = DIRNet(layers, num_iterations=3, keypoint_stride=8, **TINY, **kwargs)
    for b in net.blocks:
        torch.nn.init.normal_(b.head[-1].weight, std=0.01)
        torch.nn.init.normal_(b.offset_head[-1].weight, std=0.01)
    return net


def _starts(net: DIRNet, image: torch.Tensor) -> tuple[list[dict], list[torch.Tensor]]:
    """Every estimate, and the parameters each refinement block was handed."""
    seen: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, args, out: seen.append(args[1].detach().clone()))
             for b in net.blocks]
    outs = net(image)
    for h in hooks:
        h.remove()
    return outs, seen


def test_refine_noise_perturbs_later_iterations_in_training_only():
    image = torch.rand(2, 3, 64, 64)
    net = _acting_net(refine_noise=0.5)
    plain = _acting_net()
    plain.load_state_dict(net.state_dict())
    # evaluation: no perturbation, the estimates equal those of the same weights without the option
    net.eval(), plain.eval()
    with torch.no_grad():
        outs, starts = _starts(net, image)
        ref = plain(image)
    for o, r in zip(outs, ref):
        assert torch.equal(o["params"], r["params"]) and torch.equal(o["offset"], r["offset"])
    assert all(torch.equal(s, o["params"]) for s, o in zip(starts, outs))
    # training: the first iteration starts from the initial estimate; every later one from its predecessor's
    # output moved by noise whose size follows the predecessor's update (zero where it changed nothing)
    net.train()
    outs, starts = _starts(net, image)
    assert torch.equal(starts[0], outs[0]["params"].detach())
    for k in (1, 2):
        step = (outs[k]["params"] - outs[k - 1]["params"]).detach()
        noise = starts[k] - outs[k]["params"].detach()
        assert noise.abs().max() > 0
        assert torch.all(noise.abs() <= 6 * 0.5 * step.abs() + 1e-6)
        assert torch.all(noise[step == 0] == 0)
        ratio = noise[step.abs() > 1e-4] / step[step.abs() > 1e-4] / 0.5  # ~ N(0, 1)
        assert 0.5 < ratio.std() < 1.5 and ratio.mean().abs() < 0.3
    # untrained iterations make no update, hence no noise: the identity at initialisation holds in training too
    fresh = DIRNet([ProceduralHandLayer("right"), ProceduralHandLayer("left")], keypoint_stride=8,
                   refine_noise=0.5, **TINY).train()
    outs = fresh(image)
    assert torch.allclose(outs[0]["rel"], outs[-1]["rel"], atol=1e-5)
    with pytest.raises(ValueError, match="refine_noise"):
        DIRNet([ProceduralHandLayer("right"), ProceduralHandLayer("left")], refine_noise=-1.0, **TINY)


def test_detach_iterations_false_lets_later_losses_train_earlier_estimates():
    image = torch.rand(2, 3, 64, 64)
    for detach in (True, False):
        net = _acting_net(detach_iterations=detach)
        net.zero_grad()
        net(image)[-1]["rel"].sum().backward()
        earlier = [net.init_head[-1].weight.grad, net.blocks[0].head[-1].weight.grad]
        flows = [g is not None and g.abs().max() > 0 for g in earlier]
        assert flows == [not detach, not detach]
        assert net.blocks[-1].head[-1].weight.grad.abs().max() > 0
