"""An external package registers a task, a datamodule and a backbone through entry points."""

import subprocess
import sys
import textwrap

from conftest import subprocess_env

PLUGIN_CODE = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset

from visionkit.datamodules.base import BaseDataModule
from visionkit.tasks.base import BaseTask


class TinyNet(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.out_channels, self.strides = [width], [1]
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, x):
        return [self.conv(x)]


class PluginMeanTask(BaseTask):
    """Predicts the mean colour of an image with a registered plugin backbone."""

    def __init__(self, backbone: str = "plugin_tiny", **kwargs):
        super().__init__(**kwargs)

    def configure_models(self):
        from visionkit.backbones import build_backbone

        self.backbone = build_backbone(self.hparams.backbone)
        self.head = nn.Linear(self.backbone.out_channels[0], 3)

    def compute_outputs(self, batch):
        return self.head(self.backbone(batch["image"])[0].mean((2, 3)))

    def compute_losses(self, outputs, batch):
        return {"loss": nn.functional.mse_loss(outputs, batch["image"].mean((2, 3)))}

    def postprocess(self, outputs, batch):
        return {"mean": outputs}


class PluginImages(BaseDataModule):
    """Random 8x8 images."""

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        images = torch.rand(32, 3, 8, 8, generator=g)
        self.train_dataset = self.val_dataset = self.test_dataset = [{"image": im} for im in images]


def build_tiny(**kwargs):
    return TinyNet(**kwargs)
'''


def test_external_plugin_installs_and_trains_by_short_name(tmp_path):
    src = tmp_path / "src"
    (src / "vk_plugin_demo").mkdir(parents=True)
    (src / "vk_plugin_demo" / "__init__.py").write_text(textwrap.dedent(PLUGIN_CODE))
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "vk-plugin-demo"
        version = "0.0.1"
        [tool.setuptools]
        packages = ["vk_plugin_demo"]
        [project.entry-points."visionkit.tasks"]
        mean = "vk_plugin_demo:PluginMeanTask"
        [project.entry-points."visionkit.datamodules"]
        images = "vk_plugin_demo:PluginImages"
        [project.entry-points."visionkit.backbones"]
        plugin_tiny = "vk_plugin_demo:build_tiny"
    '''))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    env = subprocess_env()
    env["PYTHONPATH"] = f"{target}:{env['PYTHONPATH']}"

    listing = subprocess.run([sys.executable, "-m", "visionkit", "list"], env=env, capture_output=True,
                             text=True, timeout=300, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for name in ("PluginMeanTask", "PluginImages", "plugin_tiny"):
        assert name in listing.stdout

    run = subprocess.run([sys.executable, "-m", "visionkit", "fit", "--model", "PluginMeanTask", "--data",
                          "PluginImages", "--trainer.max_epochs", "2", "--trainer.default_root_dir",
                          str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
