"""``HandReconstructionTask``: two-hand 3D reconstruction with DIR (Lightning side: losses, metrics, optimiser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MetricCollection

from visionkit.tasks.base import BaseTask
from visionkit.tasks.hands.dir import DIRNet, to_camera
from visionkit.tasks.hands.kinematics import BONES, ROOT, root_relative
from visionkit.tasks.hands.metrics import MPJPE, MPVPE, MRRPE, PAMPJPE
from visionkit.tasks.hands.procedural import ProceduralHandLayer

_CHILD = [c for c, _ in BONES] + [c + 21 for c, _ in BONES]
_PARENT = [p for _, p in BONES] + [p + 21 for _, p in BONES]


def bone_lengths(joints: Tensor) -> Tensor:
    """Lengths ``(B, 40)`` of the 40 bones of a two-hand joint array ``(B, 42, 3)``."""
    return (joints[:, _CHILD] - joints[:, _PARENT]).norm(dim=-1)


class HandReconstructionTask(BaseTask):
    """Reconstruct two interacting hands (3D joints, meshes with MANO) from one RGB image with DIR.

    Batch keys: ``image (B, 3, H, W)``, ``joints3d (B, 42, 3)`` camera-space mm, ``joints2d (B, 42, 2)`` pixels,
    ``K (B, 3, 3)``, ``joint_valid (B, 42)``; optional ``mano_pose (B, 2, 48)``, ``mano_shape (B, 2, 10)``,
    ``mano_valid (B, 2)`` and ``cam_R (B, 3, 3)`` (world-to-camera rotation of the MANO fits) for the vertex
    loss and MPVPE with ``hand_model="mano"``.

    ``task(batch)`` returns ``joints3d (B, 42, 3)`` camera-space mm (right root from the weak-perspective
    camera and K, left root = right root + predicted offset), ``joints2d (B, 42, 2)`` pixels, ``iterations``
    (list of ``(B, 42, 3)``: the initial estimate then each refinement) and, with MANO, ``vertices
    (B, 1556, 3)`` (right 0-777, left 778-1555) camera-space mm.

    Args:
        hand_model: ``"procedural"`` (no files needed) or ``"mano"``.
        mano_dir: folder holding ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` (``hand_model="mano"``).
        fix_left_shapedirs: apply the left-model ``shapedirs[:, 0, :] *= -1`` fix.
        backbone, backbone_kwargs, dim, num_iterations, refine_strides, heads, bone_channels, splat_radius,
            hidden, patch, keypoint_stride, local_window, detach_iterations, refine_noise: see
            :class:`~visionkit.tasks.hands.dir.DIRNet`.
        w_joints3d, w_joints2d, w_vertices, w_bones, w_offset: loss weights (Huber losses on root-relative
            joints in cm, 2D joints in units of 4 px, root-relative vertices in cm, bone lengths in cm and the
            right-to-left root offset in cm), each a weighted mean over the estimates.
        w_keypoints: weight of the joint-heatmap loss (``keypoint_stride``): cross-entropy of each heatmap's
            softmax against a Gaussian of ``keypoint_sigma`` map cells at the true 2D joint, plus a Huber loss
            on the soft-argmax keypoints in units of 4 px; joints outside the image are left out.
        keypoint_sigma: width of the heatmap targets in map cells.
        iteration_weights: weight of each estimate in that mean (initial estimate first, then every
            iteration; normalised to sum 1), equal weights if None. Weighing later iterations more makes the
            shared features serve the refinement, whose output is the prediction.
        init_weights: checkpoint whose model weights initialise this task (a second training stage).
        freeze_initial: train only the refinement iterations: the backbone, pyramid and initial-estimate heads
            are frozen (and kept in eval mode).
        **kwargs: optimisation arguments of :class:`~visionkit.tasks.base.BaseTask`.
    """

    monitor = "val_MPJPE"
    monitor_mode = "min"

    def __init__(
        self,
        hand_model: Literal["procedural", "mano"] = "procedural",
        mano_dir: str | None = None,
        fix_left_shapedirs: bool = True,
        backbone: str = "simple_cnn",
        backbone_kwargs: dict[str, Any] | None = None,
        dim: int = 64,
        num_iterations: int = 2,
        refine_strides: tuple[int, ...] = (16, 8),
        heads: int = 4,
        bone_channels: int = 4,
        splat_radius: float = 1.5,
        hidden: int = 256,
        patch: int = 3,
        keypoint_stride: int | None = None,
        local_window: int = 0,
        detach_iterations: bool = True,
        refine_noise: float = 0.0,
        w_joints3d: float = 1.0,
        w_joints2d: float = 1.0,
        w_vertices: float = 1.0,
        w_bones: float = 1.0,
        w_offset: float = 0.5,
        w_keypoints: float = 1.0,
        keypoint_sigma: float = 1.0,
        iteration_weights: tuple[float, ...] | None = None,
        init_weights: str | None = None,
        freeze_initial: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        hp = self.hparams
        if hp.hand_model == "procedural":
            layers = [ProceduralHandLayer("right"), ProceduralHandLayer("left")]
        elif hp.hand_model == "mano":
            from visionkit.tasks.hands.mano import MANOLayer

            layers = [MANOLayer(hp.mano_dir, side="right"),
                      MANOLayer(hp.mano_dir, side="left", fix_left_shapedirs=hp.fix_left_shapedirs)]
        else:
            raise ValueError(f"model.init_args.hand_model: expected 'procedural' or 'mano', got {hp.hand_model!r}")
        self.model = DIRNet(layers, backbone=hp.backbone, backbone_kwargs=hp.backbone_kwargs, dim=hp.dim,
                            num_iterations=hp.num_iterations, refine_strides=hp.refine_strides, heads=hp.heads,
                            bone_channels=hp.bone_channels, splat_radius=hp.splat_radius, hidden=hp.hidden,
                            patch=hp.patch, keypoint_stride=hp.keypoint_stride,
                            local_window=hp.get("local_window", 0),
                            detach_iterations=hp.get("detach_iterations", True),
                            refine_noise=hp.get("refine_noise", 0.0))
        if hp.init_weights:
            from visionkit.io import load_torch  # tensors and plain values only: no code runs from the file

            if not Path(hp.init_weights).is_file():
                raise FileNotFoundError(
                    f"model.init_args.init_weights: {hp.init_weights} does not exist; it is the checkpoint of a "
                    "first training stage (e.g. `python -m visionkit fit --config configs/hands/synthetic.yaml` "
                    "writes runs/hands/synthetic/checkpoints/last.ckpt)")
            state = load_torch(hp.init_weights, map_location="cpu")
            state = state.get("state_dict", state)
            missing, unexpected = self.load_state_dict(state, strict=False)
            if [k for k in missing if k.startswith("model.")] or unexpected:
                raise ValueError(f"model.init_args.init_weights: {hp.init_weights} does not match this model "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if hp.freeze_initial:
            for m in self.frozen_modules():
                m.requires_grad_(False)

    def frozen_modules(self) -> list[torch.nn.Module]:
        """Modules that ``freeze_initial`` keeps fixed: backbone, pyramid, attention and initial heads."""
        if not self.hparams.freeze_initial:
            return []
        m = self.model
        return [m.backbone, m.lateral, m.smooth, m.attention, m.init_head, m.init_offset]

    def train(self, mode: bool = True) -> HandReconstructionTask:
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()  # frozen BatchNorm statistics
        return self

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # the trainer may restore sub-module modes after validation: keep the frozen part in eval mode
        for m in self.frozen_modules():
            m.eval()

    def make_metrics(self) -> MetricCollection:
        n = self.hparams.num_iterations + 1
        metrics: dict[str, Any] = {"MPJPE": MPJPE(), "PAMPJPE": PAMPJPE(), "MRRPE": MRRPE()}
        for k in range(n):
            metrics[f"MPJPE_it{k}"] = MPJPE(iteration=k)
            metrics[f"PAMPJPE_it{k}"] = PAMPJPE(iteration=k)
            metrics[f"MRRPE_it{k}"] = MRRPE(iteration=k)
        if self.hparams.hand_model == "mano":
            metrics["MPVPE"] = MPVPE()
        return MetricCollection(metrics, compute_groups=False)

    # ------------------------------------------------------------------ targets
    def target_vertices(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor] | None:
        """Root-relative camera-space target meshes ``(B, 2V, 3)`` mm and their validity ``(B, 2)``."""
        if self.hparams.hand_model != "mano" or "mano_pose" not in batch:
            return None
        pose, shape = batch["mano_pose"], batch["mano_shape"]
        verts = []
        for h, layer in enumerate(self.model.hand_layers):
            out = layer(pose[:, h, :3], pose[:, h, 3:], shape[:, h])
            v = out.vertices - out.joints[:, ROOT : ROOT + 1]
            if "cam_R" in batch:
                v = v @ batch["cam_R"].to(v).transpose(1, 2)
            verts.append(v)
        return torch.cat(verts, 1), batch["mano_valid"].to(pose)

    # ------------------------------------------------------------------ losses
    def compute_outputs(self, batch: dict[str, Any]) -> list[dict[str, Tensor]]:
        """DIR's estimate per stage (initial estimate, then each refinement iteration)."""
        return self.model(batch["image"])

    def compute_losses(self, outputs: list[dict[str, Tensor]], batch: dict[str, Any]) -> dict[str, Tensor]:
        hp = self.hparams
        image = batch["image"]
        H, W = image.shape[-2:]
        outs = outputs
        valid = batch["joint_valid"].to(image)
        gt = batch["joints3d"].to(image)
        gt_rel = root_relative(gt)
        root_ok = valid.reshape(-1, 2, 21)[:, :, ROOT]
        rel_valid = valid * root_ok.repeat_interleave(21, 1)
        gt_offset = gt[:, 21 + ROOT] - gt[:, ROOT]
        both = root_ok.prod(1)
        gt_bones = bone_lengths(gt_rel)
        bone_valid = rel_valid[:, _CHILD] * rel_valid[:, _PARENT]
        gt_2d = batch["joints2d"].to(image)
        verts = self.target_vertices(batch)

        def masked(err: Tensor, mask: Tensor) -> Tensor:
            return (err * mask).sum() / mask.sum().clamp_min(1)

        n = len(outs)
        weights = hp.iteration_weights if hp.iteration_weights is not None else [1.0] * n
        if len(weights) != n:
            raise ValueError(f"model.init_args.iteration_weights: expected {n} weights (initial estimate + "
                             f"{n - 1} iterations), got {len(weights)}")
        total = float(sum(weights))
        terms: dict[str, Any] = {"joints3d": 0.0, "joints2d": 0.0, "bones": 0.0, "offset": 0.0, "vertices": 0.0}
        for wk, out in zip(weights, outs):
            wk = wk / total
            terms["joints3d"] += wk * masked(F.huber_loss(out["rel"] / 10, gt_rel / 10, reduction="none").sum(-1),
                                        rel_valid)
            uv = out["uv"]
            px = (uv + 1) * uv.new_tensor([W, H]) / 2
            terms["joints2d"] += wk * masked(F.huber_loss(px / 4, gt_2d / 4, reduction="none").sum(-1), valid)
            terms["bones"] += wk * masked(F.huber_loss(bone_lengths(out["rel"]) / 10, gt_bones / 10, reduction="none"),
                                     bone_valid)
            terms["offset"] += wk * masked(F.huber_loss(out["offset"] / 10, gt_offset / 10, reduction="none").sum(-1),
                                      both)
            if verts is not None and "vertices" in out:
                tv, vv = verts
                err = F.huber_loss(out["vertices"] / 10, tv / 10, reduction="none").sum(-1)  # (B, 2V)
                terms["vertices"] += wk * masked(err, vv.repeat_interleave(err.shape[1] // 2, 1))
        if "heatmaps" in outs[0]:
            terms["keypoints"] = self.keypoint_loss(outs[0]["heatmaps"], outs[0]["keypoints"], gt_2d, valid, H, W)
        losses = {k: torch.as_tensor(v, dtype=image.dtype, device=image.device) for k, v in terms.items()}
        losses["loss"] = (hp.w_joints3d * losses["joints3d"] + hp.w_joints2d * losses["joints2d"]
                          + hp.w_bones * losses["bones"] + hp.w_offset * losses["offset"]
                          + hp.w_vertices * losses["vertices"])
        if "keypoints" in losses:
            losses["loss"] = losses["loss"] + hp.w_keypoints * losses["keypoints"]
        return losses

    def keypoint_loss(self, heatmaps: Tensor, keypoints: Tensor, gt_2d: Tensor, valid: Tensor, H: int, W: int
                      ) -> Tensor:
        """Heatmap cross-entropy against Gaussian targets + soft-argmax Huber loss (see ``w_keypoints``).

        Args:
            heatmaps: ``(B, 42, h, w)`` logits; keypoints ``(B, 42, 2)`` normalised soft-argmax positions;
            gt_2d: ``(B, 42, 2)`` true joints in image pixels; valid ``(B, 42)``; H, W: image size.
        """
        h, w = heatmaps.shape[-2:]
        cell = gt_2d * gt_2d.new_tensor([w / W, h / H])  # (B, 42, 2) in map cells
        inside = valid * ((cell >= 0) & (cell < cell.new_tensor([w, h]))).all(-1)
        xs = torch.arange(w, device=cell.device, dtype=cell.dtype) + 0.5
        ys = torch.arange(h, device=cell.device, dtype=cell.dtype) + 0.5
        gx = torch.exp(-((xs - cell[..., :1]) ** 2) / (2 * self.hparams.keypoint_sigma**2))  # (B, 42, w)
        gy = torch.exp(-((ys - cell[..., 1:]) ** 2) / (2 * self.hparams.keypoint_sigma**2))  # (B, 42, h)
        target = (gy[..., :, None] * gx[..., None, :]).flatten(2)
        target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
        ce = -(target * heatmaps.flatten(2).log_softmax(-1)).sum(-1)  # (B, 42)
        px = (keypoints + 1) * keypoints.new_tensor([W, H]) / 2
        coord = F.huber_loss(px / 4, gt_2d / 4, reduction="none").sum(-1)
        return ((ce + coord) * inside).sum() / inside.sum().clamp_min(1)

    # ------------------------------------------------------------------ inference
    def postprocess(self, outputs: list[dict[str, Tensor]], batch: dict[str, Any]) -> dict[str, Any]:
        """Camera-space ``joints3d (B, 42, 3)`` mm, ``joints2d``, every stage's (``iterations``) and, with MANO,
        ``vertices``."""
        image = batch["image"]
        H, W = image.shape[-2:]
        K = batch["K"].to(image)
        outs = outputs
        cams = [to_camera(o["rel"], o["uv"], o["offset"], o["params"], K, (H, W)) for o in outs]
        preds: dict[str, Any] = {"joints3d": cams[-1][0], "joints2d": cams[-1][1],
                                 "iterations": [c[0] for c in cams], "iterations2d": [c[1] for c in cams]}
        if "vertices" in outs[-1]:
            j = cams[-1][0].reshape(-1, 2, 21, 3)[:, :, ROOT]  # (B, 2, 3) camera-space wrists
            V = outs[-1]["vertices"].shape[1] // 2
            preds["vertices"] = outs[-1]["vertices"] + j.repeat_interleave(V, 1)
        return preds

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        target, valid = batch["joints3d"], batch["joint_valid"]
        verts = self.target_vertices(batch) if "vertices" in preds else None
        for m in metrics.values():
            if isinstance(m, MPVPE):
                if verts is not None:
                    tv = verts[0] + root_hands(target).repeat_interleave(verts[0].shape[1] // 2, 1)
                    m.update(preds["vertices"], tv, preds["joints3d"], target, verts[1])
            else:
                m.update(preds["joints3d"], target, valid, preds["iterations"])


def root_hands(joints: Tensor) -> Tensor:
    """Wrists ``(B, 2, 3)`` of a two-hand joint array ``(B, 42, 3)``."""
    return joints.reshape(-1, 2, 21, 3)[:, :, ROOT]
