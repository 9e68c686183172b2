r"""Experiment drivers of the NNGP chapter: random-network kernels through depth and width, and
the neural tangent kernel of trained networks.

Each function runs one experiment of chapter 2 end to end (the theory from :mod:`mftlib.dense`,
:mod:`mftlib.ntk` and :mod:`mftlib.gp`, the finite networks from :mod:`mftlib.networks`, the fits
from :mod:`mftlib.fitting`) and returns plain numpy arrays for the chapter to plot:

* :func:`angle_correlations`: the output correlation of two inputs against the angle between
  them, layer by layer, theory against finite networks;
* :func:`kernel_errors`: the relative error of the empirical NNGP kernel and NTK of one network
  against their limits, over widths;
* :func:`ntk_depth_profile`: each layer's share of the NTK diagonal at every depth, theory
  (:func:`mftlib.ntk.ntk_depth_profile`) against finite networks;
* :func:`ntk_training`: wide networks trained by gradient descent against the NTK solution, and
  the motion of their tangent kernel;
* :func:`covariance_z_scores`, :func:`plot_gaussian_check`, :func:`plot_fixed_point_distance`:
  the statistics and panels several figures share (the plots draw on axes they are given).

The prediction experiments (GP classification, trained networks, the phase diagram of accuracy)
are in :mod:`mftlib.nngp_prediction`. Randomness comes only from the keys passed in; every array
is float64.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dense, fitting, gp, ntk
from mftlib.activations import activation
from mftlib.networks import dense as dense_nets
from mftlib.networks import ntk as ntk_nets

__all__ = [
    "AngleSweep",
    "angle_correlations",
    "circle_inputs",
    "covariance_z_scores",
    "kernel_errors",
    "ntk_depth_profile",
    "ntk_training",
    "plot_fixed_point_distance",
    "plot_gaussian_check",
]


def circle_inputs(angles, d: int = 64) -> np.ndarray:
    r"""Inputs :math:`x_a = \sqrt{d}\,(\cos\theta_a, \sin\theta_a, 0, \dots, 0)`, so that
    :math:`x_a\cdot x_a/d = 1` and :math:`x_a\cdot x_b/d = \cos(\theta_a - \theta_b)`.

    Returns:
        ``(len(angles), d)`` float64.
    """
    angles = np.asarray(V.grid("angles", angles), np.float64)
    d = V.positive_int("d", d)
    if d < 2:
        raise ValueError(f"d must be >= 2 to hold a circle, got {d}")
    x = np.zeros((angles.size, d))
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    return x * np.sqrt(d)


class AngleSweep(NamedTuple):
    r"""Output correlations of inputs at angles :math:`\theta` from a reference input.

    Attributes:
        angles: ``(n,)`` the angles :math:`\theta` (radians).
        theory: ``(depth + 1, n)`` :math:`c^l(\theta) = K^l(x_0, x_\theta)/\sqrt{K^l(x_0,
            x_0) K^l(x_\theta, x_\theta)}` from the covariance map, layers ``0..depth``.
        simulated: ``(n_seeds, depth + 1, n)`` the same ratio of empirical kernels
            :math:`N^{-1}\sum_i h^l_i(x) h^l_i(x')` of finite networks (``None`` without
            simulation).
        c_star, xi_c, chi1: the correlation fixed point, its depth scale and :math:`\chi_1`
            (``nan`` where :math:`q^*` is infinite).
    """

    angles: np.ndarray
    theory: np.ndarray
    simulated: np.ndarray | None
    c_star: float
    xi_c: float
    chi1: float


def _correlations(kernel: np.ndarray) -> np.ndarray:
    """Correlation of input 0 with inputs 1.. in every kernel of a stack ``(..., m, m)``."""
    diag = np.diagonal(kernel, axis1=-2, axis2=-1)
    return kernel[..., 0, 1:] / np.sqrt(diag[..., :1] * diag[..., 1:])


def angle_correlations(
    key,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    angles,
    depth: int,
    width: int | None = None,
    n_seeds: int = 4,
    d: int = 64,
) -> AngleSweep:
    r"""Correlation of two inputs at angle :math:`\theta` after each of ``depth`` layers.

    The inputs are :func:`circle_inputs` (the reference at angle 0, then ``angles``). Theory: the
    NNGP covariance map :math:`K^{l+1} = \sigma_w^2\,\mathbb{E}[\phi(u)\phi(u')] + \sigma_b^2`
    from :math:`K^0 = \sigma_b^2 + \sigma_w^2 x\cdot x'/d`. Simulation (``width`` given):
    ``n_seeds`` networks of width ``width`` from ``jax.random.split(key, n_seeds)``, simulated
    layer by layer by :func:`mftlib.networks.preactivation_moments`.

    The theory follows each pair with the reference by the correlation map at the common length
    :math:`q^l` of all inputs on the circle (one pair moment per angle and layer).

    Returns:
        :class:`AngleSweep`.
    """
    angles = np.asarray(V.grid("angles", angles), np.float64)
    depth = V.positive_int("depth", depth)
    x = circle_inputs(np.concatenate([[0.0], angles]), d)
    act = activation(phi)
    V.variance("sigma_w2", sigma_w2, positive=True)
    V.variance("sigma_b2", sigma_b2)
    theory = np.asarray(
        _circle_correlations(act, float(sigma_w2), float(sigma_b2), jnp.asarray(angles), depth)
    )
    simulated = None
    if width is not None:
        sim = dense_nets.preactivation_moments(
            key, x, phi, sigma_w2, sigma_b2, width, depth, n_seeds
        )
        simulated = _correlations(np.asarray(sim["kernel"]))
    q = float(dense.q_star(phi, sigma_w2, sigma_b2))
    if np.isfinite(q):
        c_star = float(dense.c_star(phi, sigma_w2, sigma_b2))
        xi_c = float(dense.depth_scales(phi, sigma_w2, sigma_b2)[1])
        chi1 = float(dense.chi1(phi, sigma_w2, sigma_b2))
    else:
        c_star = xi_c = chi1 = float("nan")
    return AngleSweep(angles, theory, simulated, c_star, xi_c, chi1)


@partial(jax.jit, static_argnums=(0, 4))
def _circle_correlations(act, sw, sb, angles, depth: int):
    """c^l of inputs on the circle (x.x/d = 1) with the reference input: every input has the
    same length q^l, so each pair follows the correlation map at that length."""
    pair = jax.vmap(act.pair_moment, in_axes=(None, None, 0))

    def layer(carry, _):
        q, c = carry
        q_next = sw * act.mean_square(q) + sb
        c_next = (sw * pair(q, q, c * q) + sb) / q_next
        return (q_next, c_next), c_next

    q0 = jnp.asarray(sb + sw, jnp.float64)
    c0 = (sb + sw * jnp.cos(angles)) / q0
    _, cs = jax.lax.scan(layer, (q0, c0), None, length=depth)
    return jnp.concatenate([c0[None], cs])


def kernel_errors(key, x, phi, sigma_w2, sigma_b2, depth: int, widths, n_seeds: int = 4) -> dict:
    r"""Relative Frobenius errors of one finite network's NNGP kernel and NTK against the limits.

    For every width :math:`N` and seed, a network of ``mftlib.networks.ntk.init_ntk``
    (``depth`` hidden layers, a readout of :math:`N` units, key ``fold_in(split(key,
    n_seeds)[s], j)`` for width ``j``) gives the empirical NNGP kernel
    :math:`\hat K = N^{-1}\sum_i f_i(x) f_i(x')` over its readout units and the empirical NTK
    :math:`\hat\Theta` of readout unit 0 (``mftlib.networks.ntk.ntk_by_layer``); the errors
    are :math:`\lVert\hat K - K\rVert_F/\lVert K\rVert_F` and the same for :math:`\Theta`, against
    ``mftlib.ntk.nngp_and_ntk``. Both fluctuate at :math:`O(N^{-1/2})`.

    Returns:
        dict with ``widths`` ``(n_w,)``, ``nngp`` and ``ntk`` ``(n_seeds, n_w)``, and the fits
        ``nngp_fit`` and ``ntk_fit`` (:func:`mftlib.fitting.power_law` with ``seeds=True``:
        the exponent's mean over seeds and its standard error).
    """
    x = np.asarray(V.matrix("x", x), np.float64)
    widths = [V.positive_int("widths", int(w)) for w in np.atleast_1d(widths)]
    n_seeds = V.positive_int("n_seeds", n_seeds)
    k_theory, t_theory = (
        np.asarray(a) for a in ntk.nngp_and_ntk(x, None, phi, sigma_w2, sigma_b2, depth)
    )
    act = activation(phi)
    err_k = np.zeros((n_seeds, len(widths)))
    err_t = np.zeros_like(err_k)
    for s, seed_key in enumerate(jax.random.split(V.key(key), n_seeds)):
        for j, n in enumerate(widths):
            params = ntk_nets.init_ntk(jax.random.fold_in(seed_key, j), x.shape[1], n, depth, n)
            f = np.asarray(ntk_nets.apply_ntk(params, x, act.fn, sigma_w2, sigma_b2))
            t_emp = np.asarray(
                ntk_nets.ntk_by_layer(params, x, None, act, sigma_w2, sigma_b2).sum(0)
            )
            err_k[s, j] = np.linalg.norm(f @ f.T / n - k_theory) / np.linalg.norm(k_theory)
            err_t[s, j] = np.linalg.norm(t_emp - t_theory) / np.linalg.norm(t_theory)
    w = np.asarray(widths, np.float64)
    return {
        "widths": np.asarray(widths),
        "nngp": err_k,
        "ntk": err_t,
        "nngp_fit": fitting.power_law(err_k, w, seeds=n_seeds > 1),
        "ntk_fit": fitting.power_law(err_t, w, seeds=n_seeds > 1),
    }


def ntk_depth_profile(key, x, phi, sigma_w2, sigma_b2, depth: int, width: int, n_seeds=4) -> dict:
    r"""The layers' shares of the NTK diagonal at every depth, theory against finite networks.

    Theory: :func:`mftlib.ntk.ntk_depth_profile`. Simulation: ``n_seeds`` networks
    ``init_ntk(split(key, n_seeds)[s], d, width, depth, n_out=width)``, whose truncations after
    each layer give ``mftlib.networks.ntk.ntk_shares_by_depth``.

    Returns:
        dict with ``theory`` ``(depth + 1, depth + 1, n)``, ``simulated``
        ``(n_seeds, depth + 1, depth + 1, n)`` (index ``[L, l, a]``: layer ``l``'s share of
        :math:`\Theta^L(x_a, x_a)`) and ``limit``, :func:`mftlib.ntk.ntk_diagonal_limit`.
    """
    x = np.asarray(V.matrix("x", x), np.float64)
    depth = V.nonneg_int("depth", depth)
    width = V.positive_int("width", width)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    theory = ntk.ntk_depth_profile(x, phi, sigma_w2, sigma_b2, depth)
    act = activation(phi)
    sims = []
    for seed_key in jax.random.split(V.key(key), n_seeds):
        params = ntk_nets.init_ntk(seed_key, x.shape[1], width, depth, width)
        sims.append(np.asarray(ntk_nets.ntk_shares_by_depth(params, x, act, sigma_w2, sigma_b2)))
    return {
        "theory": theory,
        "simulated": np.stack(sims),
        "limit": ntk.ntk_diagonal_limit(phi, sigma_w2, sigma_b2),
    }


def ntk_training(
    key,
    x_train,
    y_train,
    x_test,
    phi,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    widths,
    steps: int,
    n_seeds: int = 4,
    n_record: int = 8,
) -> dict:
    r"""Wide networks trained by gradient descent against the NTK theory (Jacot et al. 2018).

    For every width, ``n_seeds`` networks in the NTK parameterisation are trained by
    ``mftlib.networks.ntk.train_gd_with_ntk`` (full-batch gradient descent on
    :math:`\tfrac12\sum_i\lVert f(x_i) - y_i\rVert^2`, step :math:`\eta =
    1/\lambda_{\max}(\Theta)` of the limiting NTK on the training inputs, ``steps`` steps, so
    time :math:`t = \eta\cdot` ``steps``). Two measurements per network:

    * the relative distance of its test outputs from the linearised solution with its own
      initial outputs, :math:`\lVert f_t - f^{\text{lin}}_t\rVert / \lVert f^{\text{lin}}_t -
      f_0\rVert` with :math:`f^{\text{lin}}_t = f_0 + \Theta_{*X}\Theta^{-1}(I -
      e^{-\Theta t})(Y - f_0(X))` (:func:`mftlib.gp.ntk_mean`);
    * the relative change of its empirical NTK on the training inputs during training,
      :math:`\lVert\Theta_t - \Theta_0\rVert_F/\lVert\Theta_0\rVert_F`, at ``n_record + 1``
      times.

    Both should fall as :math:`N^{-1/2}`; the exponents are fitted per seed across widths and
    averaged (:func:`mftlib.fitting.power_law` with ``seeds=True``).

    Returns:
        dict with ``widths``, ``eta``, ``time``; ``deviation`` and ``ntk_change`` (final)
        ``(n_seeds, n_widths)``; ``ntk_change_history`` ``(n_seeds, n_widths, n_record + 1)``
        and ``record_time`` ``(n_record + 1,)``; ``deviation_fit`` and ``ntk_change_fit``; for
        the largest width, ``test_outputs``, ``linear_outputs`` ``(n_seeds, m, k)``; and the
        NTK theory ``theta``, ``theta_cross``.
    """
    x_train = np.asarray(V.matrix("x_train", x_train), np.float64)
    x_test = np.asarray(V.matrix("x_test", x_test), np.float64)
    y_train = np.asarray(V.matrix("y_train", y_train), np.float64)
    widths = [V.positive_int("widths", int(w)) for w in np.atleast_1d(widths)]
    n_seeds = V.positive_int("n_seeds", n_seeds)
    _, theta = ntk.nngp_and_ntk(x_train, None, phi, sigma_w2, sigma_b2, depth)
    _, theta_cross = ntk.nngp_and_ntk(x_test, x_train, phi, sigma_w2, sigma_b2, depth)
    theta, theta_cross = np.asarray(theta), np.asarray(theta_cross)
    eta = 1.0 / float(np.linalg.eigvalsh(theta).max())
    t_final = eta * steps
    deviation = np.zeros((n_seeds, len(widths)))
    history = np.zeros((n_seeds, len(widths), n_record + 1))
    for j, width in enumerate(widths):
        run = ntk_nets.train_gd_with_ntk(
            jax.random.fold_in(V.key(key), j),
            x_train,
            y_train,
            x_test,
            phi,
            sigma_w2,
            sigma_b2,
            depth,
            width,
            eta,
            steps,
            n_seeds=n_seeds,
            n_record=n_record,
        )
        linear = np.stack(
            [
                f0 + gp.ntk_mean(theta, theta_cross, y_train - f0_tr, time=t_final)
                for f0, f0_tr in zip(
                    run["initial_test_outputs"], run["initial_train_outputs"], strict=True
                )
            ]
        )
        deviation[:, j] = np.linalg.norm(run["test_outputs"] - linear, axis=(1, 2)) / (
            np.linalg.norm(linear - run["initial_test_outputs"], axis=(1, 2))
        )
        history[:, j] = run["ntk_change"]
    w = np.asarray(widths, np.float64)
    seeds = n_seeds > 1
    return {
        "widths": np.asarray(widths),
        "eta": eta,
        "time": t_final,
        "deviation": deviation,
        "ntk_change": history[:, :, -1],
        "ntk_change_history": history,
        "record_time": eta * run["record_steps"],
        "deviation_fit": fitting.power_law(deviation, w, seeds=seeds),
        "ntk_change_fit": fitting.power_law(history[:, :, -1], w, seeds=seeds),
        "test_outputs": run["test_outputs"],
        "linear_outputs": linear,
        "initial_test_outputs": run["initial_test_outputs"],
        "theta": theta,
        "theta_cross": theta_cross,
    }


def covariance_z_scores(outputs, kernel) -> np.ndarray:
    r"""Sample covariance of network outputs minus the NNGP kernel, in standard errors.

    For ``n`` independent draws of a Gaussian vector with covariance :math:`K`, the sample
    covariance :math:`\hat C_{ab}` has variance :math:`(K_{ab}^2 + K_{aa}K_{bb})/n`; the result
    is :math:`(\hat C - K)/\mathrm{se}`, entry by entry (``(m, m)`` for outputs ``(n, m)``).
    """
    f = np.asarray(V.matrix("outputs", outputs), np.float64)
    k = np.asarray(V.matrix("kernel", kernel), np.float64)
    if k.shape != (f.shape[1], f.shape[1]):
        raise ValueError(f"kernel must have shape {(f.shape[1],) * 2}, got {k.shape}")
    if f.shape[0] < 2:
        raise ValueError("outputs needs at least two draws (rows)")
    se = np.sqrt((k * k + np.outer(np.diag(k), np.diag(k))) / f.shape[0])
    return (np.cov(f.T).reshape(k.shape) - k) / se


def plot_gaussian_check(ax_hist, ax_scatter, outputs, kernel) -> None:
    r"""Histogram of the first output against :math:`\mathcal{N}(0, K_{11})` (``ax_hist``), and
    the first two outputs against the 1-3 standard-deviation ellipses of :math:`K`
    (``ax_scatter``)."""
    f = np.asarray(outputs, np.float64)
    k = np.asarray(kernel, np.float64)
    grid = np.linspace(-4, 4, 200) * np.sqrt(k[0, 0])
    density = np.exp(-(grid**2) / (2 * k[0, 0])) / np.sqrt(2 * np.pi * k[0, 0])
    ax_hist.hist(
        f[:, 0], bins=50, density=True, color="C0", alpha=0.45, label=f"{f.shape[0]:,} networks"
    )
    ax_hist.plot(grid, density, color="k", label="NNGP")
    ax_hist.set_xlabel("output $f(x_1)$")
    ax_hist.set_ylabel("density")
    ax_hist.legend()
    ax_scatter.plot(f[:, 0], f[:, 1], ".", ms=2, alpha=0.35, color="C0")
    evals, evecs = np.linalg.eigh(k[:2, :2])
    t = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(t), np.sin(t)])
    for r in (1, 2, 3):
        e = evecs @ (r * np.sqrt(evals)[:, None] * circle)
        ax_scatter.plot(e[0], e[1], color="k", lw=1)
    ax_scatter.set_xlabel("output $f(x_1)$")
    ax_scatter.set_ylabel("output $f(x_2)$")
    ax_scatter.set_aspect("equal")


def plot_fixed_point_distance(ax, sweeps: dict, angle_index: int) -> None:
    r"""Distance :math:`|c^l - c^*|` against depth (log scale) for :class:`AngleSweep` results.

    Lines: theory at ``angles[angle_index]``; markers: the finite networks' signed distance
    (towards the fixed point), mean over seeds with its standard error, drawn where the networks
    resolve it: both the mean and the theory exceed two standard errors.
    """
    for j, (name, sweep) in enumerate(sweeps.items()):
        theory = sweep.theory[:, angle_index]
        sign = np.sign(sweep.c_star - theory[1]) or 1.0
        layers_ = np.arange(theory.size)
        ax.plot(layers_, np.abs(sweep.c_star - theory), color=f"C{j}", label=name)
        if sweep.simulated is None:
            continue
        dist = sign * (sweep.c_star - sweep.simulated[:, :, angle_index])
        mean = dist.mean(0)
        se = dist.std(0, ddof=1) / np.sqrt(dist.shape[0])
        ok = (mean > 2 * se) & (np.abs(sweep.c_star - theory) > 2 * se)
        ax.errorbar(
            layers_[ok],
            mean[ok],
            yerr=se[ok],
            fmt="o",
            ms=3,
            color=f"C{j}",
            markerfacecolor="white",
        )
    ax.set_yscale("log")
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(r"$|c^l - c^*|$")
    ax.legend()
