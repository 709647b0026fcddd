"""``SyntheticShapes``: seeded class-conditional coloured shapes (class = shape x colour) at 16 or 32 px."""

from __future__ import annotations

from typing import Any

import torch

from visionkit.datamodules.generation.digits import TensorImageDataset
from visionkit.datamodules.generation.tokens import GenerationDataModule

__all__ = ["SHAPES", "COLOURS", "SyntheticShapes", "render_shapes"]

SHAPES = ("square", "circle", "triangle", "cross")
COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0),
           "magenta": (1.0, 0.0, 1.0), "cyan": (0.0, 1.0, 1.0), "white": (1.0, 1.0, 1.0)}


def shape_masks(kind: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor, size: int) -> torch.Tensor:
    """Binary masks ``(n, size, size)`` of shapes ``kind (n,)`` (index into :data:`SHAPES`) at centre
    ``(cx, cy)`` and half-extent ``r`` (pixels; pixel ``(y, x)`` has centre ``(x + 0.5, y + 0.5)``)."""
    c = torch.arange(size, dtype=torch.float32) + 0.5
    dx = c.view(1, 1, -1) - cx.view(-1, 1, 1)  # (n, 1, W)
    dy = c.view(1, -1, 1) - cy.view(-1, 1, 1)  # (n, H, 1)
    r = r.view(-1, 1, 1)
    ax, ay = dx.abs(), dy.abs()
    square = (ax <= r) & (ay <= r)
    circle = dx**2 + dy**2 <= r**2
    triangle = (ay <= r) & (ax <= (dy + r) / 2)  # apex up, base of width 2r at the bottom
    cross = ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r))
    masks = torch.stack([m.expand(-1, size, size) for m in (square, circle, triangle, cross)], 1)  # (n, 4, H, W)
    return masks.gather(1, kind.view(-1, 1, 1, 1).expand(-1, 1, size, size)).squeeze(1)


def render_shapes(labels: torch.Tensor, size: int, colours: list[str], generator: torch.Generator) -> torch.Tensor:
    """Render one random shape per label (``label = shape * len(colours) + colour``) -> ``(n, 3, size, size)``."""
    n = labels.numel()
    kind, col = labels // len(colours), labels % len(colours)
    r = (0.2 + 0.15 * torch.rand(n, generator=generator)) * size
    cx = r + torch.rand(n, generator=generator) * (size - 2 * r)
    cy = r + torch.rand(n, generator=generator) * (size - 2 * r)
    mask = shape_masks(kind, cx, cy, r, size).float()  # (n, H, W)
    rgb = torch.tensor([COLOURS[c] for c in colours])[col]  # (n, 3)
    return mask.unsqueeze(1) * rgb.view(n, 3, 1, 1)


class SyntheticShapes(GenerationDataModule):
    """Coloured shapes on black: class ``k = shape * len(colours) + colour``; random position and size.

    Every split is drawn from its own seed, with labels balanced over the classes; the same arguments always
    give the same images.

    Args:
        image_size: 16 or 32.
        colours: colour names (keys of :data:`COLOURS`); classes = ``4 * len(colours)``.
        num_train, num_val, num_test: split sizes.
        data_seed: seed of the images.
        **kwargs: ``tokenizer_ckpt``, ``cache_dir`` and the ``BaseDataModule`` arguments.
    """

    def __init__(self, image_size: int = 16, colours: tuple[str, ...] = ("red", "green", "blue"),
                 num_train: int = 4800, num_val: int = 480, num_test: int = 960, data_seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if image_size not in (16, 32):
            raise ValueError(f"data.init_args.image_size: expected 16 or 32, got {image_size}")
        bad = [c for c in colours if c not in COLOURS]
        if bad:
            raise ValueError(f"data.init_args.colours: unknown colours {bad}; known: {sorted(COLOURS)}")
        self.image_size, self.colours = image_size, list(colours)
        self.sizes = (num_train, num_val, num_test)
        self.data_seed = data_seed
        self.num_classes = len(SHAPES) * len(self.colours)

    def cache_key(self) -> str:
        return f"shapes|{self.image_size}|{self.colours}|{self.sizes}|{self.data_seed}"

    def make_split(self, n: int, split: int) -> TensorImageDataset:
        g = torch.Generator().manual_seed(self.data_seed * 1000 + split)
        labels = torch.arange(n) % self.num_classes
        labels = labels[torch.randperm(n, generator=g)]
        return TensorImageDataset(render_shapes(labels, self.image_size, self.colours, g), labels)

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        self.train_dataset, self.val_dataset, self.test_dataset = (
            self.make_split(n, k) for k, n in enumerate(self.sizes))
        self.attach_tokens()
