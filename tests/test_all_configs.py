"""Every config in configs/ builds its task and datamodule and runs one training + validation step by itself.

Synthetic configs run on their own data with fewer samples; real-dataset configs run on small fixture data
written in the exact on-disk format by ``tools/fake_data.py`` (the data root overridden, small images). Every
run is ``fit --trainer.fast_dev_run 1`` on the CPU, in this process. A config added to ``configs/`` runs here
by itself when its datamodule is a synthetic one of ``SMALL``; any other (a real dataset, an earlier step's
output) needs an entry in ``CASES``, or ``test_every_config_is_covered`` fails.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from visionkit.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
_spec = importlib.util.spec_from_file_location("fake_data", REPO / "tools" / "fake_data.py")
fake = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fake_data", fake)
_spec.loader.exec_module(fake)

COMMON = ["--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
          "--trainer.strategy", "auto", "--trainer.precision", "32", "--trainer.logger", "false",
          "--trainer.default_root_dir", "tmp", "--data.init_args.num_workers", "0"]


def _args(prefix: str, **kw) -> list[str]:
    out = []
    for k, v in kw.items():
        out += [f"--{prefix}.init_args.{k}", str(v)]
    return out


def data(**kw) -> list[str]:
    return _args("data", **kw)


def model(**kw) -> list[str]:
    return _args("model", **kw)


# fewer samples for the synthetic datamodules (keyed by the config's data class)
SMALL = {
    "SyntheticOBB": data(num_train=4, num_val=2, num_test=2),
    "visionkit.datamodules.obb.points.SyntheticPointOBB": data(num_train=4, num_val=2, num_test=2),
    "visionkit.datamodules.obb.points.SyntheticPseudoOBB": data(num_train=4, num_val=2, num_test=2),
    "SyntheticPrimitives": data(num_train=8, num_val=4, num_test=4, cache_dir="pc_cache"),
    "ChargedParticles": data(num_train=4, num_val=2, num_test=2),
    "SyntheticHands": data(num_train=4, num_val=2, num_test=2),
    "SyntheticShapes": data(num_train=24, num_val=12, num_test=12),
    "VoxelShapes": data(num_train=10, num_val=5, num_test=5),
    "Digits": [],
}


@dataclass
class Case:
    """How one config runs here: fixture writer (gets the working folder, returns extra arguments) and args."""

    write: Callable[[Path], list[str]] | None = None
    args: list[str] = field(default_factory=list)
    xfail: str | None = None


def _dota(tmp: Path) -> list[str]:
    return data(root=fake.write_dota(tmp / "dota", n_images=2, size=64, point_dir="points"))


def _rsar(tmp: Path) -> list[str]:
    return data(root=fake.write_rsar(tmp / "RSAR", n_images=2, size=64), image_size=64)


def _dior(tmp: Path) -> list[str]:
    return data(root=fake.write_dior_r(tmp / "DIOR-R", n_images=2, size=64, point_dir="points"), image_size=64)


def _modelnet(tmp: Path) -> list[str]:
    return data(root=fake.write_modelnet40_h5(tmp / "mn40", num_train=4, num_test=2, points=1024))


def _scanobjectnn(tmp: Path) -> list[str]:
    return data(root=fake.write_scanobjectnn(tmp / "sonn", num_train=4, num_test=2, points=1024))


def _shapenetpart(tmp: Path) -> list[str]:
    return data(root=fake.write_shapenetpart(tmp / "snp", per_split=2, points=2048))


def _eth(tmp: Path) -> list[str]:
    return data(root=fake.write_eth_ucy(tmp / "eth_ucy"))


def _md17(molecule: str) -> Callable[[Path], list[str]]:
    return lambda tmp: data(root=fake.write_md17(tmp / "md17", molecules=[molecule]))


def _h36m(tmp: Path) -> list[str]:
    return data(root=fake.write_h36m(tmp / "h36m", frames=80), test_samples_per_action=2)


def _interhand(tmp: Path) -> list[str]:
    root = fake.write_interhand(tmp / "InterHand2.6M", frames=2, width=96, height=128)
    return data(root=root, image_size=64) + model(mano_dir=fake.write_mano(tmp / "mano"))


def _pseudo_labels(tmp: Path) -> list[str]:
    """Step 1's output for step 2: one DOTA label file per training image (here: the true boxes)."""
    from visionkit.datamodules.obb.dota import write_dota_txt
    from visionkit.datamodules.obb.synthetic import SyntheticOBB
    from visionkit.ops.rotated_boxes import obb2poly

    dm = SyntheticOBB(num_train=4, num_val=2, num_test=2, image_size=128)
    dm.setup("fit")
    out = tmp / "pseudo_labels"
    out.mkdir()
    names = ["rectangle", "ellipse", "triangle"]
    for i in range(len(dm.train_dataset)):
        s = dm.train_dataset[i]
        write_dota_txt(out / f"{s['image_id']}.txt", obb2poly(s["boxes"].double()), [names[c] for c in s["labels"]])
    return data(pseudo_label_dir=out)


def _hands_stage1(tmp: Path) -> list[str]:
    """Stage 1 (hands/synthetic.yaml) trained for one step: its last checkpoint starts stage 2."""
    stage1 = CONFIGS / "hands" / "synthetic.yaml"
    return model(init_weights=_one_step(["--config", str(stage1), *SMALL["SyntheticHands"]], tmp / "stage1"))


def _one_step(args: list[str], root: Path) -> Path:
    """``fit`` for one training step with checkpointing on; returns ``<root>/checkpoints/last.ckpt``."""
    main(["fit", *args, *COMMON[2:], "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0",
          "--trainer.default_root_dir", str(root)])
    ckpt = root / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


def _tokenizer_args(ckpt: Path) -> list[str]:
    return model(tokenizer_ckpt=ckpt) + data(tokenizer_ckpt=ckpt)


def _imagenet(tmp: Path) -> list[str]:
    """An ImageNet-layout folder of 32 px JPEGs, a one-step VQ tokenizer on it (16x downsampling, as the
    config's 256 px -> 16 x 16 codes) and a small transformer."""
    root = fake.write_image_folder(tmp / "imagenet", classes=3, per_class=2, size=32)
    ckpt = _one_step(["--model", "TokenizerTask", "--model.init_args.downsample", "16", "--data", "ImageFolder",
                      *data(root=root, image_size=32, batch_size=4)], tmp / "vq")
    return (data(root=root, image_size=32) + _tokenizer_args(ckpt)
            + model(image_size="[32,32]", num_classes=3, dim=32, depth=1, heads=2))

# configs that need fixture data or an earlier step's output (synthetic configs run as they are)
CASES: dict[str, Case] = {
    # obb
    "obb/pointobb_synthetic_detector.yaml": Case(_pseudo_labels),
    "obb/dota_v1.yaml": Case(_dota),
    "obb/pointobb_dota_v1.yaml": Case(_dota),
    "obb/rsar.yaml": Case(_rsar),
    "obb/pointobb_dior_r.yaml": Case(_dior),
    # pointcloud
    "pointcloud/modelnet40_so3_so3.yaml": Case(_modelnet),
    "pointcloud/modelnet40_z_so3.yaml": Case(_modelnet),
    "pointcloud/scanobjectnn.yaml": Case(_scanobjectnn),
    "pointcloud/shapenetpart_z_so3.yaml": Case(_shapenetpart),
    # motion
    "motion/h36m.yaml": Case(_h36m),
    **{f"motion/eth_ucy_{s}.yaml": Case(_eth) for s in ("eth", "hotel", "univ", "zara1", "zara2")},
    **{f"motion/md17_{m}.yaml": Case(_md17(m)) for m in fake.MD17_ATOMS},
    # generation
    "generation/imagenet_nar.yaml": Case(_imagenet),
    # hands
    "hands/synthetic_refine.yaml": Case(_hands_stage1),
    "hands/interhand26m.yaml": Case(_interhand),
}


def _names() -> list[str]:
    return sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))


def _data_class(name: str) -> str:
    return yaml.safe_load((CONFIGS / name).read_text())["data"]["class_path"]


def _case(name: str) -> Case | None:
    """The config's case; a config on a synthetic datamodule of ``SMALL`` runs on its own data by default."""
    if name in CASES:
        return CASES[name]
    return Case() if _data_class(name) in SMALL else None


def test_every_config_is_covered():
    missing = [n for n in _names() if _case(n) is None]
    assert not missing, (f"configs on a datamodule without fixture data here: {missing}; add a case to CASES "
                         "in tests/test_all_configs.py (or the datamodule's size arguments to SMALL)")


def _params():
    out = []
    for name in _names():
        case = _case(name)
        marks = [pytest.mark.xfail(strict=False, reason=case.xfail)] if case is not None and case.xfail else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


@pytest.mark.parametrize("name", _params())
def test_config_runs_by_itself(name, tmp_path, monkeypatch):
    """``fit --trainer.fast_dev_run 1`` of the config: one training and one validation step, no error."""
    config = CONFIGS / name
    monkeypatch.chdir(tmp_path)  # relative outputs (runs/..., caches) land in the test's folder
    case = _case(name)
    assert case is not None, f"{name}: no fixture data for its datamodule (see test_every_config_is_covered)"
    args = ["fit", "--config", str(config), *COMMON, *SMALL.get(_data_class(name), [])]
    if case.write is not None:
        args += case.write(tmp_path)
    cli = main(args)
    trainer = cli.trainer
    assert trainer.state.finished, f"{name}: fit did not finish"
    assert trainer.global_step == 1, f"{name}: {trainer.global_step} optimizer steps instead of 1"
