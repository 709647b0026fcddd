"""PLY writer (read back independently) and the picture callback."""

import numpy as np
import torch

from visionkit.tasks.pointcloud.callbacks import PLYWriter, read_ply_labels, render_clouds


def test_ply_writer_segmentation_roundtrip(tmp_path):
    import open3d as o3d

    w = PLYWriter(str(tmp_path))
    w.output_dir.mkdir(parents=True, exist_ok=True)
    pts = torch.randn(2, 50, 3)
    logits = torch.randn(2, 50, 6)
    batch = {"points": pts, "seg": torch.randint(0, 6, (2, 50)), "index": torch.tensor([7, 8])}
    w.write_batch({"logits": logits}, batch, 0, 0)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["cloud_7.ply", "cloud_8.ply"]  # no temporary files left
    back = read_ply_labels(tmp_path / "cloud_8.ply")
    np.testing.assert_allclose(back["points"], pts[1].numpy())
    np.testing.assert_array_equal(back["label"], logits[1].argmax(-1).numpy())
    np.testing.assert_array_equal(back["truth"], batch["seg"][1].numpy())
    pcd = o3d.io.read_point_cloud(str(tmp_path / "cloud_7.ply"))  # a standard PLY for other tools
    np.testing.assert_allclose(np.asarray(pcd.points), pts[0].numpy(), atol=1e-6)


def test_ply_writer_classification_label_per_cloud(tmp_path):
    w = PLYWriter(str(tmp_path))
    w.output_dir.mkdir(parents=True, exist_ok=True)
    w.write_batch({"logits": torch.randn(1, 4), "pred": torch.tensor([3])},
                  {"points": torch.randn(1, 10, 3), "label": torch.tensor([2])}, 5, 0)
    back = read_ply_labels(tmp_path / "cloud_0_5_0.ply")
    assert (back["label"] == 3).all() and (back["truth"] == 2).all()


def test_render_clouds_makes_a_figure(tmp_path):
    fig = render_clouds(torch.randn(2, 30, 3), torch.randint(0, 4, (2, 30)), torch.randint(0, 4, (2, 30)))
    assert len(fig.axes) == 2
    fig.savefig(tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 1000
    fig = render_clouds(torch.randn(3, 30, 3), torch.tensor([1, 2, 3]))
    assert "pred 1" in fig.axes[0].get_title()
