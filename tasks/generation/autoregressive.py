"""``AutoregressiveGenerationTask``: class-conditional token-grid generation, raster or neighboring order."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection

from visionkit.errors import CheckpointError, DatasetNotFoundError
from visionkit.tasks.base import BaseTask
from visionkit.tasks.generation.judge import JudgeClassifier, load_judge, save_judge, train_judge
from visionkit.tasks.generation.metrics import JudgeAccuracy, TokenNLL, judge_fid, judge_kid
from visionkit.tasks.generation.ordering import Ordering
from visionkit.tasks.generation.tokenization import (
    SHAPES_TOKENIZER_ARGS,
    TOKENIZER_ARCH_KEYS,
    load_tokenizer,
    save_tokenizer,
    tokenizer_config,
    train_tokenizer,
)
from visionkit.tasks.generation.tokenizers import VQVAE, PixelQuantizer
from visionkit.tasks.generation.transformer import ARTransformer

__all__ = ["AutoregressiveGenerationTask"]

#: steps of the throw-away tokenizer trained under ``fast_dev_run`` when ``tokenizer_ckpt`` is missing
FAST_DEV_RUN_TOKENIZER_STEPS = 5


class AutoregressiveGenerationTask(BaseTask):
    """Class-conditional autoregressive generation of token grids with a raster or NAR ordering.

    Training: tokens come from ``batch["tokens"]`` (cached VQ codes) or from the tokenizer applied to
    ``batch["image"]``; labels are replaced by the null label with probability ``label_dropout``; one
    cross-entropy over the mean-of-predictors logits of all tokens.

    Inference (the task contract): :meth:`generate` ``(labels) -> {"tokens", "image"}``; ``task(batch)``
    generates one sample per ``batch["label"]`` and also returns teacher-forced ``logits`` for the real tokens.

    Metrics (val/test): ``token`` NLL and bits per token; with a judge: ``judge_accuracy``, ``fid`` and ``kid``
    (in the judge's features, ``samples_per_image`` samples per real image vs the split's real images).

    Args:
        ordering: ``"raster"`` or ``"nar"``.
        image_size: image (or volume) size ``(H, W)`` / ``(D, H, W)``.
        in_channels: image channels.
        num_classes: class labels.
        tokenizer: ``"pixel"`` (:class:`PixelQuantizer`) or ``"vq"`` (a trained ``TokenizerTask`` checkpoint).
        levels: pixel-quantizer levels per channel.
        tokenizer_ckpt: ``TokenizerTask`` checkpoint (``tokenizer="vq"``). When the file is missing, ``fit``
            trains a VQ-VAE of architecture ``tokenizer_args`` on the datamodule's training images in
            ``prepare_data`` (``tokenizer_steps`` steps, the shapes_vqvae.yaml recipe), saves it there and uses
            it (the datamodule's token cache, when its ``tokenizer_ckpt`` is the same file, is built from it).
            Under ``fast_dev_run`` only a few steps are trained and the result is written next to it
            (``<tokenizer_ckpt>.fast_dev_run``), never to it. ``validate`` / ``test`` / ``predict`` never train
            one: a new tokenizer gives other tokens than the transformer was trained on (one-line error).
        tokenizer_args: VQ-VAE architecture (keys ``hidden``, ``downsample``, ``num_codes``, ``code_dim``,
            ``beta``; ``in_channels`` is the task's). The transformer's vocabulary and token grid follow from
            it before any tokenizer exists. An existing ``tokenizer_ckpt`` must match every key given here (one
            line naming the key that differs otherwise); None: shapes_vqvae.yaml's architecture for a tokenizer
            trained here, and whatever architecture an existing file has.
        tokenizer_steps: optimiser steps of a tokenizer trained because ``tokenizer_ckpt`` is missing (0: never
            train; a missing file is then an error).
        dim, depth, heads, mlp_ratio, dropout: transformer size.
        label_dropout: probability of training with the null label (classifier-free guidance).
        cfg_scale, cfg_interval, temperature, top_k, top_p: sampling used by ``task(batch)`` and the metrics.
        judge_path: saved judge (``JudgeTask``) for judge accuracy / FID / KID; None disables them. When the
            file is missing, ``prepare_data`` trains one on the datamodule's training split (``judge_steps``
            steps, the judge configs' recipe) and saves it there; with ``judge_steps: 0``, or under
            ``fast_dev_run``, the run goes on without these three metrics (one warning line).
        judge_steps: optimiser steps of a judge trained because ``judge_path`` is missing (0: never train).
        kid_subset_size: KID subset size (reduced automatically for small splits).
        samples_per_image: class-conditional samples generated per real image of the val/test split for judge
            accuracy, FID and KID (FID on a few hundred samples is noisy; 10 per image makes the sample side
            of the estimate 10x larger at no training cost).
    """

    monitor = "val_loss"
    monitor_mode = "min"

    def __init__(
        self,
        ordering: Literal["nar", "raster"] = "nar",
        image_size: tuple[int, ...] = (8, 8),
        in_channels: int = 1,
        num_classes: int = 10,
        tokenizer: Literal["pixel", "vq"] = "pixel",
        levels: int = 17,
        tokenizer_ckpt: str | None = None,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        label_dropout: float = 0.1,
        cfg_scale: float = 1.0,
        cfg_interval: tuple[float, float] = (0.0, 1.0),
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        judge_path: str | None = None,
        kid_subset_size: int = 100,
        samples_per_image: int = 1,
        judge_steps: int = 600,
        tokenizer_args: dict[str, Any] | None = None,
        tokenizer_steps: int = 1125,
        **kwargs: Any,
    ) -> None:
        if samples_per_image < 1:
            raise ValueError(f"model.init_args.samples_per_image: expected >= 1, got {samples_per_image}")
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ build
    def configure_models(self) -> None:
        hp = self.hparams
        if hp.tokenizer == "pixel":
            tok: nn.Module = PixelQuantizer(hp.levels, hp.in_channels)
        elif hp.tokenizer == "vq":
            if not hp.tokenizer_ckpt:
                raise ValueError("model.init_args.tokenizer_ckpt: required when tokenizer is 'vq'")
            path = Path(hp.tokenizer_ckpt)
            # a missing tokenizer is trained in prepare_data and loaded in setup; the transformer is built
            # now from the architecture it will have
            self._tokenizer_pending = not path.exists()
            if self._tokenizer_pending:
                tok = VQVAE(**self.tokenizer_arch())
                tok.eval()
                for q in tok.parameters():
                    q.requires_grad_(False)
            else:
                tok = load_tokenizer(path, key="model.init_args.tokenizer_ckpt")
                self._check_tokenizer(tok, path)
        else:
            raise ValueError(f"model.init_args.tokenizer: expected 'pixel' or 'vq', got {hp.tokenizer!r}")
        self.tokenizer = tok
        size = tuple(int(s) for s in hp.image_size)
        f = int(tok.downsample)
        if any(s % f for s in size):
            raise ValueError(f"model.init_args.image_size: {size} is not divisible by the tokenizer's stride {f}")
        self.ordering_ = Ordering(tuple(s // f for s in size), hp.ordering)
        self.model = ARTransformer(self.ordering_, tok.vocab_size, hp.num_classes, hp.dim, hp.depth, hp.heads,
                                   hp.mlp_ratio, hp.dropout)

    def tokenizer_arch(self) -> dict[str, Any]:
        """VQ-VAE architecture of ``tokenizer="vq"``: ``tokenizer_args`` over shapes_vqvae.yaml's, with the
        task's ``in_channels``."""
        hp = self.hparams
        given = dict(hp.tokenizer_args or {})
        bad = sorted(set(given) - set(TOKENIZER_ARCH_KEYS) | ({"in_channels"} & set(given)))
        if bad:
            raise ValueError(f"model.init_args.tokenizer_args: unknown keys {bad} (known: "
                             f"{[k for k in TOKENIZER_ARCH_KEYS if k != 'in_channels']}; in_channels is the task's)")
        arch = {**SHAPES_TOKENIZER_ARGS, **given, "in_channels": hp.in_channels}
        return {k: float(v) if k == "beta" else int(v) for k, v in arch.items()}

    def _check_tokenizer(self, tok: nn.Module, path: Path) -> None:
        """One-line error naming the first architecture key in which the tokenizer at ``path`` differs from
        the task's ``in_channels`` / ``tokenizer_args``."""
        hp = self.hparams
        have, want = tokenizer_config(tok), self.tokenizer_arch()
        keys = ["in_channels", *(hp.tokenizer_args or {})]
        for k in keys:
            if have[k] != want[k]:
                key = "model.init_args.in_channels" if k == "in_channels" else f"model.init_args.tokenizer_args.{k}"
                raise CheckpointError(f"{key}: the tokenizer {path} has {k}={have[k]}, the task expects {want[k]} "
                                      "(point tokenizer_ckpt at a matching tokenizer, or delete the file to train one)")

    def _fast_tokenizer_path(self) -> Path:
        path = Path(self.hparams.tokenizer_ckpt)
        return path.with_name(path.name + ".fast_dev_run")

    def make_metrics(self) -> MetricCollection:
        metrics: dict[str, Any] = {"token": TokenNLL()}
        path = self.hparams.judge_path
        # a missing judge is made in prepare_data (or skipped with a warning) and attached in setup
        self._judge_pending = bool(path) and not Path(path).exists()
        if path and not self._judge_pending:
            metrics.update(self._judge_metrics(load_judge(path)))
        return MetricCollection(metrics, compute_groups=False)

    def _judge_metrics(self, judge: JudgeClassifier) -> dict[str, Any]:
        return {"judge_accuracy": JudgeAccuracy(judge), "fid": judge_fid(judge),
                "kid": judge_kid(judge, subset_size=self.hparams.kid_subset_size)}

    def prepare_data(self) -> None:
        """Train and save a missing tokenizer (``fit`` only), then a missing judge (rank 0; the other ranks wait
        in Lightning)."""
        self._prepare_tokenizer()
        self._prepare_judge()

    def _prepare_tokenizer(self) -> None:
        hp = self.hparams
        trainer = self._trainer
        if not getattr(self, "_tokenizer_pending", False) or trainer is None or trainer.datamodule is None:
            return  # nothing to train, or setup says why it cannot
        path = Path(hp.tokenizer_ckpt)
        if path.exists() or trainer.state.fn != "fit" or hp.tokenizer_steps <= 0:
            return
        from visionkit.datamodules.generation.tokens import GenerationDataModule, TokenCachedDataset

        dm = trainer.datamodule
        fast = bool(trainer.fast_dev_run)
        steps = min(int(hp.tokenizer_steps), FAST_DEV_RUN_TOKENIZER_STEPS) if fast else int(hp.tokenizer_steps)
        target = self._fast_tokenizer_path() if fast else path
        if isinstance(dm, GenerationDataModule):
            images = dm.train_images()
        else:
            dm.setup("fit")
            images = dm.train_dataset
            images = images.base if isinstance(images, TokenCachedDataset) else images
        try:
            device = trainer.strategy.root_device
        except (AttributeError, RuntimeError):
            device = torch.device("cpu")
        what = (f"fast_dev_run: training a throw-away one ({steps} steps on {device}, saved to {target} only)" if fast
                else f"training it on the training images ({steps} steps on {device}), saved for later runs")
        print(f"tokenizer {path} missing: {what}", file=sys.stdout, flush=True)
        model = train_tokenizer(images, self.tokenizer_arch(), steps=steps, device=device)
        save_tokenizer(model, target)
        if not fast and isinstance(dm, GenerationDataModule) and dm.tokenizer_ckpt and Path(dm.tokenizer_ckpt) == path:
            dm.prepare_data()  # the token caches, from the new tokenizer, before any rank reads them

    def _setup_tokenizer(self, stage: str) -> None:
        hp = self.hparams
        path = Path(hp.tokenizer_ckpt)
        fast = self._trainer is not None and bool(self.trainer.fast_dev_run)
        src = path if path.exists() else self._fast_tokenizer_path() if fast else None
        if src is None or not src.exists():
            why = (f"{stage} does not train one (a new tokenizer gives other tokens than the transformer learnt; "
                   "point it at the tokenizer the model was trained with)" if stage != "fit"
                   else "tokenizer_steps is 0" if hp.tokenizer_steps <= 0
                   else "no datamodule to train it on" if self._trainer is None or self.trainer.datamodule is None
                   else "it was not trained")
            raise DatasetNotFoundError(f"model.init_args.tokenizer_ckpt: {path} does not exist ({why})")
        tok = load_tokenizer(src, key="model.init_args.tokenizer_ckpt")
        self._check_tokenizer(tok, src)
        self.tokenizer.load_state_dict(tok.state_dict())
        self.tokenizer.eval()
        self._tokenizer_pending = False

    def _require_tokenizer(self) -> None:
        """Refuse to use the untrained stand-in of a tokenizer that was never loaded (outside ``fit``)."""
        if getattr(self, "_tokenizer_pending", False):
            raise DatasetNotFoundError(f"model.init_args.tokenizer_ckpt: {self.hparams.tokenizer_ckpt} does not exist "
                                       "(fit trains it; anything else needs the tokenizer the model was trained with)")

    def _prepare_judge(self) -> None:
        hp = self.hparams
        trainer = self._trainer
        if not self._judge_pending or Path(hp.judge_path).exists() or hp.judge_steps <= 0 or trainer is None:
            return
        dm = trainer.datamodule
        if trainer.state.fn == "predict":
            return  # sampling needs no judge
        if trainer.fast_dev_run or dm is None:
            return  # setup() warns
        dm.setup("fit")
        try:
            device = trainer.strategy.root_device
        except (AttributeError, RuntimeError):
            device = torch.device("cpu")
        print(f"judge {hp.judge_path} missing: training it on the training split ({hp.judge_steps} steps on "
              f"{device}), saved for later runs", file=sys.stdout, flush=True)
        judge = train_judge(dm.train_dataset, hp.in_channels, hp.num_classes, spatial_dims=len(hp.image_size),
                            steps=hp.judge_steps, device=device)
        save_judge(judge, hp.judge_path)

    def setup(self, stage: str) -> None:
        if getattr(self, "_tokenizer_pending", False):
            self._setup_tokenizer(stage)
        if not self._judge_pending or stage == "predict":
            return
        self._judge_pending = False
        path = Path(self.hparams.judge_path)
        if not path.exists():
            if self._trainer is None or self.trainer.is_global_zero:
                why = ("judge_steps is 0" if self.hparams.judge_steps <= 0 else "not trained under fast_dev_run"
                       if self._trainer is not None and self.trainer.fast_dev_run else "no datamodule to train it on")
                print(f"warning: model.init_args.judge_path: {path} does not exist ({why}): judge_accuracy, fid "
                      "and kid are not computed", file=sys.stderr, flush=True)
            return
        judge = load_judge(path)
        for split in ("val", "test"):
            metrics = self.metrics_for(split)
            if metrics is not None:
                metrics.add_metrics(self._judge_metrics(copy.deepcopy(judge)))

    def state_dict(self, *args, **kwargs):
        # the frozen judge inside the metrics and the frozen tokenizer are loaded from their own files
        sd = super().state_dict(*args, **kwargs)
        return type(sd)((k, v) for k, v in sd.items() if "_metrics." not in k and not k.startswith("tokenizer."))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        def own(k: str) -> bool:
            return "_metrics." not in k and not k.startswith("tokenizer.")

        state_dict = {k: v for k, v in state_dict.items() if own(k)}
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if own(k)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"{type(self).__name__}: state dict does not match: missing {missing}, "
                               f"unexpected {result.unexpected_keys}")
        return result

    # ------------------------------------------------------------------ data
    def tokens_of(self, batch: dict[str, Any]) -> Tensor:
        """``(B, *grid)`` long tokens of a batch (cached ``tokens`` or the tokenizer applied to ``image``)."""
        if "tokens" in batch:
            return batch["tokens"].long()
        self._require_tokenizer()
        self.tokenizer.eval()
        with torch.no_grad():
            return self.tokenizer.encode(batch["image"])

    # ------------------------------------------------------------------ training
    def compute_outputs(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Teacher-forced ``logits (B, N, V)`` and the ``tokens (B, *grid)`` they predict (labels dropped at rate
        ``label_dropout`` in training, for classifier-free guidance)."""
        tokens = self.tokens_of(batch)
        labels = batch["label"].long()
        if self.training and self.hparams.label_dropout > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.hparams.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.model.null_label), labels)
        return {"logits": self.model(tokens, labels), "tokens": tokens}

    def compute_losses(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        logits = outputs["logits"]
        return {"loss": F.cross_entropy(logits.reshape(-1, logits.shape[-1]), outputs["tokens"].reshape(-1))}

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, labels: Tensor, cfg_scale: float | None = None, cfg_interval: tuple[float, float] | None = None,
                 temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None, decode: bool = True) -> dict[str, Tensor]:
        """Generate one sample per label (``ordering.num_groups`` passes); unset controls use the config's.

        Args:
            labels: ``(B,)`` long class ids.
            generator: random generator for reproducible samples.
            decode: also decode the tokens to images.

        Returns:
            ``{"tokens": (B, *grid) long, "image": (B, C, *S) in [0, 1]}`` (no ``image`` when not decoding).
        """
        hp = self.hparams
        was = self.training
        self.eval()
        tokens = self.model.generate(
            labels.to(self.device).long(),
            cfg_scale=hp.cfg_scale if cfg_scale is None else cfg_scale,
            cfg_interval=tuple(hp.cfg_interval if cfg_interval is None else cfg_interval),
            temperature=hp.temperature if temperature is None else temperature,
            top_k=hp.top_k if top_k is None else top_k,
            top_p=hp.top_p if top_p is None else top_p,
            generator=generator,
        )
        self.train(was)
        out = {"tokens": tokens}
        if decode:
            self._require_tokenizer()
            self.tokenizer.eval()
            out["image"] = self.tokenizer.decode(tokens).clamp(0, 1)
        return out

    def postprocess(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Any]:
        """One generated sample per label (``tokens``, ``image``), the ``label`` s and the teacher-forced
        ``logits`` of the batch's own tokens."""
        out = self.generate(batch["label"])
        out["label"] = batch["label"]
        out["logits"] = outputs["logits"]
        return out

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        metrics["token"].update(preds["logits"], self.tokens_of(batch))
        if "fid" in metrics:
            real = batch["image"] if "image" in batch else self.tokenizer.decode(self.tokens_of(batch))
            labels, fake = batch["label"], preds["image"]
            k = int(self.hparams.samples_per_image)
            if k > 1:  # (k - 1) more samples per real image, same labels
                more = self.generate(labels.repeat(k - 1))["image"]  # (B (k - 1), C, *S)
                labels, fake = labels.repeat(k), torch.cat([fake, more])
            metrics["judge_accuracy"].update(fake, labels)
            for name in ("fid", "kid"):
                metrics[name].update(real.float(), real=True)
                metrics[name].update(fake.float(), real=False)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        out = self.generate(batch["label"])
        out["label"] = batch["label"]
        return out
