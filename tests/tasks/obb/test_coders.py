"""Angle coders: round trips over le90, periodicity, UCR decode shapes, invalid threshold, constraint loss."""

import math

import numpy as np
import pytest
import torch

from visionkit.tasks.obb.coders import (
    CSLCoder,
    PlainAngleCoder,
    PSCCoder,
    UCRCoder,
    build_coder,
    wrap_le90,
)

ALL = [UCRCoder(dims=2), UCRCoder(dims=3), UCRCoder(dims=4), UCRCoder(dims=7), PSCCoder(num_step=3, dual_freq=False),
       PSCCoder(num_step=3, dual_freq=True), PSCCoder(num_step=5, dual_freq=True), CSLCoder(omega=1.0),
       CSLCoder(omega=4.0), PlainAngleCoder()]


def _angles(n=2001, dtype=torch.float64):
    return torch.linspace(-math.pi / 2, math.pi / 2, n + 1, dtype=dtype)[:-1]  # [-pi/2, pi/2)


def _angdiff(a, b):
    d = np.remainder(np.asarray(a) - np.asarray(b) + np.pi / 2, np.pi) - np.pi / 2
    return np.abs(d)


@pytest.mark.parametrize("coder", ALL, ids=repr)
def test_round_trip(coder):
    theta = _angles()
    out = coder.decode(coder.encode(theta))
    assert out.shape == theta.shape
    assert (out >= -math.pi / 2 - 1e-12).all() and (out < math.pi / 2).all()
    tol = math.radians(coder.omega) / 2 + 1e-9 if isinstance(coder, CSLCoder) else 1e-9
    assert _angdiff(out.numpy(), theta.numpy()).max() <= tol


@pytest.mark.parametrize("coder", ALL, ids=repr)
def test_encode_is_pi_periodic_and_batched(coder):
    theta = torch.rand(4, 5, dtype=torch.float64) * 6 - 3
    e = coder.encode(theta)
    assert e.shape == (4, 5, coder.encode_size)
    torch.testing.assert_close(coder.encode(theta + math.pi), e, atol=1e-9, rtol=0)
    # every coder decodes theta and theta + pi to the same le90 angle
    a, b = coder.decode(coder.encode(theta)), coder.decode(coder.encode(theta + math.pi))
    assert _angdiff(a.numpy(), b.numpy()).max() < 1e-6
    assert coder.decode(e, keepdim=True).shape == (4, 5, 1)


def test_ucr_formulas_against_numpy():
    theta = np.random.default_rng(0).uniform(-np.pi / 2, np.pi / 2, 50)
    for m in (3, 5):
        k = np.arange(m)
        ref = np.cos(2 * theta[:, None] + 2 * np.pi * k / m)
        got = UCRCoder(dims=m).encode(torch.from_numpy(theta)).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-12)
        c = (ref * np.cos(2 * np.pi * k / m)).sum(-1)
        s = -(ref * np.sin(2 * np.pi * k / m)).sum(-1)
        np.testing.assert_allclose(c, m / 2 * np.cos(2 * theta), atol=1e-12)
        np.testing.assert_allclose(s, m / 2 * np.sin(2 * theta), atol=1e-12)
    np.testing.assert_allclose(UCRCoder(dims=2).encode(torch.from_numpy(theta)).numpy(),
                               np.stack([np.cos(2 * theta), np.sin(2 * theta)], -1), atol=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_ucr_decode_shape_every_m(m):
    coder = UCRCoder(dims=m)
    for shape in [(7,), (2, 3), (1,)]:
        v = torch.randn(*shape, m)
        assert coder.decode(v).shape == shape
        assert coder.decode(v, keepdim=True).shape == (*shape, 1)
    with pytest.raises(ValueError, match="size"):
        coder.decode(torch.randn(4, m + 1))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_ucr_invalid_threshold(m):
    coder = UCRCoder(dims=m, invalid_thr=0.25)
    theta = torch.tensor([0.3, -0.7, 1.2], dtype=torch.float64)
    v = coder.encode(theta)
    # shrinking the encoding towards the origin: radius 0.6 (r^2 = 0.36 >= 0.25) keeps the angle, 0.4 zeroes it
    torch.testing.assert_close(coder.decode(0.6 * v), theta)
    torch.testing.assert_close(coder.decode(0.4 * v), torch.zeros_like(theta))
    assert (UCRCoder(dims=m).decode(0.4 * v) - theta).abs().max() < 1e-9  # no threshold: kept


@pytest.mark.parametrize("m", [2, 3, 5])
def test_ucr_constraint_loss(m):
    coder = UCRCoder(dims=m)
    theta = _angles(101)
    assert coder.constraint_loss(coder.encode(theta)).abs().max() < 1e-9
    v = coder.encode(theta)
    assert (coder.constraint_loss(1.3 * v) > 0.1).all()  # off the circle
    if m >= 3:
        shifted = v + 0.2  # same radius change is not the only failure: a common offset breaks sum v = 0
        assert (coder.constraint_loss(shifted) > 0.1).all()
    # closed form for m >= 3: |sum v^2 - m/2| + |sum v|
    x = torch.randn(10, m, dtype=torch.float64)
    ref = ((x**2).sum(-1) - m / 2).abs() + (x.sum(-1).abs() if m >= 3 else 0)
    torch.testing.assert_close(coder.constraint_loss(x), ref)
    for other in (PSCCoder(), CSLCoder(), PlainAngleCoder()):
        assert (other.constraint_loss(torch.randn(3, other.encode_size)) == 0).all()


@pytest.mark.parametrize("coder", ALL, ids=repr)
def test_loss_zero_at_target_and_positive_elsewhere(coder):
    theta = _angles(37)
    enc = coder.encode(theta)
    pred = torch.logit(enc.clamp(1e-6, 1 - 1e-6)) if isinstance(coder, CSLCoder) else enc
    perfect = coder.loss(pred, theta)
    wrong = coder.loss(pred, wrap_le90(theta + 0.5))
    assert perfect.shape == theta.shape
    assert (wrong > perfect + 1e-3).all()
    if not isinstance(coder, CSLCoder):
        assert perfect.abs().max() < 1e-9


def test_plain_loss_is_periodic():
    coder = PlainAngleCoder()
    t = torch.tensor([1.5, -1.5])
    # predicting -1.55 for 1.55 is almost right under the pi period
    loss = coder.loss(torch.tensor([[-1.55], [1.55]]), torch.tensor([1.55, -1.55]))
    assert loss.max() < 0.05
    assert coder.loss(torch.tensor([[0.0], [0.0]]), t).min() > 1.0


def test_csl_window_is_gaussian():
    coder = CSLCoder(omega=2.0, radius=3.0)
    label = coder.encode(torch.tensor(0.0, dtype=torch.float64))
    centre = 45  # -90 + 45 * 2 = 0 degrees
    d = np.minimum(np.abs(np.arange(90) - centre), 90 - np.abs(np.arange(90) - centre))
    np.testing.assert_allclose(label.numpy(), np.exp(-(d**2) / (2 * 9.0)), atol=1e-12)
    # the window wraps around the le90 boundary
    edge = coder.encode(torch.tensor(-math.pi / 2, dtype=torch.float64))
    assert edge[0] == 1 and edge[-1] > 0.9


def test_psc_dual_frequency_beats_noise_near_boundary():
    coder = PSCCoder(num_step=3, dual_freq=True)
    theta = torch.tensor([-1.5, 1.5, 0.0, 0.7], dtype=torch.float64)
    v = coder.encode(theta) + 0.01 * torch.randn(4, 6, dtype=torch.float64)
    assert _angdiff(coder.decode(v).numpy(), theta.numpy()).max() < 0.02


def test_build_coder():
    assert isinstance(build_coder("ucr", dims=2), UCRCoder)
    assert build_coder("psc", dual_freq=True).encode_size == 6
    assert build_coder("csl", omega=2).encode_size == 90
    with pytest.raises(ValueError, match="unknown coder"):
        build_coder("nope")


def test_wrong_string_choice_fails_while_parsing():
    from jsonargparse import ArgumentParser

    from visionkit.tasks.obb.detection import RotatedDetectionTask
    from visionkit.tasks.obb.pointobb import PointOBBTask

    for cls, key, good in ((RotatedDetectionTask, "iou_loss", "linear"), (PointOBBTask, "rotate_padding", "disc")):
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, "model")
        assert parser.parse_args([f"--model.{key}", good]).model[key] == good
        with pytest.raises(Exception, match=key):
            parser.parse_args([f"--model.{key}", "nonsense"])
