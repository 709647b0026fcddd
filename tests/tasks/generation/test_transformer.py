"""The transformer: mean-of-predictors logits, no leakage, KV-cache generation = full masked forward, RoPE."""

import pytest
import torch

import visionkit.tasks.generation.transformer as tr
from visionkit.tasks.generation.ordering import Ordering
from visionkit.tasks.generation.transformer import ARTransformer, apply_rope, rope_angles, sample_logits


def _model(kind, shape, vocab=11, classes=3, seed=0):
    torch.manual_seed(seed)
    return ARTransformer(Ordering(shape, kind), vocab, classes, dim=32, depth=2, heads=2).eval()


def test_logits_are_mean_of_predictors():
    h, w = 3, 4
    m = _model("nar", (h, w))
    tokens = torch.randint(0, 11, (2, h, w))
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        x = torch.cat([m.cls_emb(labels)[:, None], m.tok_emb(tokens.view(2, -1))], 1)
        for blk in m.blocks:
            x = blk(x, m.rope_cos, m.rope_sin, m.mask)
        H = m.head_logits(0, x)
        V = m.head_logits(1, m.extra_blocks[0](x, m.rope_cos, m.rope_sin, m.mask))
        out = m(tokens, labels)
    s = lambda i, j: 1 + i * w + j  # noqa: E731
    for i in range(h):
        for j in range(w):
            if i == 0 and j == 0:
                ref = (H[:, 0] + V[:, 0]) / 2
            elif i == 0:
                ref = H[:, s(i, j - 1)]
            elif j == 0:
                ref = V[:, s(i - 1, j)]
            else:
                ref = (H[:, s(i, j - 1)] + V[:, s(i - 1, j)]) / 2
            torch.testing.assert_close(out[:, i * w + j], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind,shape", [("nar", (5, 5)), ("raster", (4, 4)), ("nar", (2, 3, 4))])
def test_no_leakage(kind, shape):
    m = _model(kind, shape)
    o = m.ordering
    dist = o.group.view(shape)  # i + j (+ t) for NAR, raster index for raster
    base = torch.randint(0, 11, (1, *shape))
    labels = torch.tensor([1])
    ref = m(base, labels)[0]  # (N, V)
    any_changed = False
    for d in range(1, o.num_groups):
        other = torch.where(dist >= d, (base + 1 + torch.randint(0, 10, base.shape)) % 11, base)
        out = m(other, labels)[0]
        keep = o.group <= d
        torch.testing.assert_close(out[keep], ref[keep], atol=1e-5, rtol=0)
        any_changed |= bool((out[~keep] - ref[~keep]).abs().max() > 1e-4) if (~keep).any() else False
    assert any_changed  # the check is sensitive: later targets do depend on the changed tokens


@pytest.mark.parametrize("kind,shape", [("nar", (4, 5)), ("raster", (3, 4)), ("nar", (2, 3, 3)), ("nar", (1, 3, 4))])
@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_kv_cache_generation_equals_full_masked_forward(kind, shape, cfg):
    m = _model(kind, shape)
    labels = torch.tensor([0, 2, 1])
    gen = torch.Generator().manual_seed(0)
    tokens, logits = m.generate(labels, cfg_scale=cfg, generator=gen, return_logits=True)
    with torch.no_grad():
        cond = m(tokens, labels)
        unc = m(tokens, torch.full_like(labels, 3))  # the null label
        full = cond if cfg == 1.0 else unc + cfg * (cond - unc)
    torch.testing.assert_close(logits, full, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kind,shape", [("nar", (6, 6)), ("raster", (4, 4)), ("nar", (2, 3, 4))])
def test_each_pass_decodes_exactly_the_next_group(kind, shape, monkeypatch):
    """Sampling returns the pass number: the generated grid then shows which pass decoded every token."""
    n = 1
    for s in shape:
        n *= s
    m = _model(kind, shape, vocab=max(n, 16))
    calls = []

    def fake_sample(logits, *args, **kwargs):
        calls.append(logits.shape[1])
        return torch.full(logits.shape[:-1], len(calls) - 1, dtype=torch.long)

    monkeypatch.setattr(tr, "sample_logits", fake_sample)
    grid = m.generate(torch.tensor([0, 1]))
    grids = torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij")
    if kind == "nar":
        expected = sum(grids)  # pass c decodes the tokens at Manhattan distance c
        assert len(calls) == sum(shape) - len(shape) + 1
    else:
        expected = torch.arange(n).view(shape)
        assert len(calls) == n
    assert torch.equal(grid[0], expected) and torch.equal(grid[1], expected)


def test_pass_count_by_forward_calls():
    for kind, n, passes in [("nar", 8, 15), ("raster", 8, 64)]:
        m = _model(kind, (n, n))
        count: list[int] = []
        h = m.blocks[0].register_forward_hook(lambda *a, c=count: c.append(1))
        m.generate(torch.tensor([0]))
        h.remove()
        assert len(count) == passes


def test_rope_is_relative_and_identity_at_origin():
    hd = 16
    coords = torch.tensor([[0, 0], [2, 3], [5, 1], [4, 6], [7, 4]])
    ang = rope_angles(coords, hd)
    assert torch.allclose(ang[0], torch.zeros(hd // 2))
    q, k = torch.randn(1, 1, 1, hd), torch.randn(1, 1, 1, hd)
    rot = lambda x, i: apply_rope(x, ang[i].cos(), ang[i].sin())  # noqa: E731
    # (2,3)-(0,0) == (7,4)-(5,1): equal offsets give equal scores
    s1 = (rot(q, 1) * rot(k, 0)).sum()
    s2 = (rot(q, 4) * rot(k, 2)).sum()
    torch.testing.assert_close(s1, s2, atol=1e-5, rtol=1e-5)
    s3 = (rot(q, 3) * rot(k, 0)).sum()
    assert (s1 - s3).abs() > 1e-4
    torch.testing.assert_close(rot(q, 1).norm(), q.norm())


def test_sample_logits_filters_and_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    assert sample_logits(logits, temperature=0).item() == 0
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert sample_logits(logits, top_k=1, generator=gen).item() == 0
        assert sample_logits(logits, top_p=0.1, generator=gen).item() == 0
        assert sample_logits(logits, top_k=2, generator=gen).item() in (0, 1)
    p = logits.softmax(-1)[0]
    # top-p = 0.8: keeps the smallest prefix of sorted tokens whose mass reaches 0.8
    keep = (p.cumsum(0) - p) < 0.8
    draws = sample_logits(logits.expand(20000, 4), top_p=0.8, generator=gen)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    ref = torch.where(keep, p, torch.zeros_like(p))
    ref = ref / ref.sum()
    assert torch.allclose(freq, ref, atol=0.015)
    draws = sample_logits(logits.expand(20000, 4), temperature=2.0, generator=gen)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, (logits[0] / 2).softmax(-1), atol=0.015)


def test_training_loss_drops():
    torch.manual_seed(0)
    m = ARTransformer(Ordering((4, 4), "nar"), 5, 2, dim=32, depth=2, heads=2)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    # class 0: vertical stripes, class 1: horizontal stripes
    j = torch.arange(4)
    pats = torch.stack([(j.view(1, 4) % 2).expand(4, 4), (j.view(4, 1) % 2).expand(4, 4)]) * 4
    labels = torch.randint(0, 2, (32,))
    x = pats[labels]
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(m(x, labels).reshape(-1, 5), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    m.eval()
    out = m.generate(torch.tensor([0, 1]), temperature=0)
    assert torch.equal(out, pats)


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
def test_extra_blocks_compute_only_the_rows_their_head_reads(shape):
    """Each extra block still caches keys/values of every fed token, but its query rows (attention output,
    MLP) are only the tokens whose neighbour along the head's axis exists: one grid slice fewer."""
    m = _model("nar", shape)
    o = m.ordering
    fed, computed = [], []
    hooks = [m.extra_blocks[a].norm1.register_forward_hook(lambda mod, i, out, a=a: fed.append((a, out.shape[1])))
             for a in range(len(m.extra_blocks))]
    hooks += [m.extra_blocks[a].mlp.register_forward_hook(lambda mod, i, out, a=a: computed.append((a, out.shape[1])))
              for a in range(len(m.extra_blocks))]
    m.generate(torch.tensor([0, 1]))
    for h in hooks:
        h.remove()
    for a in range(len(m.extra_blocks)):
        axis = o.coords.shape[1] - 2 - a  # head a + 1 reads one step back along this axis
        n_fed = sum(n for b, n in fed if b == a)
        n_rows = sum(n for b, n in computed if b == a)
        assert n_fed == o.seq_len - len(o.group_tokens[-1])  # keys/values: the prefix and every fed token
        # queries: the prefix (predicts the origin) and the tokens not on the last slice of the axis
        assert n_rows == 1 + int((o.coords[:, axis] < shape[axis] - 1).sum())


def test_sample_logits_never_draws_filtered_tokens_and_is_seeded():
    # the filtered ids are at both ends of the vocabulary (zero-width CDF intervals at the edges)
    logits = torch.tensor([[-1.0, 3.0, 2.5, 2.0, 0.0]]).expand(50000, 5)
    draws = sample_logits(logits, top_k=3, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    assert freq[0] == 0 and freq[4] == 0
    ref = torch.tensor([3.0, 2.5, 2.0]).softmax(-1)
    assert torch.allclose(freq[1:4], ref, atol=0.01)
    again = sample_logits(logits, top_k=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)
    # batch shape is kept
    assert sample_logits(torch.zeros(2, 3, 7)).shape == (2, 3)


@pytest.mark.parametrize("kind,shape", [("nar", (5, 4)), ("raster", (3, 3)), ("nar", (2, 2, 3))])
@pytest.mark.parametrize("cfg,kw", [(1.0, {}), (2.0, {"temperature": 0.7, "top_k": 5})])
def test_cached_decoding_samples_what_a_full_forward_decoder_samples(kind, shape, cfg, kw):
    """Reference decoder without any cache: before each pass, the full masked forward over the partial grid
    (later tokens still zero; they cannot leak) gives the next group's logits, sampled with the same generator.
    The cached decoder must draw exactly the same tokens."""
    m = _model(kind, shape, vocab=13)
    with torch.no_grad():
        for lin in m.head_linears:
            lin.weight.mul_(20)  # peaked, label-dependent distributions
    o = m.ordering
    labels = torch.tensor([0, 2, 1, 1])
    null = torch.full_like(labels, 3)
    got = m.generate(labels, cfg_scale=cfg, generator=torch.Generator().manual_seed(5), **kw)
    gen = torch.Generator().manual_seed(5)
    ref = torch.zeros(len(labels), o.num_tokens, dtype=torch.long)
    with torch.no_grad():
        for targets in o.group_tokens:
            grid = ref.view(len(labels), *shape)
            logits = m(grid, labels)[:, targets]
            if cfg != 1.0:
                unc = m(grid, null)[:, targets]
                logits = unc + cfg * (logits - unc)
            ref[:, targets] = sample_logits(logits, generator=gen, **kw)
    assert torch.equal(got.view(len(labels), -1), ref)
    assert len(ref.unique()) > 3  # not a degenerate constant draw


def test_in_place_rope_matches_apply_rope_exactly():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 2, 4, 16).transpose(1, 3)  # strided input
    ang = torch.randn(4, 1, 1, 8)
    out = torch.empty(3, 4, 2, 7, 16)
    tr._rope_into(x, ang.cos(), ang.sin(), out)
    assert torch.equal(out, apply_rope(x, ang.cos(), ang.sin()))
