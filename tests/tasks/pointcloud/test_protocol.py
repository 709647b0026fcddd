"""The rotation protocol: seeded, batch-independent test rotations; z rotations keep the up axis."""

import torch

from visionkit.tasks.pointcloud.protocol import protocol_rotations, rotate_batch, seeded_rotations


def test_seeded_rotations_depend_only_on_index_and_repeat():
    a = seeded_rotations("so3", torch.tensor([3, 7, 9]), repeat=1, seed=5)
    b = seeded_rotations("so3", torch.tensor([9, 3]), repeat=1, seed=5)
    assert torch.equal(a[0], b[1]) and torch.equal(a[2], b[0])
    c = seeded_rotations("so3", torch.tensor([3]), repeat=2, seed=5)
    assert not torch.allclose(a[0], c[0])
    eye = torch.eye(3).expand(3, 3, 3)
    assert torch.allclose(a @ a.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(a), torch.ones(3), atol=1e-5)


def test_up_axis_rotations_keep_the_up_coordinate():
    x = torch.randn(4, 50, 3)
    for axis, col in (("z", 2), ("y", 1)):
        R = protocol_rotations("z", 4, up_axis=axis, generator=torch.Generator().manual_seed(0))
        out = rotate_batch({"points": x, "normals": x.clone()}, R)
        assert torch.allclose(out["points"][..., col], x[..., col], atol=1e-6)
        assert torch.allclose(out["normals"], out["points"])
        assert not torch.allclose(out["points"], x, atol=1e-3)
    assert torch.equal(protocol_rotations("none", 2), torch.eye(3).expand(2, 3, 3))
