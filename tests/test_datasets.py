"""Tests for mftlib.datasets: shapes, standardisation by training statistics, fixed split."""

from __future__ import annotations

import numpy as np
import pytest

from mftlib import datasets


def test_shapes_and_types():
    data = datasets.digits()
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64)
    assert data.x_train.dtype == np.float64 and data.y_train.dtype == np.int64
    assert data.n_classes == 10
    assert set(np.unique(data.y_train)) == set(range(10))
    onehot = data.one_hot("test")
    assert onehot.shape == (360, 10)
    np.testing.assert_array_equal(onehot.argmax(1), data.y_test)
    np.testing.assert_array_equal(onehot.sum(1), 1.0)


def test_standardised_with_training_statistics():
    data = datasets.digits()
    raw = datasets.digits(standardise=False)
    mean, std = raw.x_train.mean(0), raw.x_train.std(0)
    np.testing.assert_allclose(data.x_train.mean(0), 0.0, atol=1e-12)
    varying = std > 0
    np.testing.assert_allclose(data.x_train[:, varying].std(0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(data.x_train[:, ~varying], 0.0, atol=1e-12)
    # The test set uses the training statistics, not its own.
    expected = (raw.x_test - mean) / np.where(varying, std, 1.0)
    np.testing.assert_allclose(data.x_test, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(data.x_test.mean(0), 0.0, atol=1e-3)


def test_split_is_deterministic_and_stratified():
    a, b, c = datasets.digits(seed=3), datasets.digits(seed=3), datasets.digits(seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # about 20% of ~180 per class
    small = datasets.digits(test_fraction=0.5)
    assert abs(small.x_test.shape[0] - 1797 / 2) <= 1
    # Train and test are disjoint and together are the whole set.
    raw = datasets.digits(standardise=False)
    assert raw.x_train.shape[0] + raw.x_test.shape[0] == 1797


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, float("nan")])
def test_bad_test_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.digits(test_fraction=fraction)


def test_bad_arguments():
    with pytest.raises(TypeError, match="standardise"):
        datasets.digits(standardise="yes")
    with pytest.raises(ValueError, match="seed"):
        datasets.digits(seed=-1)
    with pytest.raises(ValueError, match="split"):
        datasets.digits().one_hot("validation")
