"""Tests for mftlib.fitting: exact recovery from noiseless data, honest standard errors from noisy
data (coverage over many draws), and input validation."""

from __future__ import annotations

import numpy as np
import pytest

from mftlib import fitting

X = np.arange(40.0)
DRAWS = 400  # noisy repetitions per coverage check; the fraction within 1 se has sd ~ 0.025


def _coverage(fit, truth) -> float:
    """Fraction of the draws whose estimate lies within one reported standard error."""
    value, se = np.asarray(fit.value), np.asarray(fit.stderr)
    assert value.shape == se.shape and np.all(se > 0)
    return float(np.mean(np.abs(value - truth) < se))


# --- noiseless data: exact recovery ---


def test_exponential_rate_and_scale_recover_a_clean_exponential():
    y = 0.7 * np.exp(-X / 6.5)
    fit = fitting.exponential_scale(y)
    assert fit.value == pytest.approx(6.5, rel=1e-10) and fit.stderr < 1e-10
    assert fit.amplitude == pytest.approx(0.7, rel=1e-10) and fit.offset == 0.0
    assert fitting.exponential_rate(y).value == pytest.approx(-1 / 6.5, rel=1e-10)
    # An abscissa that is not 0..n-1, with a window, and growth in sqrt(x).
    root = np.sqrt(X)
    grow = fitting.exponential_rate(2.0 * np.exp(0.3 * root), root, window=(2.0, None))
    assert grow.value == pytest.approx(0.3, rel=1e-10)
    assert grow.amplitude == pytest.approx(2.0, rel=1e-10)
    # No decay: an infinite scale.
    assert fitting.exponential_scale(np.exp(0.1 * X)).value == np.inf


def test_exponential_scale_by_least_squares_on_signed_values():
    both = np.stack([0.7 * np.exp(-X / 6.5), -0.2 * np.exp(-X / 3.0)])
    fit = fitting.exponential_scale(both, log=False)
    np.testing.assert_allclose(fit.value, [6.5, 3.0], rtol=1e-10)
    np.testing.assert_allclose(fit.amplitude, [0.7, -0.2], rtol=1e-10)
    shifted = fitting.exponential_scale(
        0.3 * np.exp(-(X + 5) / 4.2) - 0.05, X + 5, log=False, offset=True
    )
    assert shifted.value == pytest.approx(4.2, rel=1e-10)
    assert shifted.offset == pytest.approx(-0.05, rel=1e-10)
    assert shifted.amplitude == pytest.approx(0.3, rel=1e-10)
    # A flat sequence has no resolvable decay.
    assert fitting.exponential_scale(np.ones(10), log=False).value == np.inf


def test_power_law_recovers_exponent_and_amplitude():
    x = np.array([16.0, 64.0, 256.0, 1024.0])
    fit = fitting.power_law(3.0 * x**-0.5, x)
    assert fit.value == pytest.approx(-0.5, rel=1e-10)
    assert fit.amplitude == pytest.approx(3.0, rel=1e-10)
    # The window drops points that do not follow the law (and the non-positive x = 0).
    y = np.concatenate([[5.0, 9.0], 2.0 * X[2:] ** 1.7])
    assert fitting.power_law(y, X, window=(2, None)).value == pytest.approx(1.7, rel=1e-10)


def test_rate_recovers_a_geometric_sequence():
    y = 2.0 * 1.3**X
    y[:5] = 1.0  # a transient outside the window
    fit = fitting.rate(y, window=(5, 34))
    assert fit.value == pytest.approx(1.3, rel=1e-10)
    assert fit.amplitude == pytest.approx(2.0, rel=1e-10)


def test_seeds_give_the_mean_and_seed_to_seed_error():
    xi = np.array([3.0, 4.0, 5.0])
    y = np.exp(-X[None, :] / xi[:, None])
    fit = fitting.exponential_scale(y, seeds=True)
    assert fit.value == pytest.approx(4.0, rel=1e-10)
    assert fit.stderr == pytest.approx(1.0 / np.sqrt(3), rel=1e-10)
    # Leading axes after the seeds axis are fitted independently.
    y2 = np.stack([y, 2.0 * y], axis=1)  # (seeds, 2, n)
    assert fitting.exponential_scale(y2, seeds=True).value.shape == (2,)


def test_depth_multiple_separates_trainable_cells():
    depths = np.array([2, 4, 8, 16, 32])
    xi = np.array([1.0, 3.0, np.inf, 2.0])
    acc = np.where(depths[:, None] < 6 * xi[None, :], 0.95, 0.1)
    fit = fitting.depth_multiple(acc, depths, xi, 0.5)
    assert fit.errors.min() == 0
    assert 16 / 3 < fit.low * 1.0001 and fit.high <= 8.0  # any k in (16/3, 8] separates them
    assert fit.value == pytest.approx(0.5 * (fit.low + fit.high))


# --- noisy data: the reported standard error covers the truth about 68 % of the time ---


def test_exponential_scale_log_fit_coverage():
    rng = np.random.default_rng(0)
    y = 0.7 * np.exp(-X / 6.5) * np.exp(0.1 * rng.normal(size=(DRAWS, X.size)))
    assert 0.5 < _coverage(fitting.exponential_scale(y), 6.5) < 0.85
    assert 0.5 < _coverage(fitting.exponential_rate(y), -1 / 6.5) < 0.85


def test_exponential_scale_least_squares_coverage():
    rng = np.random.default_rng(1)
    y = 0.7 * np.exp(-X / 6.5) + 0.05 + 0.01 * rng.normal(size=(DRAWS, X.size))
    assert 0.5 < _coverage(fitting.exponential_scale(y, log=False, offset=True), 6.5) < 0.85


def test_power_law_coverage():
    rng = np.random.default_rng(2)
    x = np.geomspace(10, 1000, 12)
    y = 3.0 * x**-0.5 * np.exp(0.05 * rng.normal(size=(DRAWS, x.size)))
    assert 0.5 < _coverage(fitting.power_law(y, x), -0.5) < 0.85


def test_rate_coverage_for_a_random_multiplicative_process():
    rng = np.random.default_rng(3)
    log_steps = np.log(1.3) + 0.2 * rng.normal(size=(DRAWS, 30))
    y = np.exp(np.concatenate([np.zeros((DRAWS, 1)), np.cumsum(log_steps, -1)], -1))
    # The log-normal bias of exp(mean) is ~ 0.2^2 / 60 relative, far below the error bar.
    assert 0.5 < _coverage(fitting.rate(y), 1.3) < 0.85


def test_seed_to_seed_coverage():
    rng = np.random.default_rng(4)
    x = np.geomspace(10, 1000, 12)
    y = 3.0 * x**-0.5 * np.exp(0.05 * rng.normal(size=(8, DRAWS, x.size)))  # (seeds, draws, n)
    fit = fitting.power_law(y, x, seeds=True)
    assert fit.value.shape == (DRAWS,)
    assert 0.5 < _coverage(fit, -0.5) < 0.85


# --- bad input ---


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fitting.exponential_scale(np.ones(5), x=np.arange(4)), "x"),
        (lambda: fitting.exponential_scale(np.ones(5), x=[0, 1, np.nan, 3, 4]), "x"),
        (lambda: fitting.exponential_scale(np.zeros(5)), "y"),
        (lambda: fitting.exponential_scale(5.0), "y"),
        (lambda: fitting.exponential_scale(np.ones(5), window=(3, 1)), "window"),
        (lambda: fitting.exponential_scale(np.ones(5), window=3), "window"),
        (lambda: fitting.exponential_scale(np.ones(5), floor=-1.0), "floor"),
        (lambda: fitting.exponential_scale(np.ones(5), offset=True), "offset"),
        (lambda: fitting.exponential_scale(np.ones(2), log=False), "y"),
        (lambda: fitting.exponential_scale(np.ones(5), seeds=True), "y"),
        (lambda: fitting.exponential_scale(np.ones((1, 5)), seeds=True), "y"),
        (lambda: fitting.exponential_rate(np.exp(np.arange(5.0)), np.ones(5)), "x"),
        (lambda: fitting.power_law([1.0, -1.0], [1.0, 2.0]), "y"),
        (lambda: fitting.power_law([1.0, 1.0], [0.0, 2.0]), "x"),
        (lambda: fitting.power_law([1.0, 2.0], None), "x"),
        (lambda: fitting.power_law([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], window=(3, None)), "window"),
        (lambda: fitting.rate([1.0, 0.0, 2.0]), "y"),
        (lambda: fitting.rate([1.0, 2.0, 4.0], window=(1, 1)), "window"),
        (lambda: fitting.depth_multiple(np.ones((2, 2)), [1, 2], [1.0, 2.0, 3.0], 0.5), "shape"),
        (lambda: fitting.depth_multiple(np.ones((2, 2)), [1, 2], [1.0, -2.0], 0.5), "xi"),
        (lambda: fitting.depth_multiple(np.ones((2, 2)), [1, 2], [1, 2], np.nan), "threshold"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_weighted_mean_and_its_consistency():
    out = fitting.weighted_mean([1.0, 3.0], [1.0, 1.0])
    assert out.value == pytest.approx(2.0) and out.stderr == pytest.approx(2**-0.5)
    assert out.chi2 == pytest.approx(2.0) and out.dof == 1
    assert out.p_value == pytest.approx(0.1573, abs=1e-4)  # P(chi2_1 >= 2)
    out = fitting.weighted_mean([1.0, 2.0], [0.1, 1.0])  # the precise one dominates
    assert out.value == pytest.approx((100 + 2) / 101)
    with pytest.raises(ValueError, match="stderr"):
        fitting.weighted_mean([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="values"):
        fitting.weighted_mean([np.nan], [1.0])
