r"""The finite random recurrent network of Sompolinsky, Crisanti and Sommers, simulated.

One sampled network of :math:`N` units,

.. math:: \dot x_i = -x_i + \sum_{j=1}^N J_{ij}\,\phi(x_j), \qquad
   J_{ij} \sim \mathcal{N}(0, g^2/N),

integrated by fixed-step fourth-order Runge-Kutta (:func:`simulate`), its largest Lyapunov
exponent by Benettin's method (:func:`lyapunov_from_simulation`), and Amari's discrete-time net
:math:`x^{t+1} = J^t\phi(x^t)` (:func:`simulate_discrete`) with its Lyapunov exponent, for fresh
and for fixed couplings (:func:`discrete_lyapunov_gains`). The ``*_gains`` functions run several
gains on one coupling matrix :math:`J = gZ` (:func:`coupling_matrix`) at the cost of about one:
trajectories (:func:`simulate_gains`), autocorrelations (:func:`autocorrelation_gains`, and over
several windows of one run, :func:`autocorrelation_windows`) and Lyapunov exponents
(:func:`lyapunov_gains`). They check the dynamical mean-field
theory of :mod:`mftlib.dmft` (:func:`~mftlib.scs_delta0`, :func:`~mftlib.scs_autocorrelation`,
:func:`~mftlib.scs_lyapunov`); the autocorrelation and correlation time of the simulated
trajectories are estimated by :func:`mftlib.dmft.autocorrelation_from_trajectories` and
:func:`mftlib.dmft.correlation_time_from_autocorrelation`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dmft
from mftlib.activations import activation


def _rk4_step(x, J, dt, fn):
    def f(y):
        return -y + J @ fn(y)

    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _sample(key, n, g):
    kJ, kx = jax.random.split(key)
    J = g / jnp.sqrt(n) * jax.random.normal(kJ, (n, n), dtype=jnp.float64)
    return J, jax.random.normal(kx, (n,), dtype=jnp.float64)


@partial(jax.jit, static_argnums=(1, 3, 4, 5, 6))
def _simulate(key, n, g, act, n_burn, n_save, every, dt):
    J, x = _sample(key, n, g)

    def steps(y, k):
        return jax.lax.fori_loop(0, k, lambda _, z: _rk4_step(z, J, dt, act.fn), y)

    def save(y, _):
        y = steps(y, every)
        return y, y

    return jax.lax.scan(save, steps(x, n_burn), None, length=n_save)[1]


def _check_key_n_g(key, n, g) -> int:
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a jax PRNG key (jax.random.key), got {type(key).__name__}")
    V.real("g", g, lo=0.0, lo_open=True)
    return V.positive_int("n", n)


def _check_sim(key, n, g, t_max, dt, phi, t_burn, save_dt):
    n = _check_key_n_g(key, n, g)
    for name, value in (("t_max", t_max), ("dt", dt), ("save_dt", save_dt)):
        V.real(name, value, lo=0.0, lo_open=True)
    V.real("t_burn", t_burn, lo=0.0)
    every = max(1, int(round(save_dt / dt)))
    if abs(every * dt - save_dt) > 1e-9 * save_dt:
        raise ValueError(f"save_dt must be a multiple of dt, got save_dt={save_dt}, dt={dt}")
    return n, activation(phi), every


def simulate(key, n, g, t_max, dt=0.1, phi="tanh", t_burn=50.0, save_dt=0.5) -> np.ndarray:
    r"""Trajectories of one sampled network :math:`\dot x = -x + J\phi(x)`, :math:`J_{ij}\sim
    \mathcal{N}(0, g^2/N)`, by fixed-step fourth-order Runge-Kutta.

    The key draws :math:`J` and :math:`x(0) \sim \mathcal{N}(0, I)`. The first ``t_burn`` time
    units are discarded (the transient); the state is then saved every ``save_dt`` for ``t_max``.
    Step size: over a horizon of 5 time units (before chaos amplifies differences) ``dt = 0.1``
    and ``dt = 0.05`` agree to about 1e-6 (``tests/test_dmft.py``), so the discretisation error
    is far below the statistical errors of any estimate taken from the trajectories.

    Returns:
        array ``(round(t_max / save_dt), n)``, float64.
    """
    n, act, every = _check_sim(key, n, g, t_max, dt, phi, t_burn, save_dt)
    n_save = max(1, int(round(t_max / save_dt)))
    x = _simulate(key, n, jnp.float64(g), act, int(round(t_burn / dt)), n_save, every, dt)
    return np.asarray(x)


@partial(jax.jit, static_argnums=(1, 3, 4, 5, 6))
def _benettin(key, n, g, act, n_burn, n_renorm, every, dt):
    J, x = _sample(key, n, g)
    v = jax.random.normal(jax.random.fold_in(key, 1), (n,), dtype=jnp.float64)

    def tangent(_, state):  # the exact derivative of the RK4 map: same discretisation as x
        return jax.jvp(lambda z: _rk4_step(z, J, dt, act.fn), (state[0],), (state[1],))

    def block(state, _):
        y, w = jax.lax.fori_loop(0, every, tangent, state)
        norm = jnp.linalg.norm(w)
        return (y, w / norm), jnp.log(norm)

    state = jax.lax.scan(block, (x, v / jnp.linalg.norm(v)), None, length=n_burn)[0]
    return jax.lax.scan(block, state, None, length=n_renorm)[1]


def lyapunov_from_simulation(
    key, n, g, t_max, dt=0.1, phi="tanh", t_burn=50.0, renorm_dt=1.0
) -> float:
    r"""Largest Lyapunov exponent of one sampled network, by Benettin's method.

    A tangent vector evolves with the Jacobian of the RK4 step (``jax.jvp``) and is renormalised
    every ``renorm_dt``; the exponent is the summed log growth over ``t_max`` divided by
    ``t_max``. State and tangent vector both run through ``t_burn`` first (discarded), so that
    the state reaches the attractor and the tangent vector aligns with the leading direction.
    """
    n, act, every = _check_sim(key, n, g, t_max, dt, phi, t_burn, renorm_dt)
    n_renorm = max(2, int(round(t_max / renorm_dt)))
    n_burn = int(round(t_burn / renorm_dt))
    logs = _benettin(key, n, jnp.float64(g), act, n_burn, n_renorm, every, dt)
    return float(jnp.mean(logs) / (every * dt))


@partial(jax.jit, static_argnums=(1, 3, 4, 5))
def _discrete(key, n, g, act, steps, fresh, q0):
    kJ, kx = jax.random.split(key)
    x = jnp.sqrt(q0) * jax.random.normal(kx, (n,), dtype=jnp.float64)
    J0 = g / jnp.sqrt(n) * jax.random.normal(kJ, (n, n), dtype=jnp.float64)

    def step(y, k):
        J = g / jnp.sqrt(n) * jax.random.normal(k, (n, n), dtype=jnp.float64) if fresh else J0
        y = J @ act.fn(y)
        return y, jnp.mean(y * y)

    keys = jax.random.split(jax.random.fold_in(key, 7), steps)
    return jnp.concatenate([jnp.mean(x * x)[None], jax.lax.scan(step, x, keys)[1]])


def simulate_discrete(key, n, g, steps, q0=1.0, phi="tanh", fresh=True) -> np.ndarray:
    r"""Amari's discrete-time random net :math:`x^{t+1} = J^t \phi(x^t)`, :math:`J^t_{ij} \sim
    \mathcal{N}(0, g^2/N)`: the population variance :math:`q^t = \frac1N\sum_i (x_i^t)^2`.

    With ``fresh=True`` a new :math:`J^t` is drawn at every step: the annealed net, which is a
    deep feed-forward network of width ``n`` with :math:`\sigma_w^2 = g^2`, :math:`\sigma_b^2 = 0`.
    With ``fresh=False`` one :math:`J` is kept (the quenched recurrent net). For :math:`N \to
    \infty` both follow Amari's macroscopic equation, the length map :math:`q^{t+1} =
    g^2\,\mathbb{E}[\phi(\sqrt{q^t} z)^2]` (Amari 1972; :func:`mftlib.length_map`).

    Returns ``(steps + 1,)``: :math:`q^0, \dots, q^{steps}`; :math:`x^0 \sim \mathcal{N}(0, q_0 I)`.
    """
    n = _check_key_n_g(key, n, g)
    steps = V.positive_int("steps", steps)
    V.variance("q0", q0, positive=True)
    act = activation(phi)
    return np.asarray(_discrete(key, n, jnp.float64(g), act, steps, bool(fresh), jnp.float64(q0)))


# --- several gains on one coupling matrix ---------------------------------------------------------
# A network at gain g has J = g Z with Z_ij ~ N(0, 1/N). The functions below run k gains at once on
# the same Z and the same initial state: the k states form the columns of an (N, k) array, so one
# pass over Z (a matrix product) serves every gain. With a single gain they reproduce
# :func:`simulate` and :func:`lyapunov_from_simulation` (same key, same draws) to rounding.


def coupling_matrix(key, n, g=1.0) -> np.ndarray:
    r"""The coupling matrix :math:`J = gZ`, :math:`Z_{ij} \sim \mathcal{N}(0, 1/N)`, that
    :func:`simulate`, :func:`lyapunov_from_simulation`, :func:`simulate_gains`,
    :func:`lyapunov_gains` and (quenched) :func:`discrete_lyapunov_gains` draw from ``key``: its
    spectrum can be set beside the dynamics of the same network.

    Returns:
        array ``(n, n)``, float64.
    """
    n = _check_key_n_g(key, n, g)
    return float(g) * np.asarray(_draw(key, n, 1)[0])


def _check_gains(gains) -> np.ndarray:
    V.real("gains", gains, lo=0.0, lo_open=True)
    arr = np.asarray(gains, dtype=np.float64)
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"gains must be a positive scalar or a non-empty 1-D array, got {gains!r}")
    return arr


def _draw(key, n, k):
    kJ, kx = jax.random.split(key)
    Z = jax.random.normal(kJ, (n, n), dtype=jnp.float64) / jnp.sqrt(n)
    x = jax.random.normal(kx, (n,), dtype=jnp.float64)
    return Z, jnp.broadcast_to(x[:, None], (n, k))


def _rk4_gains(x, Z, gains, dt, fn):
    def f(y):
        return -y + (Z @ fn(y)) * gains

    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


@partial(jax.jit, static_argnums=(1, 3, 4, 5, 6, 7))
def _simulate_gains(key, n, gains, act, n_burn, n_save, every, dt):
    Z, x = _draw(key, n, gains.shape[0])

    def steps(y, k):
        return jax.lax.fori_loop(0, k, lambda _, z: _rk4_gains(z, Z, gains, dt, act.fn), y)

    def save(y, _):
        y = steps(y, every)
        return y, y

    return jax.lax.scan(save, steps(x, n_burn), None, length=n_save)[1]


def simulate_gains(
    key, n, gains, t_max, dt=0.1, phi="tanh", t_burn=50.0, save_dt=0.5
) -> np.ndarray:
    r"""Trajectories of the networks :math:`\dot x = -x + g_k Z\phi(x)` for several gains
    :math:`g_k` on one sampled :math:`Z_{ij} \sim \mathcal{N}(0, 1/N)`, by the RK4 scheme of
    :func:`simulate`.

    All gains share :math:`Z` and :math:`x(0) \sim \mathcal{N}(0, I)` (common random numbers:
    the curves over :math:`g` of one seed are smooth, and each gain on its own is exactly a
    network of :func:`simulate`, drawn from the same key). Running the gains as the columns of
    one state costs about as much as one gain when the matrix-vector products are limited by
    memory bandwidth.

    Returns:
        array ``(round(t_max / save_dt), n, len(gains))``, float64 (``(..., n, 1)`` for a scalar).

    Raises:
        ValueError: a gain not finite and positive, ``gains`` not scalar or 1-D; as
            :func:`simulate` for the other arguments.
    """
    g = np.atleast_1d(_check_gains(gains))
    n, act, every = _check_sim(key, n, 1.0, t_max, dt, phi, t_burn, save_dt)
    n_save = max(1, int(round(t_max / save_dt)))
    x = _simulate_gains(key, n, jnp.asarray(g), act, int(round(t_burn / dt)), n_save, every, dt)
    return np.asarray(x)


@partial(jax.jit, static_argnums=(1, 3, 4, 5, 6, 7))
def _benettin_gains(key, n, gains, act, n_burn, n_renorm, every, dt):
    Z, x = _draw(key, n, gains.shape[0])
    v = jax.random.normal(jax.random.fold_in(key, 1), (n,), dtype=jnp.float64)
    w = jnp.broadcast_to((v / jnp.linalg.norm(v))[:, None], x.shape)

    def tangent(_, state):
        return jax.jvp(lambda z: _rk4_gains(z, Z, gains, dt, act.fn), (state[0],), (state[1],))

    def block(state, _):
        y, u = jax.lax.fori_loop(0, every, tangent, state)
        norm = jnp.linalg.norm(u, axis=0)
        return (y, u / norm), jnp.log(norm)

    state = jax.lax.scan(block, (x, w), None, length=n_burn)[0]
    return jax.lax.scan(block, state, None, length=n_renorm)[1]


def lyapunov_gains(
    key, n, gains, t_max, dt=0.1, phi="tanh", t_burn=50.0, renorm_dt=1.0
) -> np.ndarray:
    r"""Largest Lyapunov exponent of :math:`\dot x = -x + g_k Z\phi(x)` for several gains on one
    sampled :math:`Z`, by Benettin's method as in :func:`lyapunov_from_simulation`.

    Each column's tangent vector evolves with the Jacobian of its RK4 step (``jax.jvp``) and is
    renormalised every ``renorm_dt``; the exponent is its summed log growth over ``t_max``
    (after ``t_burn``, discarded) divided by ``t_max``.

    Returns:
        array of the shape of ``gains``: the exponents per unit time.
    """
    g = _check_gains(gains)
    n, act, every = _check_sim(key, n, 1.0, t_max, dt, phi, t_burn, renorm_dt)
    n_renorm = max(2, int(round(t_max / renorm_dt)))
    n_burn = int(round(t_burn / renorm_dt))
    logs = _benettin_gains(key, n, jnp.asarray(np.atleast_1d(g)), act, n_burn, n_renorm, every, dt)
    return np.asarray(jnp.mean(logs, axis=0) / (every * dt)).reshape(g.shape)


# --- the discrete-time net's largest Lyapunov exponent --------------------------------------------


@partial(jax.jit, static_argnums=(1, 3, 4, 5, 6))
def _discrete_benettin(key, n, gains, act, n_burn, n_steps, fresh, sigma_b):
    # The same draws as the continuous-time simulators: Z and x(0) from split(key), the tangent
    # vector from fold_in(key, 1); the quenched bias from fold_in(key, 2).
    Z, x = _draw(key, n, gains.shape[0])
    v = jax.random.normal(jax.random.fold_in(key, 1), (n,), dtype=jnp.float64)
    w = jnp.broadcast_to((v / jnp.linalg.norm(v))[:, None], x.shape)
    bias = jax.random.normal(jax.random.fold_in(key, 2), (n, 1), dtype=jnp.float64)
    base = jax.random.fold_in(key, 11)

    def step(state, t):
        y, u = state
        a, d = act.fn(y), act.derivative(y) * u  # phi(x^t) and diag(phi'(x^t)) u^t
        if fresh:
            # A fresh J^t is independent of (a, d), so each row gives the pair ((J a)_i, (J d)_i)
            # independently, a centred Gaussian with covariance (1/N) [[a.a, a.d], [a.d, d.d]]
            # (times g^2): drawn from two standard normals instead of N^2 weights. The normals
            # (and the fresh bias) are shared by the gains, as Z is in the quenched net.
            z = jax.random.normal(jax.random.fold_in(base, t), (3, n, 1), dtype=jnp.float64)
            aa, ad, dd = (jnp.sum(p * q, axis=0) for p, q in ((a, a), (a, d), (d, d)))
            proj = jnp.where(aa > 0.0, ad / jnp.where(aa > 0.0, aa, 1.0), 0.0)
            rest = jnp.sqrt(jnp.maximum(dd - proj * ad, 0.0))
            za = jnp.sqrt(aa / n) * z[0]
            zd = (proj * jnp.sqrt(aa) * z[0] + rest * z[1]) / jnp.sqrt(n)
            y_new, u_new = gains * za + sigma_b * z[2], gains * zd
        else:
            y_new, u_new = gains * (Z @ a) + sigma_b * bias, gains * (Z @ d)
        norm = jnp.linalg.norm(u_new, axis=0)
        return (y_new, u_new / norm), jnp.log(norm)

    state = jax.lax.scan(step, (x, w), jnp.arange(n_burn))[0]
    return jax.lax.scan(step, state, jnp.arange(n_burn, n_burn + n_steps))[1]


def discrete_lyapunov_gains(
    key, n, gains, steps, fresh=True, phi="tanh", sigma_b2=0.0, burn=200
) -> np.ndarray:
    r"""Largest Lyapunov exponent, per step, of the discrete-time random net
    :math:`x^{t+1} = J^t\phi(x^t) + \sigma_b b^t`, :math:`J^t_{ij} \sim \mathcal{N}(0, g^2/N)`,
    :math:`b^t \sim \mathcal{N}(0, I)`, for several gains, by Benettin's method.

    A tangent vector follows :math:`u^{t+1} = J^t \operatorname{diag}(\phi'(x^t))\, u^t` and is
    renormalised every step; the exponent is its mean log growth over ``steps`` steps after
    ``burn`` (discarded), in which the state reaches its stationary law and the tangent vector
    its leading direction.

    ``fresh=False``: the quenched recurrent net, one :math:`J = gZ` and one :math:`b` for all
    steps, shared by the gains (:math:`Z` is :func:`coupling_matrix` of the same key).
    ``fresh=True``: the annealed net, new :math:`J^t` and :math:`b^t` at every step, that is, a
    deep feed-forward network of width ``n`` with :math:`\sigma_w^2 = g^2` at depth ``t``.
    Since :math:`J^t` is independent of :math:`(\phi(x^t), \phi'(x^t) u^t)`, the rows of
    :math:`J^t [\phi(x^t), \phi'(x^t)u^t]` are independent bivariate Gaussians, sampled exactly
    from their 2 x 2 covariance at :math:`O(N)` cost per step instead of drawing :math:`N^2`
    weights. The theory is :func:`mftlib.dmft.discrete_lyapunov`,
    :math:`\lambda = \frac12\ln\chi_1`.

    Returns:
        array of the shape of ``gains``: exponents per step (natural log).

    Raises:
        TypeError: ``key`` not a PRNG key; ``n``, ``steps`` or ``burn`` not ints.
        ValueError: a gain not finite and positive, a negative ``sigma_b2``, ``n`` or ``steps``
            below 1, a negative ``burn``.
    """
    g = _check_gains(gains)
    n = _check_key_n_g(key, n, 1.0)
    steps = V.positive_int("steps", steps)
    burn = V.nonneg_int("burn", burn)
    V.variance("sigma_b2", sigma_b2)
    act = activation(phi)
    logs = _discrete_benettin(
        key,
        n,
        jnp.asarray(np.atleast_1d(g)),
        act,
        burn,
        steps,
        bool(fresh),
        float(np.sqrt(sigma_b2)),
    )
    return np.asarray(jnp.mean(logs, axis=0)).reshape(g.shape)


def autocorrelation_gains(
    key, n, gains, t_max, max_lag, dt=0.1, phi="tanh", t_burn=50.0, save_dt=0.5
) -> np.ndarray:
    r"""Autocorrelations :math:`\Delta(k\,\delta t)`, ``k = 0..max_lag``, of the networks of
    :func:`simulate_gains` (one per gain), estimated by
    :func:`mftlib.dmft.autocorrelation_from_trajectories` from ``t_max`` time units saved every
    :math:`\delta t` = ``save_dt`` after ``t_burn``.

    Returns:
        array ``(len(gains), max_lag + 1)`` (``(1, max_lag + 1)`` for a scalar gain).
    """
    x = simulate_gains(key, n, gains, t_max, dt, phi, t_burn, save_dt)
    return np.stack(
        [dmft.autocorrelation_from_trajectories(x[:, :, k], max_lag) for k in range(x.shape[2])]
    )


def autocorrelation_windows(
    key, n, gains, windows, max_lag, dt=0.1, phi="tanh", save_dt=0.5
) -> dict[str, np.ndarray]:
    r"""Autocorrelations of one run of the networks of :func:`simulate_gains`, estimated over
    several time windows, with the population variance along the whole run.

    The run starts at :math:`t = 0` from :math:`x(0) \sim \mathcal{N}(0, I)` with no burn-in and
    lasts until the latest window ends; ``windows`` is a sequence of ``(t_start, t_stop)``
    (time units from :math:`t = 0`). Estimating :math:`\Delta(\tau)` from windows of one run
    separates what longer runs would change (compare nested windows ``(50, 50 + T)`` for
    growing ``T``) from what a longer burn-in would change (compare ``(50, 50 + T)`` with
    ``(50 + T, 50 + 2T)``) at no extra simulation.

    Returns:
        ``"ac"``: ``(len(windows), len(gains), max_lag + 1)``, the autocorrelation of each
        window (:func:`mftlib.dmft.autocorrelation_from_trajectories`, lags ``k * save_dt``);
        ``"q"``: ``(n_saved, len(gains))``, :math:`\frac1N\sum_i x_i(t)^2` at the saved times
        ``t = save_dt, 2 save_dt, ...``.

    Raises:
        ValueError: a window not ``0 <= t_start < t_stop``, or shorter than ``max_lag + 1``
            saved times; as :func:`simulate_gains` for the other arguments.
    """
    max_lag = V.nonneg_int("max_lag", max_lag)
    spans = np.asarray(windows, dtype=np.float64)
    if spans.ndim != 2 or spans.shape[1] != 2 or spans.shape[0] == 0:
        raise ValueError(f"windows must be a sequence of (t_start, t_stop), got {windows!r}")
    V.real("windows", spans, lo=0.0)
    if np.any(spans[:, 1] <= spans[:, 0]):
        raise ValueError(f"windows must have t_start < t_stop, got {windows!r}")
    x = simulate_gains(key, n, gains, float(spans[:, 1].max()), dt, phi, 0.0, save_dt)
    # saved index i holds t = (i + 1) save_dt; a window keeps t_start < t <= t_stop
    bounds = np.rint(spans / save_dt).astype(int)
    ac = []
    for lo, hi in bounds:
        if hi - lo <= max_lag:
            raise ValueError(
                f"windows must hold more than max_lag = {max_lag} saved times, got "
                f"{hi - lo} in ({lo * save_dt:g}, {hi * save_dt:g})"
            )
        seg = x[lo:hi]
        ac.append(
            [
                dmft.autocorrelation_from_trajectories(seg[:, :, k], max_lag)
                for k in range(x.shape[2])
            ]
        )
    return {"ac": np.asarray(ac), "q": np.mean(x * x, axis=1)}
