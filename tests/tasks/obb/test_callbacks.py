"""DOTA Task1 writer (part files, merge, line format) and the box drawing."""

import math

import numpy as np
import torch

from visionkit.ops.rotated_boxes import obb2poly
from visionkit.tasks.obb.callbacks import DOTASubmissionWriter, draw_obb


def _pred(boxes, scores, labels):
    return {"boxes": [torch.tensor(boxes, dtype=torch.float32)], "scores": [torch.tensor(scores)],
            "labels": [torch.tensor(labels)]}


def test_writer_parts_merge_and_format(tmp_path):
    names = ["plane", "ship"]
    batches = [  # two "ranks", each with its own image
        (_pred([[10, 10, 8, 4, 0.3], [30, 30, 10, 5, -1.0]], [0.5, 0.9], [0, 1]), "img_b"),
        (_pred([[50, 40, 12, 6, 0.0], [52, 40, 12, 6, 0.1]], [0.2, 0.7], [0, 0]), "img_a"),
    ]
    writers = []
    for rank, (pred, image_id) in enumerate(batches):
        w = DOTASubmissionWriter(str(tmp_path), class_names=names, draw_images=0)
        batch = {"image": torch.rand(1, 3, 64, 64), "image_id": [image_id]}
        w.write_batch(pred, batch, 0, rank)
        w.finalize(rank, 2)
        writers.append(w)
    assert (tmp_path / ".parts").is_dir() and not (tmp_path / "Task1_plane.txt").exists()
    writers[0].merge(2)
    assert not (tmp_path / ".parts").exists()
    plane = (tmp_path / "Task1_plane.txt").read_text().splitlines()
    ship = (tmp_path / "Task1_ship.txt").read_text().splitlines()
    # sorted by image id, then by decreasing score
    assert [ln.split()[:2] for ln in plane] == [["img_a", "0.7000"], ["img_a", "0.2000"], ["img_b", "0.5000"]]
    assert len(ship) == 1 and ship[0].startswith("img_b 0.9000 ")
    coords = np.array([float(v) for v in ship[0].split()[2:]])
    ref = obb2poly(torch.tensor([[30, 30, 10, 5, -1.0]], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(coords, ref, atol=0.006)


def test_draw_obb_marks_the_box_outline():
    img = torch.zeros(3, 40, 40)
    box = torch.tensor([[20.0, 20.0, 20.0, 8.0, math.radians(30)]])
    pic = draw_obb(img, box, torch.tensor([0]), torch.tensor([0.9]), gt_boxes=box, min_side=40)
    assert pic.shape == (40, 40, 3) and pic.dtype == np.uint8
    corners = obb2poly(box)[0].view(4, 2)
    # the pixels at the corners are coloured; the image corner far from the box stays black
    for x, y in corners.round().long().clamp(0, 39).tolist():
        assert pic[max(0, y - 1):y + 2, max(0, x - 1):x + 2].max() > 0
    assert pic[0:3, 0:3].max() == 0
    nothing = draw_obb(img, box, torch.tensor([0]), torch.tensor([0.1]), score_thr=0.3, min_side=40)
    assert nothing.max() == 0  # below the score threshold and no ground truth: nothing drawn
