"""Vectorised z-buffered rendering of shaded capsules under a pinhole camera (the synthetic hands' images)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def render_capsules(start: Tensor, end: Tensor, radius: Tensor, color: Tensor, K: Tensor, height: int,
                    width: int, light: tuple[float, float, float] = (-0.4, -0.5, -1.0),
                    ambient: float = 0.35) -> tuple[Tensor, Tensor, Tensor]:
    """Render capsules (segments swept by a sphere) with a per-pixel depth test.

    Each pixel tests every capsule in closed form: the pixel's closest point on the projected axis gives the
    axis depth (interpolated in inverse depth, exact for a pinhole), the projected radius ``f r / z`` and the
    sphere-swept surface depth ``z - r sqrt(1 - (d / r_px)^2)``; the nearest surface wins (z-buffer), so
    capsules occlude each other. Shading is Lambertian with an ambient term.

    Args:
        start, end: ``(N, C, 3)`` capsule axis end points in camera space (mm, z forward, y down).
        radius: ``(N, C)`` radii in mm.
        color: ``(N, C, 3)`` albedo in [0, 1].
        K: ``(N, 3, 3)`` pinhole intrinsics (pixels).
        height, width: image size in pixels.
        light: direction from the surface towards the light (camera space).
        ambient: ambient light fraction.

    Returns:
        ``image (N, 3, H, W)`` in [0, 1] (black background), ``depth (N, H, W)`` in mm (``inf`` where empty)
        and ``index (N, H, W)`` of the visible capsule (-1 where empty).
    """
    N, C = radius.shape
    P = height * width
    f = K[:, 0, 0][:, None, None]  # (N, 1, 1)
    uvw_a, uvw_b = start @ K.transpose(1, 2), end @ K.transpose(1, 2)
    pa, pb = uvw_a[..., :2] / uvw_a[..., 2:], uvw_b[..., :2] / uvw_b[..., 2:]  # (N, C, 2)
    za, zb = start[..., 2], end[..., 2]
    # a capsule only covers the box around its projected end points grown by the projected radius, so every
    # capsule is tested on a square window of pixels; capsules are bucketed by window size to waste little
    grow = f[..., 0] * radius / torch.minimum(za, zb).clamp_min(1e-6)  # (N, C)
    lo = (torch.minimum(pa, pb) - grow[..., None]).floor()
    extent = (torch.maximum(pa, pb) + grow[..., None]).ceil() - lo + 1  # (N, C, 2)
    need = extent.amax(-1).amax(0).clamp(1, max(height, width))  # (C,) window side per capsule
    depth_buf = torch.full((N * P,), float("inf"), dtype=start.dtype, device=start.device)
    flat_all, surf_all, shade_all, cap_all = [], [], [], []
    lvec = F.normalize(torch.tensor(light, dtype=start.dtype, device=start.device), dim=0)
    sizes = torch.tensor([8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024], device=start.device)
    bucket = torch.bucketize(need, sizes)
    for b in bucket.unique().tolist():
        caps = (bucket == b).nonzero().squeeze(1)  # capsule indices in this bucket
        side = int(min(need[caps].max().item(), max(height, width)))
        off_v, off_u = torch.meshgrid(torch.arange(side, device=start.device),
                                      torch.arange(side, device=start.device), indexing="ij")
        offs = torch.stack([off_u, off_v], -1).reshape(1, 1, -1, 2).to(start.dtype)  # (1, 1, Q, 2)
        pix_i = lo[:, caps, None] + offs  # (N, c, Q, 2) integer pixel coordinates
        valid = (pix_i[..., 0] >= 0) & (pix_i[..., 0] < width) & (pix_i[..., 1] >= 0) & (pix_i[..., 1] < height)
        pix = pix_i + 0.5  # pixel centres
        a, bb = pa[:, caps, None], pb[:, caps, None]  # (N, c, 1, 2)
        ab = bb - a
        ap = pix - a
        t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)).clamp(0, 1)  # (N, c, Q)
        off = ap - t[..., None] * ab  # pixel minus the closest axis point
        inv_z = (1 - t) / za[:, caps, None] + t / zb[:, caps, None]
        r = radius[:, caps, None]
        r_px = f * r * inv_z
        q = (off * off).sum(-1) / (r_px * r_px)  # (d / r_px)^2
        hit = valid & (q < 1)
        cos = torch.sqrt((1 - q).clamp_min(0))
        surf = 1 / inv_z - r * cos
        # normal: in-plane offset / r_px and -cos towards the camera; Lambertian shading
        shade = ambient + (1 - ambient) * ((off / r_px[..., None]) @ lvec[:2] - cos * lvec[2]).clamp_min(0)
        img_idx = torch.arange(N, device=start.device)[:, None, None].expand_as(t)
        pu, pv = pix_i[..., 0].long().clamp(0, width - 1), pix_i[..., 1].long().clamp(0, height - 1)
        flat = img_idx * P + pv * width + pu
        flat, surf, shade = flat[hit], surf[hit], shade[hit]
        cap = caps[None, :, None].expand_as(t)[hit]
        depth_buf.scatter_reduce_(0, flat, surf, "amin")
        flat_all.append(flat)
        surf_all.append(surf)
        shade_all.append(shade)
        cap_all.append(cap)
    flat, surf, shade, cap = torch.cat(flat_all), torch.cat(surf_all), torch.cat(shade_all), torch.cat(cap_all)
    win = surf <= depth_buf[flat]  # the nearest surface at its pixel (z-buffer test)
    flat, shade, cap = flat[win], shade[win], cap[win]
    index = torch.full((N * P,), -1, dtype=torch.long, device=start.device)
    index[flat] = cap
    rgb = torch.zeros(N * P, 3, dtype=start.dtype, device=start.device)
    rgb[flat] = color[flat // P, cap] * shade[:, None]
    image = rgb.reshape(N, height, width, 3).permute(0, 3, 1, 2)
    return image, depth_buf.reshape(N, height, width), index.reshape(N, height, width)
