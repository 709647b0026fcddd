"""Token caching: a frozen VQ-VAE encodes every split once; AR training then reads the cached token grids."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from visionkit.datamodules.base import BaseDataModule, collate_dict
from visionkit.io import atomic_open

__all__ = ["GenerationDataModule", "TokenCachedDataset", "encode_dataset"]


class TokenCachedDataset(Dataset):
    """Adds ``tokens`` ``(h, w)`` long (pre-computed) to every sample of ``base``."""

    def __init__(self, base: Dataset, tokens: torch.Tensor) -> None:
        if len(base) != len(tokens):
            raise ValueError(f"token cache holds {len(tokens)} grids for a dataset of {len(base)} samples")
        self.base, self.tokens = base, tokens

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.base[i], "tokens": self.tokens[i]}


@torch.no_grad()
def encode_dataset(dataset: Dataset, tokenizer: torch.nn.Module, batch_size: int = 256) -> torch.Tensor:
    """Encode every ``image`` of ``dataset`` with ``tokenizer.encode`` -> ``(len, h, w)`` long (in order)."""
    out = [tokenizer.encode(b["image"]) for b in DataLoader(dataset, batch_size, collate_fn=collate_dict)]
    return torch.cat(out).long()


class GenerationDataModule(BaseDataModule):
    """Base of the generation datamodules: optional token caching with a trained ``TokenizerTask``.

    When ``tokenizer_ckpt`` is set, every split is encoded once after :meth:`setup` and stored in
    ``cache_dir`` under a name derived from the datamodule, split and checkpoint (path, size and time), so a
    retrained tokenizer invalidates the cache; samples then carry ``tokens``.

    Args:
        tokenizer_ckpt: ``TokenizerTask`` checkpoint, or None (images only; the AR task tokenizes pixels).
        cache_dir: folder of the cached token tensors.
    """

    def __init__(self, tokenizer_ckpt: str | None = None, cache_dir: str = "runs/token_cache", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenizer_ckpt, self.cache_dir = tokenizer_ckpt, cache_dir

    def cache_key(self) -> str:
        """Identifies the dataset content (override to add the arguments that change the images)."""
        return type(self).__name__

    def attach_tokens(self) -> None:
        """Wrap the splits with cached token grids (encoding them on the first use)."""
        if not self.tokenizer_ckpt:
            return
        from visionkit.tasks.generation.tokenizer_task import load_tokenizer

        ckpt = self.check_path(self.tokenizer_ckpt, "data.init_args.tokenizer_ckpt")
        st = ckpt.stat()
        tag = hashlib.sha1(f"{ckpt.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.cache_key()}".encode()).hexdigest()
        tokenizer = None
        for split in ("train", "val", "test"):
            ds = getattr(self, f"{split}_dataset")
            if ds is None or isinstance(ds, TokenCachedDataset):
                continue
            path = Path(self.cache_dir) / f"{type(self).__name__}_{split}_{tag[:12]}.pt"
            if path.exists():
                tokens = torch.load(path, weights_only=True)
            else:
                tokenizer = tokenizer or load_tokenizer(ckpt, key="data.init_args.tokenizer_ckpt")
                tokens = encode_dataset(ds, tokenizer)
                with atomic_open(path, "wb") as f:
                    torch.save(tokens, f)
            setattr(self, f"{split}_dataset", TokenCachedDataset(ds, tokens))
