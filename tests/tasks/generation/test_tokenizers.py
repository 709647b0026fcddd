"""Tokenizers: the pixel quantizer's exact round trip and the vector quantizer's mechanics."""

import torch

from visionkit.tasks.generation.tokenizers import VQVAE, PixelQuantizer, VectorQuantizer


def test_pixel_quantizer_round_trip_exact():
    q = PixelQuantizer(17, 1)
    img = torch.randint(0, 17, (4, 1, 8, 8)).float() / 16
    tok = q.encode(img)
    assert tok.shape == (4, 8, 8) and tok.dtype == torch.long and int(tok.max()) < q.vocab_size
    assert torch.equal(q.decode(tok), img)


def test_pixel_quantizer_rgb_and_volume():
    q = PixelQuantizer(4, 3)
    img = torch.randint(0, 4, (2, 3, 5, 6)).float() / 3
    tok = q.encode(img)
    assert q.vocab_size == 64 and tok.shape == (2, 5, 6)
    assert torch.equal(q.decode(tok), img)
    # independent reference of the packing
    ref = (img[:, 0] * 3).round() + 4 * (img[:, 1] * 3).round() + 16 * (img[:, 2] * 3).round()
    assert torch.equal(tok, ref.long())
    vol = torch.randint(0, 2, (2, 1, 4, 4, 4)).float()
    assert torch.equal(PixelQuantizer(2, 1).decode(PixelQuantizer(2, 1).encode(vol)), vol)


def test_pixel_quantizer_rounds_to_nearest_level():
    q = PixelQuantizer(5, 1)
    img = torch.rand(3, 1, 6, 6)
    rec = q.decode(q.encode(img))
    assert (rec - img).abs().max() <= 0.125 + 1e-6


def test_vector_quantizer_nearest_cosine_and_straight_through():
    vq = VectorQuantizer(num_codes=8, code_dim=4).eval()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    q, codes, loss = vq(z)
    book = torch.nn.functional.normalize(vq.codebook, dim=-1)
    zn = torch.nn.functional.normalize(z.detach().permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
    ref = ((zn[:, None] - book[None]) ** 2).sum(-1).argmin(-1)  # nearest by Euclidean on the sphere
    assert torch.equal(codes.reshape(-1), ref)
    torch.testing.assert_close(q.detach().permute(0, 2, 3, 1).reshape(-1, 4), book[ref])
    e = book[ref].detach()
    ref_loss = 1.25 * ((e - zn) ** 2).mean()
    torch.testing.assert_close(loss, ref_loss)
    q.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # straight-through passes gradients to the encoder


def test_dead_code_restart():
    vq = VectorQuantizer(num_codes=16, code_dim=4, restart_threshold=0.5, ema_decay=0.0).train()
    with torch.no_grad():
        vq.codebook.data[:] = torch.tensor([1.0, 0, 0, 0])  # all codes identical: only code 0 is ever used
    old = vq.codebook.detach().clone()
    z = torch.randn(4, 4, 4, 4)
    vq(z)
    moved = (vq.codebook.detach() - old).abs().sum(1) > 0
    assert moved.sum() == 15  # every unused code was restarted at an encoder output


def test_vqvae_shapes():
    m = VQVAE(in_channels=3, hidden=16, downsample=4, num_codes=32, code_dim=8).eval()
    x = torch.rand(2, 3, 16, 16)
    rec, codes, loss = m(x)
    assert rec.shape == x.shape and codes.shape == (2, 4, 4) and loss.ndim == 0
    assert torch.allclose(m.decode(m.encode(x)), rec.clamp(0, 1), atol=1e-6)
