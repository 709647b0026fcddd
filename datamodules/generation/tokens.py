"""Token caching: a frozen VQ-VAE encodes every split once; AR training then reads the cached token grids.

A split's cache is a folder of shards (``shard_00000.pt`` ... each ``shard_size`` grids, written atomically)
plus ``done.json`` once every shard exists. The folder name hashes the tokenizer checkpoint's bytes, the
datamodule's :meth:`~GenerationDataModule.cache_key` (dataset content and image size), the split's length
and fingerprint and the shard size, so a retrained tokenizer or another image size never reads a stale
cache. An interrupted encoding keeps its finished shards and resumes at the first missing one.

Under Lightning the cache is built in ``prepare_data`` (local rank 0, before any rank reads it), batched on
the trainer's device (CUDA when available), with ``num_workers`` DataLoader workers decoding images and a
progress bar; ``setup`` on every rank then only reads the shards.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from visionkit.datamodules.base import BaseDataModule, collate_dict
from visionkit.io import atomic_open, atomic_write_text, image_to_float

__all__ = ["GenerationDataModule", "TokenCache", "TokenCachedDataset", "encode_dataset", "file_sha1"]


class TokenCachedDataset(Dataset):
    """Adds ``tokens`` ``(h, w)`` long (pre-computed, stored compactly) to every sample of ``base``."""

    def __init__(self, base: Dataset, tokens: torch.Tensor) -> None:
        if len(base) != len(tokens):
            raise ValueError(f"token cache holds {len(tokens)} grids for a dataset of {len(base)} samples")
        self.base, self.tokens = base, tokens

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.base[i], "tokens": self.tokens[i].long()}


@torch.no_grad()
def encode_dataset(dataset: Dataset, tokenizer: torch.nn.Module, batch_size: int = 256) -> torch.Tensor:
    """Encode every ``image`` of ``dataset`` with ``tokenizer.encode`` -> ``(len, h, w)`` long (in order)."""
    out = [tokenizer.encode(image_to_float(b["image"]))
           for b in DataLoader(dataset, batch_size, collate_fn=collate_dict)]
    return torch.cat(out).long()


def file_sha1(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-1 of a file's bytes (read in 4 MB chunks)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dataset_fingerprint(dataset: Dataset) -> str:
    """The dataset's own ``fingerprint()`` (e.g. its file list) when it has one, else its length."""
    fp = getattr(dataset, "fingerprint", None)
    return fp() if callable(fp) else str(len(dataset))


def _write_shard(path: Path, tokens: torch.Tensor) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(tokens.clone(), f)


class TokenCache:
    """The sharded token cache of one split in ``folder``.

    Args:
        folder: cache folder of this split (its name carries the key).
        length: samples in the split.
        shard_size: grids per shard.
    """

    def __init__(self, folder: str | Path, length: int, shard_size: int) -> None:
        self.folder, self.length, self.shard_size = Path(folder), int(length), int(shard_size)
        self.num_shards = max(1, -(-self.length // self.shard_size))

    def shard_path(self, k: int) -> Path:
        return self.folder / f"shard_{k:05d}.pt"

    def shard_range(self, k: int) -> range:
        return range(k * self.shard_size, min(self.length, (k + 1) * self.shard_size))

    def complete(self) -> bool:
        return (self.folder / "done.json").exists()

    def missing(self) -> list[int]:
        """Indices of the shards not written yet."""
        return [k for k in range(self.num_shards) if not self.shard_path(k).exists()]

    @torch.no_grad()
    def build(self, dataset: Dataset, tokenizer: torch.nn.Module, device: str | torch.device = "cpu",
              batch_size: int = 256, num_workers: int = 0, progress: bool = True, desc: str = "tokens") -> int:
        """Encode the samples of the missing shards and write each shard as soon as it is full.

        Returns:
            The number of samples encoded (0 when the cache was complete).
        """
        todo = self.missing()
        if not todo:
            self._finish()
            return 0
        device = torch.device(device)
        tokenizer = tokenizer.to(device).eval()
        vocab = int(getattr(tokenizer, "vocab_size", 1 << 31))
        dtype = torch.int16 if vocab <= 1 << 15 else torch.int32
        indices = [i for k in todo for i in self.shard_range(k)]
        loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            collate_fn=collate_dict, pin_memory=device.type == "cuda")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(indices), desc=f"{desc} ({len(todo)}/{self.num_shards} shards to encode)",
                       unit="img", file=sys.stderr, dynamic_ncols=True)
        pending: list[torch.Tensor] = []  # encoded grids not yet written, in order
        have, shard_iter = 0, iter(todo)
        k = next(shard_iter)
        for batch in loader:
            codes = tokenizer.encode(image_to_float(batch["image"].to(device, non_blocking=True))).to("cpu", dtype)
            pending.append(codes)
            have += len(codes)
            while k is not None and have >= len(self.shard_range(k)):
                n = len(self.shard_range(k))
                buf = torch.cat(pending)
                _write_shard(self.shard_path(k), buf[:n])
                pending, have = [buf[n:]], have - n
                k = next(shard_iter, None)
            if bar is not None:
                bar.update(len(codes))
        if bar is not None:
            bar.close()
        self._finish()
        return len(indices)

    def _finish(self) -> None:
        atomic_write_text(self.folder / "done.json", json.dumps({"length": self.length, "shards": self.num_shards}))

    def load(self) -> torch.Tensor:
        """All grids ``(length, h, w)`` (compact integer dtype) from the complete cache."""
        tokens = torch.cat([torch.load(self.shard_path(k), weights_only=True) for k in range(self.num_shards)])
        if len(tokens) != self.length:
            raise ValueError(f"{self.folder}: token cache holds {len(tokens)} grids, expected {self.length}")
        return tokens


class GenerationDataModule(BaseDataModule):
    """Base of the generation datamodules: optional token caching with a trained ``TokenizerTask``.

    When ``tokenizer_ckpt`` is set, every split is encoded once (see the module docstring: sharded,
    resumable, keyed by the checkpoint's bytes and the image size, built in ``prepare_data`` on the
    accelerator) and samples carry ``tokens``.

    Args:
        tokenizer_ckpt: ``TokenizerTask`` checkpoint, or None (images only; the AR task tokenizes pixels).
        cache_dir: folder of the token caches.
        cache_batch_size: images per tokenizer call while caching.
        cache_shard_size: token grids per cache shard (the unit of resumption).
    """

    uint8_image_keys = ("image",)  # ImageFolder hands over uint8 images

    def __init__(self, tokenizer_ckpt: str | None = None, cache_dir: str = "runs/token_cache",
                 cache_batch_size: int = 256, cache_shard_size: int = 8192, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cache_batch_size < 1 or cache_shard_size < 1:
            raise ValueError("data.init_args.cache_batch_size / cache_shard_size: expected >= 1, got "
                             f"{cache_batch_size} / {cache_shard_size}")
        self.tokenizer_ckpt, self.cache_dir = tokenizer_ckpt, cache_dir
        self.cache_batch_size, self.cache_shard_size = cache_batch_size, cache_shard_size

    def cache_key(self) -> str:
        """Identifies the dataset content (override to add the arguments that change the images)."""
        return type(self).__name__

    def prepare_data(self) -> None:
        """Build the token caches (Lightning calls this on one process per node before any ``setup``).

        A missing checkpoint is left to the task (``AutoregressiveGenerationTask`` trains it in its own
        ``prepare_data`` and then calls this again); when nobody makes it, ``setup`` reports it.
        """
        if self.tokenizer_ckpt and Path(self.tokenizer_ckpt).expanduser().exists():
            self.setup("fit")
            self.attach_tokens()

    def train_images(self) -> Dataset:
        """The training split without tokens (set up without the token cache when it is not set up yet), e.g.
        to train the tokenizer the cache needs."""
        if self.train_dataset is None:
            ckpt, self.tokenizer_ckpt = self.tokenizer_ckpt, None
            try:
                self.setup("fit")
            finally:
                self.tokenizer_ckpt = ckpt
        ds = self.train_dataset
        return ds.base if isinstance(ds, TokenCachedDataset) else ds

    def _cache_device(self) -> torch.device:
        trainer = self.trainer
        if trainer is not None:
            try:
                return trainer.strategy.root_device
            except (AttributeError, RuntimeError):
                pass
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def token_caches(self) -> dict[str, TokenCache]:
        """The cache of every split that exists (``setup`` must have built the splits)."""
        ckpt = self.check_path(self.tokenizer_ckpt, "data.init_args.tokenizer_ckpt")
        digest = file_sha1(ckpt)
        out = {}
        for split in ("train", "val", "test"):
            ds = getattr(self, f"{split}_dataset")
            if ds is None:
                continue
            ds = ds.base if isinstance(ds, TokenCachedDataset) else ds
            key = f"{digest}|{self.cache_key()}|{split}|{len(ds)}|{dataset_fingerprint(ds)}|{self.cache_shard_size}"
            tag = hashlib.sha1(key.encode()).hexdigest()[:16]
            out[split] = TokenCache(Path(self.cache_dir) / f"{type(self).__name__}_{split}_{tag}", len(ds),
                                    self.cache_shard_size)
        return out

    def attach_tokens(self) -> None:
        """Wrap the splits with their cached token grids, encoding the missing shards first."""
        if not self.tokenizer_ckpt:
            return
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.fast_dev_run and not Path(self.tokenizer_ckpt).expanduser().exists():
            return  # images only: under fast_dev_run the task tokenizes them with a throw-away tokenizer
        from visionkit.tasks.generation.tokenization import load_tokenizer

        tokenizer = None
        done: dict[int, TokenCachedDataset] = {}  # a split that is another split (test = val) is read once
        for split, cache in self.token_caches().items():
            ds = getattr(self, f"{split}_dataset")
            if isinstance(ds, TokenCachedDataset):
                continue
            if id(ds) in done:
                setattr(self, f"{split}_dataset", done[id(ds)])
                continue
            if not cache.complete():
                tokenizer = tokenizer or load_tokenizer(self.tokenizer_ckpt, key="data.init_args.tokenizer_ckpt")
                cache.build(ds, tokenizer, self._cache_device(), self.cache_batch_size, self.num_workers,
                            desc=f"caching {split} tokens")
            wrapped = TokenCachedDataset(ds, cache.load())
            done[id(ds)] = wrapped
            setattr(self, f"{split}_dataset", wrapped)
