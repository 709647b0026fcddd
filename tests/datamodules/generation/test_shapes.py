"""SyntheticShapes: seeded, balanced, each class is its colour and its shape."""

import numpy as np
import pytest
import torch
from shapely.geometry import Point, Polygon, box

from visionkit.datamodules.generation import SyntheticShapes
from visionkit.datamodules.generation.shapes import shape_masks


def test_seeded_balanced_and_coloured():
    a = SyntheticShapes(image_size=16, num_train=48, num_val=12, num_test=24)
    b = SyntheticShapes(image_size=16, num_train=48, num_val=12, num_test=24)
    a.setup()
    b.setup()
    assert torch.equal(a.train_dataset.images, b.train_dataset.images)
    assert not torch.equal(a.train_dataset.images[:12], a.val_dataset.images)
    assert torch.bincount(a.train_dataset.labels, minlength=12).tolist() == [4] * 12
    img, lab = a.train_dataset.images, a.train_dataset.labels
    colour = lab % 3  # red, green, blue
    for i in range(len(lab)):
        per_channel = img[i].sum((1, 2))
        assert per_channel.argmax() == colour[i] and per_channel.sum() == per_channel.max() > 0


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_masks_match_shapely_areas(kind):
    size, cx, cy, r = 32, 16.3, 15.1, 9.0
    m = shape_masks(torch.tensor([kind]), torch.tensor([cx]), torch.tensor([cy]), torch.tensor([r]), size)[0]
    geom = [box(cx - r, cy - r, cx + r, cy + r), Point(cx, cy).buffer(r, 256),
            Polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)])][kind]
    # the pixel-centre mask approximates the area of the exact polygon within its perimeter
    assert abs(float(m.sum()) - geom.area) < 0.5 * geom.length
    inside = [geom.contains(Point(x + 0.5, y + 0.5)) for y in range(size) for x in range(size)]
    agree = np.mean(np.array(inside) == m.flatten().numpy())
    assert agree > 0.98


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        SyntheticShapes(image_size=20)
    with pytest.raises(ValueError, match="colours"):
        SyntheticShapes(colours=("red", "mauve"))
