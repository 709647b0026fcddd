"""Token caching on an ImageFolder of PNGs: built once, read without tokenizing, resumable, keyed by checkpoint."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from visionkit.datamodules.generation import ImageFolder
from visionkit.datamodules.generation import tokens as tokens_mod
from visionkit.io import image_to_float
from visionkit.tasks.generation import TokenizerTask
from visionkit.tasks.generation.tokenizers import VQVAE


def _folder(root, num_train=5, num_val=2):
    rng = np.random.default_rng(0)
    for split, n in (("train", num_train), ("val", num_val)):
        for cls in ("a", "b"):
            d = root / split / cls
            d.mkdir(parents=True)
            for k in range(n):
                Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(d / f"{k}.png")


def _ckpt(path, seed=0):
    torch.manual_seed(seed)
    task = TokenizerTask(in_channels=3, hidden=8, downsample=4, num_codes=16, code_dim=4)
    # the keys of a Lightning checkpoint that load_tokenizer reads
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    return task.vqvae.eval()


@pytest.fixture
def counter(monkeypatch):
    seen = []
    orig = VQVAE.encode

    def encode(self, images):
        seen.append(len(images))
        return orig(self, images)

    monkeypatch.setattr(VQVAE, "encode", encode)
    return seen


def _dm(tmp_path, **kw):
    args = dict(root=str(tmp_path / "data"), image_size=16, tokenizer_ckpt=str(tmp_path / "tok.ckpt"),
                cache_dir=str(tmp_path / "cache"), cache_batch_size=3, cache_shard_size=4, batch_size=4)
    args.update(kw)
    return ImageFolder(**args)


def _direct(vqvae, ds):
    with torch.no_grad():
        return vqvae.encode(image_to_float(torch.stack([ds[i]["image"] for i in range(len(ds))])))


def test_cache_built_once_equals_direct_tokenizing_and_is_read_without_encoding(tmp_path, counter):
    _folder(tmp_path / "data")
    vqvae = _ckpt(tmp_path / "tok.ckpt")
    dm = _dm(tmp_path)
    dm.prepare_data()
    assert sum(counter) == 10 + 4  # train + val, the test split is the val split: encoded once
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(folders) == 2
    train = next(p for p in (tmp_path / "cache").iterdir() if "_train_" in p.name)
    assert sorted(p.name for p in train.iterdir()) == ["done.json", "shard_00000.pt", "shard_00001.pt",
                                                       "shard_00002.pt"]  # 10 grids in shards of 4
    assert json.loads((train / "done.json").read_text()) == {"length": 10, "shards": 3}
    counter.clear()
    dm2 = _dm(tmp_path)
    dm2.setup("fit")
    assert counter == []  # read, not tokenized
    for split in ("train", "val"):
        ds = getattr(dm2, f"{split}_dataset")
        got = torch.stack([ds[i]["tokens"] for i in range(len(ds))])
        assert got.dtype == torch.long and torch.equal(got, _direct(vqvae, ds.base))
    assert dm2.test_dataset is dm2.val_dataset
    batch = next(iter(dm2.train_dataloader()))
    assert batch["tokens"].shape == (4, 4, 4) and batch["image"].shape == (4, 3, 16, 16)


def test_interrupted_caching_resumes_at_the_first_missing_shard(tmp_path, counter, monkeypatch):
    _folder(tmp_path / "data")
    vqvae = _ckpt(tmp_path / "tok.ckpt")
    orig = tokens_mod._write_shard
    written = []

    def stop_after_one(path, tokens):
        if written:
            raise KeyboardInterrupt  # the job is killed while encoding the second shard
        written.append(path)
        orig(path, tokens)

    monkeypatch.setattr(tokens_mod, "_write_shard", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        _dm(tmp_path).prepare_data()
    train = next(p for p in (tmp_path / "cache").iterdir() if "_train_" in p.name)
    assert sorted(p.name for p in train.iterdir()) == ["shard_00000.pt"]  # no partial file, not marked done
    monkeypatch.setattr(tokens_mod, "_write_shard", orig)
    counter.clear()
    dm = _dm(tmp_path)
    dm.prepare_data()
    assert sum(counter) == (10 - 4) + 4  # the rest of train, then val
    got = torch.stack([dm.train_dataset[i]["tokens"] for i in range(10)])
    assert torch.equal(got, _direct(vqvae, dm.train_dataset.base))


def test_a_changed_checkpoint_or_image_size_never_reads_a_stale_cache(tmp_path, counter):
    _folder(tmp_path / "data")
    _ckpt(tmp_path / "tok.ckpt", seed=0)
    _dm(tmp_path).prepare_data()
    counter.clear()
    _dm(tmp_path, image_size=8).prepare_data()
    assert sum(counter) == 14
    vqvae = _ckpt(tmp_path / "tok.ckpt", seed=1)  # retrained tokenizer at the same path
    counter.clear()
    dm = _dm(tmp_path)
    dm.prepare_data()
    assert sum(counter) == 14
    assert len(list((tmp_path / "cache").iterdir())) == 6
    assert torch.equal(dm.val_dataset.tokens.long(), _direct(vqvae, dm.val_dataset.base))
