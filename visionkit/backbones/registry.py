"""The backbone registry and its timm fallback."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a backbone factory (class or function) under ``name``.

    Example:
        >>> @register_backbone("my_cnn")
        ... class MyCNN(nn.Module): ...
    """

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES and BACKBONES[name] is not factory:
            raise ValueError(f"backbone {name!r} is already registered by {BACKBONES[name]!r}")
        BACKBONES[name] = factory
        return factory

    return wrap


def list_backbones() -> list[str]:
    """Names of the registered backbones (plugins included once loaded), sorted."""
    return sorted(BACKBONES)


class TimmBackbone(nn.Module):
    """A timm model in ``features_only`` mode, returning the chosen feature levels.

    Args:
        name: any timm model name.
        pretrained: load timm weights (needs network access; off by default).
        in_chans: input channels.
        out_indices: which feature levels to return (timm indices).
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        in_chans: int = 3,
        out_indices: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__()
        import timm

        extra = {} if out_indices is None else {"out_indices": tuple(out_indices)}
        self.model = timm.create_model(
            name, features_only=True, pretrained=pretrained, in_chans=in_chans, **extra, **kwargs
        )
        self.out_channels = list(self.model.feature_info.channels())
        self.strides = list(self.model.feature_info.reduction())
        # the input statistics the model was trained with (pretrained_cfg), for InputNormalization
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        self.mean, self.std = cfg.get("mean"), cfg.get("std")
        if self.mean is not None and len(self.mean) != in_chans:  # e.g. one-channel input: the mean statistic
            self.mean = (sum(self.mean) / len(self.mean),) * in_chans
            self.std = (sum(self.std) / len(self.std),) * in_chans

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x))


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build a registered backbone, or a timm model (``features_only``) for other names.

    Args:
        name: registry name or timm model name.
        **kwargs: passed to the factory (``pretrained`` defaults to False for timm models).

    Raises:
        ValueError: ``name`` is neither registered nor a timm model.
    """
    from visionkit.plugins import load_plugins

    load_plugins()
    if name in BACKBONES:
        return BACKBONES[name](**kwargs)
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"unknown backbone {name!r}: not registered ({', '.join(list_backbones())}) and not a timm model"
        )
    kwargs.setdefault("pretrained", False)
    return TimmBackbone(name, **kwargs)
