"""HandReconstructionTask: the task contract, losses that learn, metrics and the prediction writer."""

import json

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer

from visionkit.datamodules.base import collate_dict
from visionkit.datamodules.hands.synthetic import SyntheticHands, SyntheticHandsDataset
from visionkit.tasks.hands import HandReconstructionTask
from visionkit.tasks.hands.callbacks import HandJSONWriter, HandSkeletonCallback

TINY = {"backbone_kwargs": {"widths": [8, 16, 24, 32, 32], "out_indices": [2, 3, 4]}, "dim": 16, "hidden": 64,
        "bone_channels": 1}


@pytest.fixture(scope="module")
def batch():
    ds = SyntheticHandsDataset(8, seed=0, image_size=64, focal=100.0)
    return collate_dict([ds[i] for i in range(8)])


def test_contract_and_losses(batch):
    task = HandReconstructionTask(**TINY)
    losses = task.batch_losses(batch)
    assert set(losses) >= {"loss", "joints3d", "joints2d", "bones", "offset"}
    assert torch.isfinite(losses["loss"])
    task.eval()
    preds = task(batch)
    assert preds["joints3d"].shape == (8, 42, 3) and preds["joints2d"].shape == (8, 42, 2)
    assert len(preds["iterations"]) == 3 and torch.equal(preds["iterations"][-1], preds["joints3d"])
    assert "vertices" not in preds  # the procedural hand has no mesh
    # camera-space output: wrists in front of the camera
    assert (preds["joints3d"][:, [20, 41], 2] > 0).all()


def test_short_training_lowers_the_loss(batch):
    torch.manual_seed(0)
    task = HandReconstructionTask(**TINY)
    opt = torch.optim.AdamW(task.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss = task.batch_losses(batch)["loss"]
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(task.batch_losses(batch)["loss"]) < 0.7 * first



def test_iteration_weights_weigh_each_estimate(batch):
    torch.manual_seed(0)
    task = HandReconstructionTask(**TINY)
    # break the zero-initialised identity so the three estimates (and their losses) differ
    with torch.no_grad():
        for block in task.model.blocks:
            block.head[-1].weight.normal_(0, 0.02)
    single = []
    for k in range(3):
        task.hparams.iteration_weights = [float(i == k) for i in range(3)]
        single.append(task.batch_losses(batch))
    assert single[0]["joints3d"] != single[2]["joints3d"]
    task.hparams.iteration_weights = [1.0, 2.0, 3.0]
    mixed = task.batch_losses(batch)
    for key in ("loss", "joints3d", "joints2d", "bones", "offset"):
        expect = (single[0][key] + 2 * single[1][key] + 3 * single[2][key]) / 6
        assert torch.allclose(mixed[key], expect, rtol=1e-5), key
    # the default weighs all estimates equally
    task.hparams.iteration_weights = None
    assert torch.allclose(task.batch_losses(batch)["loss"], sum(d["loss"] for d in single) / 3, rtol=1e-5)
    # a loss on the initial estimate alone sends no gradient to the refinement iterations
    task.hparams.iteration_weights = [1.0, 0.0, 0.0]
    task.zero_grad()
    task.batch_losses(batch)["loss"].backward()
    grads = [p.grad for p in task.model.blocks.parameters()]
    assert all(g is None or g.abs().max() == 0 for g in grads)
    assert task.model.init_head[0].weight.grad.abs().max() > 0
    with pytest.raises(ValueError, match="iteration_weights"):
        HandReconstructionTask(iteration_weights=[1.0, 1.0], **TINY).batch_losses(batch)

def test_metrics_per_iteration(batch):
    task = HandReconstructionTask(**TINY).eval()
    preds = task(batch)
    task.update_metrics(task.val_metrics, preds, batch)
    out = task.val_metrics.compute()
    for k in ("val_MPJPE", "val_PAMPJPE", "val_MRRPE", "val_MPJPE_it0", "val_MPJPE_it2", "val_PAMPJPE_it1"):
        assert k in out and torch.isfinite(out[k])
    assert out["val_MPJPE"] == out["val_MPJPE_it2"]
    assert out["val_PAMPJPE"] <= out["val_MPJPE"]


def test_predict_writes_json_and_the_picture(tmp_path):
    dm = SyntheticHands(num_train=4, num_val=4, num_test=4, image_size=64, focal=100.0, batch_size=2)
    task = HandReconstructionTask(**TINY)
    writer = HandJSONWriter(str(tmp_path / "pred"))
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      callbacks=[writer], enable_model_summary=False)
    trainer.predict(task, datamodule=dm, return_predictions=False)
    files = sorted((tmp_path / "pred").glob("r0_b*.json"))
    assert len(files) == 4
    rec = json.loads(files[0].read_text())
    assert len(rec["joints3d_mm"]) == 42 and len(rec["iterations_joints3d_mm"]) == 3
    assert json.loads((tmp_path / "pred" / "index_r0.json").read_text())["files"] == [f.name for f in files]
    dm.setup("test")
    b = collate_dict([dm.test_dataset[i] for i in range(2)])
    pic = HandSkeletonCallback.render(task, b)
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[-1] == 3


def test_test_run_draws_estimates_against_the_truth(tmp_path):
    dm = SyntheticHands(num_train=4, num_val=4, num_test=4, image_size=64, focal=100.0, batch_size=2)
    task = HandReconstructionTask(**TINY)
    cb = HandSkeletonCallback(num_images=2, output_dir=str(tmp_path / "pics"))
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      callbacks=[cb], enable_model_summary=False)
    trainer.test(task, datamodule=dm, verbose=False)
    png = (tmp_path / "pics" / "test.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    im = Image.open(tmp_path / "pics" / "test.png")
    assert im.height > im.width / 4 * 2 * 0.8  # 2 rows of 4 panels (truth, initial, 2 iterations)


def test_keypoint_heatmaps_are_supervised(batch):
    """With ``keypoint_stride`` the loss has a heatmap term that is minimal when the heatmaps are the targets."""
    task = HandReconstructionTask(keypoint_stride=8, **TINY)
    losses = task.batch_losses(batch)
    assert torch.isfinite(losses["keypoints"]) and losses["keypoints"] > 0
    H, W = batch["image"].shape[-2:]
    h, w = H // 8, W // 8
    # heatmap logits peaked at the true joints' cells give a lower loss than flat ones
    cell = (batch["joints2d"] * torch.tensor([w / W, h / H])).floor().long().clamp(0, h - 1)
    peaked = torch.zeros(8, 42, h, w)
    peaked[torch.arange(8)[:, None], torch.arange(42), cell[..., 1], cell[..., 0]] = 6.0
    from visionkit.tasks.hands.dir import soft_argmax

    flat = torch.zeros(8, 42, h, w)
    valid = batch["joint_valid"]
    good = task.keypoint_loss(peaked, soft_argmax(peaked), batch["joints2d"], valid, H, W)
    bad = task.keypoint_loss(flat, soft_argmax(flat), batch["joints2d"], valid, H, W)
    assert good < bad


def _write_random_mano(path, seed):
    import pickle

    import numpy as np
    import scipy.sparse

    from visionkit.tasks.hands.kinematics import MANO_PARENTS

    rng = np.random.default_rng(seed)
    V = 778
    J = rng.random((16, V)) * (rng.random((16, V)) < 0.02) + 1e-3
    w = rng.random((V, 16)) ** 4
    v = rng.normal(scale=0.05, size=(V, 3))
    # a right-hand rest pose has its fingers towards -x of the wrist, the left one is its mirror image
    Jn = J / J.sum(1, keepdims=True)
    g = Jn[0] - Jn[1:].mean(0)
    v[:, 0] += g * (0.05 - g @ v[:, 0]) / (g @ g)
    if seed % 2:
        v[:, 0] *= -1
    data = {"v_template": v, "shapedirs": rng.normal(scale=0.005, size=(V, 3, 10)),
            "posedirs": rng.normal(scale=0.005, size=(V, 3, 135)),
            "J_regressor": scipy.sparse.csc_matrix(J / J.sum(1, keepdims=True)),
            "weights": w / w.sum(1, keepdims=True), "f": rng.integers(0, V, size=(1538, 3)),
            "kintree_table": np.array([[4294967295] + MANO_PARENTS[1:], list(range(16))]),
            "hands_components": np.eye(45), "hands_mean": np.zeros(45)}
    with open(path, "wb") as fh:
        pickle.dump(data, fh)


def test_mano_model_predicts_meshes_and_writes_obj(batch, tmp_path):
    for side, seed in (("RIGHT", 0), ("LEFT", 1)):
        _write_random_mano(tmp_path / f"MANO_{side}.pkl", seed)
    task = HandReconstructionTask(hand_model="mano", mano_dir=str(tmp_path), **TINY)
    b = dict(batch)
    b["mano_pose"] = torch.randn(8, 2, 48) * 0.2
    b["mano_shape"] = torch.randn(8, 2, 10)
    b["mano_valid"] = torch.ones(8, 2)
    b["cam_R"] = torch.eye(3).expand(8, 3, 3)
    losses = task.batch_losses(b)
    assert losses["vertices"] > 0 and torch.isfinite(losses["loss"])
    task.eval()
    preds = task(b)
    assert preds["vertices"].shape == (8, 1556, 3)
    task.update_metrics(task.test_metrics, preds, b)
    assert torch.isfinite(task.test_metrics.compute()["test_MPVPE"])
    writer = HandJSONWriter(str(tmp_path / "pred"))
    writer._faces = [lay.faces for lay in task.model.hand_layers]
    writer.output_dir.mkdir()
    writer.write_batch(preds, b, 0, 0)
    obj = (tmp_path / "pred" / "r0_b000000_000_left.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == 778 and sum(line.startswith("f ") for line in obj) == 1538
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        HandReconstructionTask(hand_model="mano", mano_dir=str(tmp_path / "empty"))


def test_second_stage_loads_weights_and_trains_only_the_refinement(batch, tmp_path):
    first = HandReconstructionTask(**TINY)
    path = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": first.state_dict()}, path)
    task = HandReconstructionTask(init_weights=str(path), freeze_initial=True, **TINY)
    for k, v in first.state_dict().items():
        assert torch.equal(v, task.state_dict()[k])
    task.train()
    assert not task.model.backbone.training and task.model.blocks.training
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-3)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    task.batch_losses(batch)["loss"].backward()
    opt.step()
    after = task.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("model.backbone", "model.init_")))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model.blocks"))
    with pytest.raises(ValueError, match="init_weights"):
        torch.save({"state_dict": {"model.nope": torch.zeros(1)}}, tmp_path / "bad.ckpt")
        HandReconstructionTask(init_weights=str(tmp_path / "bad.ckpt"), **TINY)
