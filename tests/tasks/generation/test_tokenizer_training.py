"""AutoregressiveGenerationTask with a missing VQ tokenizer: trained once in prepare_data, saved, used."""

import pytest
import torch
from lightning.pytorch import Trainer

import visionkit.tasks.generation.autoregressive as ar_module
from visionkit.datamodules.generation import SyntheticShapes
from visionkit.errors import CheckpointError, DatasetNotFoundError
from visionkit.tasks.generation import AutoregressiveGenerationTask
from visionkit.tasks.generation.tokenization import load_tokenizer, tokenizer_config

SMALL_VQ = {"hidden": 8, "downsample": 4, "num_codes": 16, "code_dim": 4, "beta": 0.25}


def _task(path, **kw):
    args = dict(ordering="nar", image_size=(16, 16), in_channels=3, num_classes=12, tokenizer="vq",
                tokenizer_ckpt=str(path), tokenizer_args=SMALL_VQ, tokenizer_steps=4, dim=16, depth=1, heads=2,
                judge_path=None, warmup_steps=0)
    args.update(kw)
    return AutoregressiveGenerationTask(**args)


def _dm(path, tmp_path):
    return SyntheticShapes(image_size=16, num_train=24, num_val=12, num_test=12, batch_size=8,
                           tokenizer_ckpt=str(path), cache_dir=str(tmp_path / "cache"))


def _trainer(tmp_path, **kw):
    args = dict(max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    args.update(kw)
    return Trainer(**args)


@pytest.fixture
def calls(monkeypatch):
    """Records the ``steps`` of every tokenizer the task trains."""
    seen: list[int] = []
    real = ar_module.train_tokenizer

    def counting(*args, **kwargs):
        seen.append(kwargs["steps"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ar_module, "train_tokenizer", counting)
    return seen


def test_missing_tokenizer_is_trained_once_saved_and_used(tmp_path, calls, capsys):
    path = tmp_path / "tok" / "shapes_vq.ckpt"
    task, dm = _task(path), _dm(path, tmp_path)
    assert task.model.vocab_size == 16 and task.ordering_.shape == (4, 4)  # built before the tokenizer exists
    seen_tokens = []
    real_forward = task.model.forward
    task.model.forward = lambda tokens, labels: (seen_tokens.append(tokens.clone()), real_forward(tokens, labels))[1]
    _trainer(tmp_path).fit(task, dm)
    assert calls == [4] and path.is_file()
    assert "tokenizer" in capsys.readouterr().out
    saved = load_tokenizer(path)  # weights_only=True
    assert tokenizer_config(saved) == {"in_channels": 3, **SMALL_VQ}
    # the task's tokenizer is the saved one, and the cached tokens the transformer learnt from are its codes
    images = torch.stack([dm.train_dataset[i]["image"] for i in range(len(dm.train_dataset))])
    ref = saved.encode(images)
    assert torch.equal(task.tokenizer.encode(images), ref)
    assert torch.equal(torch.stack([dm.train_dataset[i]["tokens"] for i in range(len(images))]), ref)
    assert seen_tokens and all(t.shape[1:] == (4, 4) for t in seen_tokens)
    # every grid the transformer trained on is the saved tokenizer's code grid of a training image
    assert all((ref[None] == t[:, None]).flatten(2).all(-1).any(-1).all() for t in seen_tokens)
    # a second run reads the file: no training, the file is untouched
    mtime = path.stat().st_mtime_ns
    task2 = _task(path)
    _trainer(tmp_path).fit(task2, _dm(path, tmp_path))
    assert calls == [4] and path.stat().st_mtime_ns == mtime
    assert torch.equal(task2.tokenizer.encode(images), ref)


def test_architecture_mismatch_is_one_line(tmp_path, calls):
    path = tmp_path / "tok.ckpt"
    _trainer(tmp_path, max_steps=1).fit(_task(path), _dm(path, tmp_path))
    with pytest.raises(CheckpointError, match=r"tokenizer_args\.num_codes: .*num_codes=16.* expects 32") as err:
        _task(path, tokenizer_args={**SMALL_VQ, "num_codes": 32})
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match=r"model\.init_args\.in_channels"):
        _task(path, in_channels=1, tokenizer_args=None)
    assert _task(path, tokenizer_args=None).model.vocab_size == 16  # unset: the file's own architecture


@pytest.mark.parametrize("stage", ["test", "predict"])
def test_evaluation_never_trains_a_missing_tokenizer(tmp_path, calls, stage):
    path = tmp_path / "tok.ckpt"
    trainer = _trainer(tmp_path, limit_test_batches=1, limit_predict_batches=1)
    with pytest.raises(DatasetNotFoundError, match="tokenizer_ckpt") as err:
        getattr(trainer, stage)(_task(path), _dm(path, tmp_path))
    assert "\n" not in str(err.value) and calls == [] and not path.exists()


def test_untrained_stand_in_is_never_used(tmp_path):
    task = _task(tmp_path / "missing.ckpt")
    assert task.generate(torch.tensor([0, 1]), decode=False)["tokens"].shape == (2, 4, 4)
    with pytest.raises(DatasetNotFoundError, match="tokenizer_ckpt"):
        task.generate(torch.tensor([0, 1]))
    with pytest.raises(DatasetNotFoundError, match="tokenizer_ckpt"):
        task.batch_losses({"image": torch.rand(2, 3, 16, 16), "label": torch.tensor([0, 1])})


def test_fast_dev_run_trains_a_throw_away_tokenizer(tmp_path, calls):
    path = tmp_path / "tok.ckpt"
    task = _task(path, tokenizer_steps=300)
    _trainer(tmp_path, max_steps=-1, fast_dev_run=True).fit(task, _dm(path, tmp_path))
    assert calls == [ar_module.FAST_DEV_RUN_TOKENIZER_STEPS] and not path.exists()
    side = path.with_name(path.name + ".fast_dev_run")
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(task.tokenizer.encode(images), load_tokenizer(side).encode(images))
