"""Generation callbacks: grids, PNG files (decoded back with PIL), the sample-grid logger and the writer."""

from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from visionkit.tasks.generation.callbacks import PNGSampleWriter, SampleGridLogger, make_grid, png_bytes


def test_make_grid_and_png_round_trip(tmp_path):
    imgs = torch.rand(5, 3, 4, 6)
    g = make_grid(imgs, nrow=3, pad=1)
    assert g.shape == (3, 2 * 5 + 1, 3 * 7 + 1)
    torch.testing.assert_close(g[:, 1 + 5:1 + 5 + 4, 1 + 7:1 + 7 + 6], imgs[4])  # row 1, column 1
    (tmp_path / "g.png").write_bytes(png_bytes(g, scale=2))
    arr = np.asarray(Image.open(tmp_path / "g.png"))
    assert arr.shape == (22, 44, 3)
    ref = (g.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(arr[::2, ::2], ref)
    assert make_grid(torch.rand(2, 1, 3, 4, 4), nrow=2).shape == (1, 6, 11)  # volumes: max projection


class _Gen:
    hparams = SimpleNamespace(num_classes=3)
    device = torch.device("cpu")

    def generate(self, labels, generator=None):
        return {"image": labels.float().view(-1, 1, 1, 1).expand(-1, 1, 4, 4) / 2}


def test_sample_grid_logger_writes_png_and_logs(tmp_path):
    logged = []
    exp = SimpleNamespace(add_image=lambda tag, img, global_step, dataformats: logged.append((tag, img.shape)))
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=1, is_global_zero=True, global_step=10,
                              loggers=[SimpleNamespace(experiment=exp)], default_root_dir=str(tmp_path))
    cb = SampleGridLogger(samples_per_class=2, every_n_epochs=2, scale=1)
    cb.on_validation_epoch_end(trainer, _Gen())
    assert logged == [("samples", (3 * 5 + 1, 2 * 5 + 1))]
    arr = np.asarray(Image.open(tmp_path / "samples" / "epoch_0001.png"))
    assert arr[1, 1] == 0 and arr[1 + 10, 1] == 255  # row k holds class k (= k / 2 grey)


def test_png_sample_writer(tmp_path):
    w = PNGSampleWriter(str(tmp_path / "out"))
    w.output_dir.mkdir()
    w.write_batch({"image": torch.rand(3, 1, 8, 8), "label": torch.tensor([4, 0, 7])}, {}, 2, 0)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["0_00002_000_class4.png", "0_00002_001_class0.png", "0_00002_002_class7.png"]
    assert np.asarray(Image.open(tmp_path / "out" / names[0])).shape == (8, 8)
