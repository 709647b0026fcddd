"""SyntheticPrimitives: balanced, normalised, seeded, cached; part labels inside their category."""

import numpy as np
import pytest

from visionkit.datamodules.pointcloud import SyntheticPrimitives
from visionkit.datamodules.pointcloud.synthetic import generate_primitives


def test_classification_split_is_balanced_normalised_and_seeded(tmp_path):
    dm = SyntheticPrimitives(num_points=128, num_train=40, num_val=10, num_test=10, cache_dir=str(tmp_path))
    a = dm.generate("train")
    assert a["points"].shape == (40, 128, 3) and np.bincount(a["label"]).tolist() == [4] * 10
    r = np.linalg.norm(a["points"], axis=-1)
    np.testing.assert_allclose(r.max(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a["points"].mean(1), 0.0, atol=1e-5)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    b = dm.generate("train")  # from the cache
    np.testing.assert_array_equal(a["points"], b["points"])
    c = generate_primitives(dm.classes, 40, 128, seed=0)
    np.testing.assert_allclose(a["points"], c["points"])  # generation itself is deterministic
    assert not np.allclose(dm.generate("test")["points"][:5], a["points"][:5])


def test_shapes_are_upright_and_surfaces_are_right():
    d = generate_primitives(["sphere", "torus"], 2, 2000, seed=1, aspect=(1.0, 1.0))
    sphere = d["points"][d["label"] == 0][0]
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=-1), 0.97, atol=0.035)  # on the faceted sphere
    torus = d["points"][d["label"] == 1][0]
    assert np.abs(torus[:, 2]).max() < 0.5  # a flat ring about the z axis
    assert np.abs(torus[:, :2]).max() > 0.9


def test_part_variant_labels_stay_in_their_category():
    dm = SyntheticPrimitives(task="parts", num_points=256, num_train=16)
    d = dm.generate("train")
    assert dm.num_classes == 9 and dm.parts_per_category == [2, 2, 3, 2]
    starts = np.cumsum([0, *dm.parts_per_category])
    for seg, cat in zip(d["seg"], d["category"]):
        parts = set(seg.tolist())
        assert parts <= set(range(starts[cat], starts[cat + 1]))
        assert len(parts) >= 2  # every object shows at least two of its parts


def test_bad_arguments_name_the_key():
    with pytest.raises(ValueError, match="data.init_args.classes"):
        SyntheticPrimitives(classes=["box", "teapot"])
    with pytest.raises(ValueError, match="data.init_args.task"):
        SyntheticPrimitives(task="detection")
    with pytest.raises(ValueError, match="data.init_args.up_axis"):
        SyntheticPrimitives(up_axis="w")
