r"""The finite random recurrent network of Sompolinsky, Crisanti and Sommers, simulated.

One sampled network of :math:`N` units,

.. math:: \dot x_i = -x_i + \sum_{j=1}^N J_{ij}\,\phi(x_j), \qquad
   J_{ij} \sim \mathcal{N}(0, g^2/N),

integrated by fixed-step fourth-order Runge-Kutta (:func:`simulate`), its largest Lyapunov
exponent by Benettin's method (:func:`lyapunov_from_simulation`), and Amari's discrete-time net
:math:`x^{t+1} = J^t\phi(x^t)` (:func:`simulate_discrete`). They check the dynamical mean-field
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
