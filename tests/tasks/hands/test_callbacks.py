"""Hand pictures and files: projection, skeleton drawing, OBJ writing, the validation-end picture."""

import numpy as np
import torch
from lightning.pytorch import Trainer

from visionkit.datamodules.hands.synthetic import SyntheticHands
from visionkit.tasks.hands import HandReconstructionTask
from visionkit.tasks.hands.callbacks import HandSkeletonCallback, draw_skeletons, project, write_obj


def test_project_matches_numpy():
    X = torch.rand(2, 42, 3, dtype=torch.float64) * 100 + torch.tensor([0, 0, 500.0], dtype=torch.float64)
    K = torch.tensor([[200.0, 0, 64], [0, 210.0, 60], [0, 0, 1]], dtype=torch.float64).expand(2, 3, 3)
    x = X.numpy()
    ref = np.stack([200 * x[..., 0] / x[..., 2] + 64, 210 * x[..., 1] / x[..., 2] + 60], -1)
    np.testing.assert_allclose(project(X, K).numpy(), ref, atol=1e-9)


def test_draw_and_obj(tmp_path):
    pic = draw_skeletons(torch.rand(2, 3, 32, 32), [torch.rand(2, 42, 2) * 32] * 3, ["a", "b", "c"])
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[-1] == 3 and pic.std() > 0
    v = torch.rand(5, 3)
    f = torch.tensor([[0, 1, 2], [2, 3, 4]])
    write_obj(tmp_path / "m.obj", v, f)
    lines = (tmp_path / "m.obj").read_text().splitlines()
    assert lines[5] == "f 1 2 3" and len(lines) == 7
    np.testing.assert_allclose(np.array([[float(t) for t in s.split()[1:]] for s in lines[:5]]), v.numpy(), atol=1e-4)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_callback_saves_a_picture_after_validation(tmp_path):
    dm = SyntheticHands(num_train=2, num_val=2, num_test=2, image_size=64, focal=100.0, batch_size=2)
    task = HandReconstructionTask(backbone_kwargs={"widths": [8, 8, 16, 16, 16], "out_indices": [2, 3, 4]}, dim=16,
                                  hidden=32, bone_channels=1)
    cb = HandSkeletonCallback(num_images=2, output_dir=str(tmp_path / "pics"))
    trainer = Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[cb], num_sanity_val_steps=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.fit(task, datamodule=dm)
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "pics" / "epoch_000.png").read_bytes()[:4] == b"\x89PNG"
