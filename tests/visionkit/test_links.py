"""Values the data knows reach the task: linked arguments, and the errors when a config contradicts them."""

import pytest
from jsonargparse import Namespace

from visionkit.cli import link_data_to_model, main
from visionkit.errors import ConfigError

DATA = "visionkit.datamodules.obb.SyntheticOBB"
TASK = "visionkit.tasks.obb.RotatedDetectionTask"


def _cfg(**model_args):
    data = Namespace(class_path=DATA, init_args=Namespace(shapes=("rectangle", "ellipse"), num_train=2))
    model = Namespace(class_path=TASK, init_args=Namespace(**model_args))
    return data, model


def test_defaults_take_the_datamodule_values():
    import inspect

    from visionkit.tasks.obb import RotatedDetectionTask

    default = inspect.signature(RotatedDetectionTask.__init__).parameters["num_classes"].default
    data, model = _cfg(num_classes=default, class_names=None)
    link_data_to_model(data, model)
    assert model.init_args.num_classes == 2 and list(model.init_args.class_names) == ["rectangle", "ellipse"]


def test_a_contradicting_value_is_one_error_naming_both():
    data, model = _cfg(num_classes=5, class_names=None)
    with pytest.raises(ConfigError, match=r"num_classes: 5, but the datamodule \(SyntheticOBB\) gives 2"):
        link_data_to_model(data, model)
    data, model = _cfg(num_classes=2, class_names=["rectangle", "ellipse"])  # agreeing values are fine
    link_data_to_model(data, model)


def test_cli_rejects_a_contradiction_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", "configs/obb/synthetic.yaml", "--model.init_args.num_classes", "7",
              "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_classes: 7" in err[0] and "gives 3" in err[0]


TOY = ["--model", "toy.ToyRegressionTask", "--data", "toy.ToyRegressionData", "--trainer.max_epochs", "1",
       "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false"]


def test_lightning_optimizer_and_scheduler_injection_replace_the_shortcuts(tmp_path):
    import torch

    cli = main(["fit", *TOY, "--trainer.default_root_dir", str(tmp_path), "--optimizer", "torch.optim.SGD",
                "--optimizer.lr", "0.05", "--lr_scheduler", "torch.optim.lr_scheduler.StepLR",
                "--lr_scheduler.step_size", "3"])
    opt = cli.trainer.optimizers[0]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["lr"] == 0.05
    assert isinstance(cli.trainer.lr_scheduler_configs[0].scheduler, torch.optim.lr_scheduler.StepLR)
    plain = main(["fit", *TOY, "--trainer.default_root_dir", str(tmp_path / "b")])  # no flags: the task's own
    assert isinstance(plain.trainer.optimizers[0], torch.optim.AdamW)


def test_options_from_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("JSONARGPARSE_DEFAULT_ENV", "true")
    monkeypatch.setenv("PL_FIT__TRAINER__LOG_EVERY_N_STEPS", "7")
    monkeypatch.setenv("PL_FIT__TRAINER__MAX_EPOCHS", "5")  # the command line wins over the environment
    cli = main(["fit", *TOY, "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.log_every_n_steps == 7 and cli.trainer.max_epochs == 1


@pytest.mark.parametrize("config, key, value", [
    ("configs/pointcloud/synthetic_parot_cls.yaml", "model.init_args.frame_averaging", "so4"),
    ("configs/motion/particles.yaml", "model.init_args.normalize", "scaled"),
    ("configs/generation/digits_nar.yaml", "model.init_args.ordering", "spiral"),
    ("configs/obb/synthetic.yaml", "data.init_args.label_mode", "polygon"),
    ("configs/motion/particles.yaml", "model.init_args.optimizer", "sgdx"),
])
def test_a_wrong_choice_fails_while_parsing_naming_key_and_choices(capsys, config, key, value):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", config, f"--{key}", value, "--print_config"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert key in err[0] and "expected one of" in err[0] and repr(value) in err[0], err
