"""PaRot pieces: invariant relative-pose code, frames, disentanglement losses, learned equivariance."""

import pytest
import torch

from visionkit.ops.rotations import random_rotation
from visionkit.tasks.pointcloud.parot import DisentangleNet, PaRot, frame_from_directions, relative_pose_code


def test_frame_from_directions_is_a_rotation():
    d1, d2 = torch.randn(50, 3), torch.randn(50, 3)
    O = frame_from_directions(d1, d2)
    assert torch.allclose(O @ O.transpose(-1, -2), torch.eye(3).expand(50, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(O), torch.ones(50), atol=1e-5)
    assert torch.allclose(O[:, 0], d1 / d1.norm(dim=-1, keepdim=True), atol=1e-6)


def test_relative_pose_code_is_invariant_for_equivariant_frames():
    O_i = frame_from_directions(torch.randn(20, 3), torch.randn(20, 3)).double()
    O_j = frame_from_directions(torch.randn(20, 3), torch.randn(20, 3)).double()
    r = torch.randn(20, 3, dtype=torch.float64)
    R = random_rotation(1, dtype=torch.float64)[0]
    # rotating the cloud: frames O -> O Rᵀ, offsets r -> R r
    code = relative_pose_code(O_i, O_j, r)
    code_rot = relative_pose_code(O_i @ R.T, O_j @ R.T, r @ R.T)
    assert code.shape == (20, 16)
    assert torch.allclose(code, code_rot, atol=1e-12)
    assert torch.allclose(code[:, -1], r.norm(dim=-1))


def test_disentangle_losses_and_pose_restoration():
    net = DisentangleNet((16, 32, 32), 32)
    patches = torch.randn(64, 20, 3)
    f, O, losses = net.disentangle(patches, siamese=True)
    assert f.shape == (64, 32) and O.shape == (64, 3, 3)
    assert set(losses) == {"consistency", "orthogonality"}
    assert all(v.item() > 0 for v in losses.values())


@pytest.mark.slow
def test_consistency_training_learns_equivariant_directions():
    """A few hundred steps of the consistency loss make the restored directions agree across rotations."""
    torch.manual_seed(0)
    net = DisentangleNet((16, 32, 32), 16)
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(64, 16, 3, generator=g) * torch.tensor([1.0, 0.5, 0.2])  # anisotropic patches
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    first = None
    for _ in range(150):
        _, _, losses = net.disentangle(patches, siamese=True)
        loss = losses["consistency"] + 0.2 * losses["orthogonality"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_parot_train_outputs_and_seeded_inference():
    m = PaRot(4, num_centres=16, local_k=16, global_points=8, relation_k=8, encoder_widths=(16, 32, 32),
              feat_dim=32, agg_dim=32, emb_dim=64, head=(32,))
    x = torch.randn(2, 64, 3)
    logits, losses = m.forward_train(x)
    assert logits.shape == (2, 4)
    assert set(losses) == {"local_consistency", "local_orthogonality", "global_consistency",
                           "global_orthogonality"}
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))  # inference is reproducible
        assert torch.allclose(m(x[1:]), m(x)[1:], atol=1e-5)  # and independent of the rest of the batch
