"""AutoregressiveGenerationTask: the task contract, the training loop with judge metrics, VQ tokens."""

import pytest
import torch
from lightning.pytorch import Trainer

from visionkit.datamodules.generation import Digits, SyntheticShapes
from visionkit.tasks.generation import AutoregressiveGenerationTask, JudgeClassifier, load_judge, save_judge


def _task(**kw):
    args = dict(ordering="nar", image_size=(8, 8), dim=32, depth=2, heads=2, lr=3e-3, warmup_steps=0)
    args.update(kw)
    return AutoregressiveGenerationTask(**args)


def test_generate_contract_and_passes():
    for kind, passes in [("nar", 15), ("raster", 64)]:
        task = _task(ordering=kind)
        assert task.model.num_passes() == passes
        out = task.generate(torch.tensor([0, 3, 9]), generator=torch.Generator().manual_seed(0))
        assert out["tokens"].shape == (3, 8, 8) and out["image"].shape == (3, 1, 8, 8)
        assert out["tokens"].max() < 17 and 0 <= out["image"].min() and out["image"].max() <= 1
        # decode is the exact inverse of the pixel tokenizer
        assert torch.equal(task.tokenizer.encode(out["image"]), out["tokens"])


def test_fit_with_judge_metrics(tmp_path):
    judge = JudgeClassifier(1, 10, width=8, feature_dim=16)
    save_judge(judge, tmp_path / "judge.pt")
    task = _task(judge_path=str(tmp_path / "judge.pt"), kid_subset_size=20)
    dm = Digits(batch_size=32)
    before = None
    trainer = Trainer(max_epochs=1, limit_train_batches=15, limit_val_batches=2, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                      default_root_dir=str(tmp_path))
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        before = task.batch_losses(batch)["loss"].item()
    trainer.fit(task, dm)
    m = trainer.callback_metrics
    for key in ("val_loss", "val_token_nll", "val_bits_per_token", "val_judge_accuracy", "val_fid", "val_kid"):
        assert key in m, key
    torch.testing.assert_close(m["val_bits_per_token"], m["val_token_nll"] / torch.log(torch.tensor(2.0)))
    task.eval()
    with torch.no_grad():
        after = task.batch_losses(batch)["loss"].item()
    assert after < before - 0.3  # learning: from ~ln(17) = 2.83 nats towards the data entropy
    assert set(task.state_dict()) == set(_task().state_dict())  # the frozen judge is not saved


def test_label_dropout_uses_null_label():
    task = _task(label_dropout=1.0)
    seen = []
    orig = task.model.forward
    task.model.forward = lambda tokens, labels: (seen.append(labels.clone()), orig(tokens, labels))[1]
    task.train()
    task.batch_losses({"image": torch.rand(4, 1, 8, 8), "label": torch.tensor([0, 1, 2, 3])})
    assert torch.equal(seen[0], torch.full((4,), 10))


def test_vq_tokens_cached_and_used(tmp_path):
    from visionkit.tasks.generation import TokenizerTask

    tok_task = TokenizerTask(in_channels=3, hidden=8, downsample=4, num_codes=16, code_dim=4)
    dm = SyntheticShapes(image_size=16, num_train=24, num_val=12, num_test=12, batch_size=8)
    trainer = Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                      default_root_dir=str(tmp_path), enable_progress_bar=False, num_sanity_val_steps=0,
                      callbacks=[])
    trainer.fit(tok_task, dm)
    ckpt = tmp_path / "tok.ckpt"
    trainer.save_checkpoint(ckpt)
    for key in ("val_recon_mse", "val_codebook_usage", "val_codebook_perplexity"):
        assert key in trainer.callback_metrics
    cache = tmp_path / "cache"
    dm2 = SyntheticShapes(image_size=16, num_train=24, num_val=12, num_test=12, batch_size=8,
                          tokenizer_ckpt=str(ckpt), cache_dir=str(cache))
    dm2.setup("fit")
    files = sorted(cache.iterdir())
    assert len(files) == 3
    sample = dm2.train_dataset[5]
    tok_task.eval()
    with torch.no_grad():
        ref = tok_task.vqvae.encode(sample["image"][None])[0]
    assert torch.equal(sample["tokens"], ref)
    # a second datamodule reads the cache instead of encoding again
    mtimes = [f.stat().st_mtime_ns for f in files]
    dm3 = SyntheticShapes(image_size=16, num_train=24, num_val=12, num_test=12, tokenizer_ckpt=str(ckpt),
                          cache_dir=str(cache))
    dm3.setup("fit")
    assert [f.stat().st_mtime_ns for f in sorted(cache.iterdir())] == mtimes
    ar = AutoregressiveGenerationTask(ordering="nar", image_size=(16, 16), in_channels=3, num_classes=12,
                                      tokenizer="vq", tokenizer_ckpt=str(ckpt), dim=32, depth=1, heads=2)
    assert ar.ordering_.shape == (4, 4) and ar.ordering_.num_groups == 7
    batch = dm2.collate([dm2.train_dataset[i] for i in range(4)])
    assert torch.isfinite(ar.batch_losses(batch)["loss"])
    out = ar.generate(batch["label"])
    assert out["image"].shape == (4, 3, 16, 16)


def test_samples_per_image_feeds_k_samples_per_real_image(tmp_path):
    judge = JudgeClassifier(1, 10, width=8, feature_dim=16)
    save_judge(judge, tmp_path / "judge.pt")
    task = _task(judge_path=str(tmp_path / "judge.pt"), samples_per_image=3).eval()
    batch = {"image": torch.rand(5, 1, 8, 8), "label": torch.tensor([0, 1, 2, 3, 4])}
    seen = []
    orig = task.model.generate
    task.model.generate = lambda labels, **kw: (seen.append(labels.clone()), orig(labels, **kw))[1]
    metrics = task.test_metrics
    task.update_metrics(metrics, task(batch), batch)
    # one sample from task(batch), then two more for each label
    assert torch.equal(torch.cat(seen), torch.tensor([0, 1, 2, 3, 4] * 3))
    fid = metrics["fid"]
    assert int(fid.real_features_num_samples) == 5 and int(fid.fake_features_num_samples) == 15
    assert int(metrics["judge_accuracy"].total) == 15
    with pytest.raises(ValueError, match="samples_per_image"):
        _task(samples_per_image=0)


def _fit(task, dm, tmp_path, **kw):
    args = dict(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    args.update(kw)
    trainer = Trainer(**args)
    trainer.fit(task, dm)
    return trainer


def test_missing_judge_is_trained_in_prepare_data_and_used(tmp_path, capsys):
    path = tmp_path / "judges" / "digits_judge.pt"
    task = _task(judge_path=str(path), judge_steps=40, kid_subset_size=10)
    assert "fid" not in task.val_metrics  # nothing to load at construction
    trainer = _fit(task, Digits(batch_size=32), tmp_path)
    assert path.exists() and "judge" in capsys.readouterr().out
    for key in ("val_judge_accuracy", "val_fid", "val_kid"):
        assert key in trainer.callback_metrics, key
    # the saved judge is a trained classifier: far above chance (0.1) on the held-out digits
    judge = load_judge(path)
    dm = Digits()
    dm.setup("fit")
    x = torch.stack([s["image"] for s in dm.test_dataset])
    assert (judge(x).argmax(1) == dm.test_dataset.labels).float().mean() > 0.6
    # a second run loads it at construction, without training again
    mtime = path.stat().st_mtime_ns
    task2 = _task(judge_path=str(path), judge_steps=40)
    assert "fid" in task2.val_metrics
    _fit(task2, Digits(batch_size=32), tmp_path, limit_val_batches=0)
    assert path.stat().st_mtime_ns == mtime


def test_missing_judge_under_fast_dev_run_warns_once_and_runs_without(tmp_path, capsys):
    path = tmp_path / "judge.pt"
    trainer = _fit(_task(judge_path=str(path)), Digits(batch_size=32), tmp_path, fast_dev_run=1)
    err = capsys.readouterr().err
    assert not path.exists()
    assert sum(str(path) in line for line in err.splitlines()) == 1
    assert "val_token_nll" in trainer.callback_metrics and "val_fid" not in trainer.callback_metrics


def test_load_state_dict_honours_strict():
    sd = _task().state_dict()
    assert not any(k.startswith("tokenizer.") or "_metrics." in k for k in sd)
    _task().load_state_dict(sd)  # its own state loads strictly
    broken = dict(sd)
    broken.pop(next(iter(broken)))
    with pytest.raises(RuntimeError, match="missing"):
        _task().load_state_dict(broken)
    _task().load_state_dict(broken, strict=False)


def test_predict_never_trains_a_missing_judge(tmp_path, capsys):
    path = tmp_path / "judge.pt"
    trainer = Trainer(logger=False, enable_progress_bar=False, limit_predict_batches=1, default_root_dir=str(tmp_path))
    out = trainer.predict(_task(judge_path=str(path), judge_steps=40), Digits(batch_size=4))
    assert not path.exists() and "judge" not in capsys.readouterr().out
    assert out[0]["tokens"].shape == (4, 8, 8)
