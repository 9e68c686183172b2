r"""Data that needs no download: scikit-learn's bundled handwritten digits, and SBM graphs.

:func:`digits` returns the 1,797 images of 8 x 8 pixels (64 features, 10 classes) of
``sklearn.datasets.load_digits`` (the UCI optical digits test set), split once into a training and
a test set (stratified by class, fixed by ``seed``) and, by default, standardised feature by
feature with the *training* set's mean and standard deviation. After standardisation every
non-constant feature has mean 0 and variance 1 over the training set, so an input has
:math:`\|x\|^2/d \approx 1` and the first layer of a network with weight variance
:math:`\sigma_w^2` starts near :math:`q^0 = \sigma_w^2 + \sigma_b^2`.

``datasets.sbm`` is :func:`mftlib.graph.sbm`, the generator of two-group stochastic block models
(sparse adjacency matrices) of chapter 10, available here with the other data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mftlib import _validate as V
from mftlib.graph import sbm  # noqa: F401  (the SBM generator, re-exported with the data)


class Dataset(NamedTuple):
    """A classification data set split into training and test parts (numpy, float64 inputs).

    Attributes:
        x_train, x_test: inputs, shape ``(n, d)``, float64.
        y_train, y_test: integer labels in ``0, ..., n_classes - 1``, shape ``(n,)``.
        n_classes: number of classes.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    def one_hot(self, split: str = "train") -> np.ndarray:
        """One-hot labels ``(n, n_classes)``, float64, of ``split`` ('train' or 'test')."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        y = self.y_train if split == "train" else self.y_test
        return np.eye(self.n_classes, dtype=np.float64)[y]


def digits(standardise: bool = True, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled digits (1,797 images, 64 pixels, 10 classes), split and standardised.

    Args:
        standardise: subtract the training mean and divide by the training standard deviation,
            feature by feature (constant features, such as the always-blank corner pixels, are only
            centred). Otherwise the raw pixel values 0-16.
        test_fraction: fraction of the images held out for testing, in (0, 1).
        seed: seed of the stratified split (the same seed gives the same split).

    Returns:
        :class:`Dataset` with float64 inputs and int64 labels.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not isinstance(standardise, (bool, np.bool_)):
        raise TypeError(f"standardise must be a bool, got {standardise!r}")
    V.real("test_fraction", test_fraction, lo=0.0, hi=1.0, lo_open=True)
    if np.ndim(test_fraction) != 0 or float(test_fraction) >= 1.0:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    seed = V.nonneg_int("seed", seed)
    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=float(test_fraction), random_state=seed, stratify=y
    )
    if standardise:
        mean = x_tr.mean(axis=0)
        std = x_tr.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_tr = (x_tr - mean) / std
        x_te = (x_te - mean) / std
    return Dataset(x_tr, y_tr, x_te, y_te, 10)
