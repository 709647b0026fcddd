"""Generation metrics against independent references (scipy FID, numpy MMD, cross-entropy)."""

import math

import numpy as np
import torch
from scipy import linalg

from visionkit.metrics.generation import JudgeAccuracy, TokenNLL, judge_fid, judge_kid
from visionkit.tasks.generation.judge import JudgeClassifier


def _judge():
    torch.manual_seed(0)
    return JudgeClassifier(in_channels=1, num_classes=4, width=8, feature_dim=6).eval()


def test_token_nll_matches_cross_entropy():
    m = TokenNLL()
    logits, tokens = torch.randn(3, 10, 7), torch.randint(0, 7, (3, 10))
    m.update(logits[:2], tokens[:2])
    m.update(logits[2:], tokens[2:])
    out = m.compute()
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), tokens.reshape(-1))
    torch.testing.assert_close(out["token_nll"], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["bits_per_token"], ref / math.log(2), atol=1e-5, rtol=1e-5)


def test_judge_accuracy():
    j = _judge()
    x = torch.rand(20, 1, 8, 8)
    pred = j(x).argmax(-1)
    labels = pred.clone()
    labels[:5] = (labels[:5] + 1) % 4
    m = JudgeAccuracy(j)
    m.update(x, labels)
    assert abs(m.compute().item() - 0.75) < 1e-6


def test_fid_matches_scipy_reference():
    j = _judge()
    real, fake = torch.rand(40, 1, 8, 8), torch.rand(30, 1, 8, 8) ** 2
    fid = judge_fid(j)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with torch.no_grad():
        fr, ff = j.features(real).double().numpy(), j.features(fake).double().numpy()
    mu1, mu2 = fr.mean(0), ff.mean(0)
    s1, s2 = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert abs(fid.compute().item() - ref) < 1e-3 * max(1.0, ref)


def test_kid_near_zero_for_same_distribution_and_positive_otherwise():
    j = _judge()
    torch.manual_seed(1)
    kid = judge_kid(j, subset_size=50, subsets=20)
    kid.update(torch.rand(60, 1, 8, 8), real=True)
    kid.update(torch.rand(60, 1, 8, 8), real=False)
    same = kid.compute()["kid"].item()
    kid2 = judge_kid(j, subset_size=500, subsets=20)  # larger than the sample count: shrunk automatically
    kid2.update(torch.rand(60, 1, 8, 8), real=True)
    kid2.update(torch.rand(60, 1, 8, 8) ** 4, real=False)
    diff = kid2.compute()["kid"].item()
    assert diff > 10 * abs(same)
