"""Classification and segmentation tasks: learning curves, prediction contract, protocol, restricted argmax."""

import lightning as L
import pytest
import torch

from visionkit.datamodules.pointcloud import SyntheticPrimitives
from visionkit.tasks.pointcloud import PartSegmentationTask, PointCloudClassificationTask


def train_steps(task, batch, steps=25):
    opt = torch.optim.Adam(task.parameters(), 3e-3)
    task.train()
    losses = []
    for _ in range(steps):
        loss = task.batch_losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("model, fa", [("pointnet", "none"), ("pointnet", "so3")])
def test_classification_loss_drops(model, fa):
    torch.manual_seed(0)
    d = SyntheticPrimitives(num_points=128, num_train=40).generate("train")
    batch = {"points": torch.as_tensor(d["points"]), "label": torch.as_tensor(d["label"])}
    task = PointCloudClassificationTask(model=model, frame_averaging=fa, num_classes=10, train_rotation="none",
                                        model_args={"widths": [16, 32, 64], "head": [32]})
    losses = train_steps(task, batch, 30)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    task.eval()
    out = task(batch)
    assert out["logits"].shape == (40, 10)


def test_segmentation_restricts_argmax_to_category_parts():
    torch.manual_seed(0)
    task = PartSegmentationTask(parts_per_category=[2, 3], model="pointnet",
                                model_args={"widths": [16, 32, 64], "seg_head": [32]})
    batch = {"points": torch.randn(4, 64, 3), "seg": torch.tensor([0, 1, 3, 4]).repeat_interleave(64).reshape(4, 64),
             "category": torch.tensor([0, 0, 1, 1])}
    batch["seg"] = torch.where(batch["category"][:, None] == 0, batch["seg"] % 2, 2 + batch["seg"] % 3)
    task.eval()
    pred = task.predict_step(batch, 0)["pred"]
    assert pred.shape == (4, 64)
    assert (pred[:2] < 2).all() and (pred[2:] >= 2).all()
    losses = train_steps(task, batch, 20)
    assert losses[-1] < losses[0]


def test_fit_and_test_under_protocol(tmp_path):
    """A tiny end-to-end run: repeated test rotations are logged with mean and std."""
    dm = SyntheticPrimitives(num_points=64, num_train=32, num_val=16, num_test=16, batch_size=16,
                             test_rotation="so3")
    task = PointCloudClassificationTask(model="pointnet", frame_averaging="so3", num_classes=10, test_repeats=2,
                                        model_args={"widths": [8, 16], "head": [16]})
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(task, dm)
    res = trainer.test(task, dm, verbose=False)[0]
    assert {"test_OverallAccuracy", "test_RepeatedAccuracy_mean", "test_RepeatedAccuracy_std"} <= set(res)
    # frame averaging is exactly invariant: both seeded test rotations give the same accuracy
    assert res["test_RepeatedAccuracy_std"] < 1e-6


def test_bad_protocol_names_the_key():
    with pytest.raises(ValueError, match="model.init_args.test_rotation"):
        PointCloudClassificationTask(test_rotation="so2")
    with pytest.raises(ValueError, match="model.init_args.model"):
        PointCloudClassificationTask(model="pointnet++")
    with pytest.raises(ValueError, match="model.init_args.parts_per_category"):
        PartSegmentationTask()
