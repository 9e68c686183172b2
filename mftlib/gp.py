r"""Gaussian-process prediction from any kernel: exact posterior by Cholesky, and the NTK predictor.

With training inputs :math:`X`, targets :math:`Y` (one column per output, e.g. one-hot classes as
in Lee et al. 2018), observation noise :math:`\sigma_\epsilon^2` and kernel :math:`K`,
the posterior at a test input :math:`x_*` has mean and variance (Rasmussen & Williams 2006,
chapter 2)

.. math::

   \mu(x_*) = K_{*X}\,(K_{XX} + \sigma_\epsilon^2 I)^{-1} Y, \qquad
   \sigma^2(x_*) = K_{**} - K_{*X}\,(K_{XX} + \sigma_\epsilon^2 I)^{-1} K_{X*},

computed with one Cholesky factorisation of :math:`K_{XX} + \sigma_\epsilon^2 I`
(``jax.scipy.linalg``). A kernel matrix that is positive semi-definite but numerically singular
(deep networks drive every entry towards the same value) gets the smallest diagonal *jitter*
:math:`\in \{0, 10^{-10}, 10^{-9}, \dots, 10^{-3}\} \times \overline{K_{ii}}` for which the
factorisation is finite; the jitter used is returned. A matrix that is not symmetric, not finite
or not positive semi-definite even with the largest jitter raises ``ValueError``: predictions
are never silently NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from mftlib import _validate as V

Array = jax.Array

#: Relative jitters tried in turn (times the mean of the kernel's diagonal).
JITTERS = (0.0,) + tuple(10.0**k for k in range(-10, -2))


def _check_kernel(k_train) -> np.ndarray:
    k = np.asarray(V.matrix("k_train", k_train), np.float64)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"k_train must be square, got shape {k.shape}")
    if not np.allclose(k, k.T, rtol=1e-10, atol=1e-12 * np.max(np.abs(k))):
        raise ValueError("k_train must be symmetric")
    if np.any(np.diag(k) < 0):
        raise ValueError("k_train has negative diagonal entries: it is not a covariance")
    return k


def cholesky(k_train, noise: float = 0.0) -> tuple[Array, float]:
    r"""Lower Cholesky factor of :math:`K + (\sigma_\epsilon^2 + \text{jitter}) I`, and the jitter.

    Raises:
        ValueError: the matrix is not symmetric, not finite, or not positive semi-definite even
            with the largest jitter of :data:`JITTERS`.
    """
    k = _check_kernel(k_train)
    V.variance("noise", noise)
    scale = float(np.mean(np.diag(k))) or 1.0
    eye = np.eye(k.shape[0])
    for rel in JITTERS:
        jitter = rel * scale
        chol = jnp.linalg.cholesky(jnp.asarray(k + (noise + jitter) * eye))
        if bool(jnp.all(jnp.isfinite(chol))):
            return chol, jitter
    raise ValueError(
        "k_train is not positive semi-definite: its Cholesky factorisation fails even with a "
        f"jitter of {JITTERS[-1]:g} times its mean diagonal"
    )


def posterior(k_train, k_cross, k_test_diag, y_train, noise: float = 0.0) -> dict:
    r"""Posterior mean and variance at the test points.

    Args:
        k_train: :math:`K_{XX}`, ``(n, n)``; k_cross: :math:`K_{*X}`, ``(m, n)``;
        k_test_diag: :math:`K_{**}` on the diagonal, ``(m,)``.
        y_train: targets ``(n,)`` or ``(n, k)``.
        noise: observation noise variance :math:`\sigma_\epsilon^2 \ge 0`.

    Returns:
        dict with ``mean`` (shape of ``k_cross @ y_train``), ``variance`` ``(m,)`` (the same for
        every output column; clipped at 0 from round-off) and the ``jitter`` added.
    """
    chol, jitter = cholesky(k_train, noise)
    n = chol.shape[0]
    k_cross = np.asarray(V.matrix("k_cross", k_cross), np.float64)
    if k_cross.shape[1] != n:
        raise ValueError(f"k_cross must have {n} columns (training points), got {k_cross.shape}")
    diag = np.asarray(V.matrix("k_test_diag", k_test_diag, ndim=1), np.float64)
    if diag.shape != (k_cross.shape[0],):
        raise ValueError(f"k_test_diag must have shape ({k_cross.shape[0]},), got {diag.shape}")
    y = np.asarray(y_train, np.float64)
    if y.shape[0] != n or y.ndim not in (1, 2) or not np.all(np.isfinite(y)):
        raise ValueError(f"y_train must be finite with {n} rows, got shape {y.shape}")
    mean, var = _posterior(chol, jnp.asarray(k_cross), jnp.asarray(diag), jnp.asarray(y))
    return {"mean": np.asarray(mean), "variance": np.asarray(var), "jitter": jitter}


@jax.jit
def _posterior(chol, k_cross, diag, y):
    alpha = jsl.cho_solve((chol, True), y)
    v = jsl.solve_triangular(chol, k_cross.T, lower=True)
    return k_cross @ alpha, jnp.maximum(diag - jnp.sum(v * v, axis=0), 0.0)


def predict(
    kernel: Callable[[Array, Array], Array],
    x_train,
    y_train,
    x_test,
    noise: float = 0.0,
    batch_size: int = 1024,
) -> dict:
    r"""GP regression with a kernel function, over the test set in batches of ``batch_size``.

    ``kernel(a, b)`` returns the ``(len(a), len(b))`` kernel matrix, e.g.
    ``lambda a, b: mft.nngp_kernel(a, b, "relu", 2.0, 0.1, depth=3)``. The training kernel is
    factorised once; the cross-kernel is built ``batch_size`` test points at a time, so memory
    stays at :math:`O(n^2 + \text{batch\_size}\cdot n)` for any number of test points.

    Returns:
        dict with ``mean``, ``variance`` (over all test points) and ``jitter``, as
        :func:`posterior`.
    """
    if not callable(kernel):
        raise TypeError("kernel must be a function kernel(a, b) -> matrix")
    x_train = np.asarray(V.matrix("x_train", x_train), np.float64)
    x_test = np.asarray(V.matrix("x_test", x_test), np.float64)
    batch_size = V.positive_int("batch_size", batch_size)
    chol, jitter = cholesky(np.asarray(kernel(x_train, x_train)), noise)
    y = np.asarray(y_train, np.float64)
    if y.shape[0] != x_train.shape[0] or not np.all(np.isfinite(y)):
        raise ValueError(f"y_train must be finite with {x_train.shape[0]} rows, got {y.shape}")
    means, variances = [], []
    for start in range(0, x_test.shape[0], batch_size):
        xb = x_test[start : start + batch_size]
        k_cross = jnp.asarray(kernel(xb, x_train))
        diag = jnp.diag(jnp.asarray(kernel(xb, xb)))  # O(batch_size^2): bounded
        mean, var = _posterior(chol, k_cross, diag, jnp.asarray(y))
        means.append(np.asarray(mean))
        variances.append(np.asarray(var))
    return {"mean": np.concatenate(means), "variance": np.concatenate(variances), "jitter": jitter}


def ntk_mean(theta_train, theta_cross, y_train, time: float | None = None) -> np.ndarray:
    r"""Mean test prediction of an infinitely wide network trained by gradient flow.

    Under :math:`\dot f = -\Theta\,(f - y)` on the loss :math:`\tfrac12\sum_i\lVert f(x_i) -
    y_i\rVert^2` (time in units of the learning rate), averaged over initialisations (whose
    outputs have mean zero), the test outputs follow (Jacot et al. 2018)

    .. math::

       \mathbb{E}[f_t(x_*)] = \Theta_{*X}\,\Theta_{XX}^{-1}\bigl(I - e^{-\Theta_{XX} t}\bigr) Y,

    which at :math:`t = \infty` (``time=None``) is kernel regression with the NTK.
    """
    th = _check_kernel(theta_train)
    cross = np.asarray(V.matrix("theta_cross", theta_cross), np.float64)
    y = np.asarray(y_train, np.float64)
    if cross.shape[1] != th.shape[0] or y.shape[0] != th.shape[0]:
        raise ValueError("theta_cross columns and y_train rows must match theta_train")
    evals, evecs = np.linalg.eigh(th)
    if evals.min() < -1e-8 * evals.max():
        raise ValueError("theta_train is not positive semi-definite")
    evals = np.maximum(evals, 1e-12 * evals.max())
    if time is None:
        factor = 1.0 / evals
    else:
        V.real("time", time, lo=0.0)
        factor = -np.expm1(-evals * time) / evals
    return cross @ (evecs @ (factor[:, None] * (evecs.T @ y.reshape(y.shape[0], -1)))).reshape(
        (th.shape[0],) + y.shape[1:]
    )
