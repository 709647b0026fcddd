"""Slow: the CPU default configs learn, and frame averaging keeps its accuracy under SO(3) test rotations."""

import lightning as L
import pytest

from visionkit.datamodules.pointcloud import SyntheticPrimitives
from visionkit.tasks.pointcloud import PointCloudClassificationTask


@pytest.mark.slow
def test_fa_pointnet_z_so3_reaches_90_percent(tmp_path):
    L.seed_everything(0)
    dm = SyntheticPrimitives(num_points=256, num_train=1000, num_val=200, num_test=300, batch_size=32,
                             test_rotation="so3")
    task = PointCloudClassificationTask(model="pointnet", frame_averaging="so3", num_classes=10,
                                        model_args={"widths": [32, 64, 128], "head": [64, 32], "dropout": 0.3},
                                        train_rotation="z", test_repeats=2, optimizer="adam", lr=0.002,
                                        weight_decay=0.0)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(task, dm)
    res = trainer.test(task, dm, verbose=False)[0]
    assert res["test_RepeatedAccuracy_mean"] >= 0.9
    assert res["test_RepeatedAccuracy_std"] < 1e-6
