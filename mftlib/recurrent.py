r"""Mean-field theory of recurrent networks: vanilla RNN, minimalRNN, GRU and LSTM.

A recurrent step is a map on the covariance of the hidden state *through time*, with the input's
covariance :math:`R_t` injected at every step (Chen et al. 2018; Gilboa et al. 2019; the
equations below are derived here, in this library's notation). For two input sequences
:math:`a, b` run through the same random network of width :math:`N`, the state's empirical
covariance :math:`Q^{ab}_t = N^{-1} h^a_t\cdot h^b_t` obeys, as
:math:`N\to\infty`, a deterministic recursion :math:`Q_t = F(Q_{t-1}; R_t)`:

* **vanilla RNN** :math:`e_t = W\phi(e_{t-1}) + U x_t + b` (the state is the pre-activation
  :math:`e`; :math:`W_{ij}\sim\mathcal N(0,\sigma_w^2/N)`, :math:`U_{ij}\sim\mathcal
  N(0,\sigma_u^2/d)`, :math:`b_i\sim\mathcal N(0,\sigma_b^2)`, shared over time):

  .. math:: \Sigma_t = \sigma_w^2\,\mathbb E_{u\sim\mathcal N(0,\Sigma_{t-1})}[\phi(u)\phi(u)^\top]
     + \sigma_u^2 R_t + \sigma_b^2,

  the dense layer's map (:func:`mftlib.covariance_map`) with the input as an extra bias.
  With identical inputs (:math:`R_t = r\,\mathbf 1\mathbf 1^\top`) its fixed point is that of a
  deep feed-forward net with :math:`\sigma_b^2 \to \sigma_b^2 + \sigma_u^2 r`.
* **minimalRNN** (Chen et al. 2018) :math:`u_t = \sigma(W h_{t-1} + U z_t + b)`,
  :math:`h_t = u_t\odot h_{t-1} + (1-u_t)\odot z_t`, gate bias :math:`b_i\sim\mathcal
  N(\mu_b,\sigma_b^2)`, input :math:`z_t` with covariance :math:`R_t`:

  .. math:: Q^{ab}_t = \mathbb E[u^a u^b]\,Q^{ab}_{t-1} + \mathbb E[(1-u^a)(1-u^b)]\,R^{ab}_t,

  with gate pre-activations Gaussian of mean :math:`\mu_b` and covariance
  :math:`\sigma_w^2 Q_{t-1} + \sigma_u^2 R_t + \sigma_b^2`.
* **GRU** (Gilboa et al. 2019; update gate :math:`u`, reset gate :math:`r`)
  :math:`h_t = u_t\odot h_{t-1} + (1-u_t)\odot\tanh(W_h(r_t\odot h_{t-1}) + U_h x_t + b_h)`:

  .. math:: Q^{ab}_t = \mathbb E[u^a u^b]\,Q^{ab}_{t-1}
     + \mathbb E[(1-u^a)(1-u^b)]\,\mathbb E[\tanh\tilde e^a\tanh\tilde e^b],\qquad
     \tilde\Sigma = \sigma_w^2\,\mathbb E[r^a r^b]\,Q^{ab}_{t-1} + \sigma_u^2 R_t + \sigma_b^2.
* **LSTM** (Gilboa et al. 2019; forget, input, output gates :math:`f, i, o`, candidate :math:`g`)
  :math:`c_t = f_t\odot c_{t-1} + i_t\odot g_t`, :math:`h_t = o_t\odot\tanh c_t`: a map on the
  pair (cell covariance :math:`C`, hidden covariance :math:`Q`),

  .. math:: C^{ab}_t = \mathbb E[f^a f^b]\,C^{ab}_{t-1} + \mathbb E[i^a i^b]\,
     \mathbb E[\tanh e^a\tanh e^b],\qquad
     Q^{ab}_t = \mathbb E[o^a o^b]\,\mathbb E_{c\sim\mathcal N(0, C_t)}[\tanh c^a\tanh c^b],

  with the cell state treated as Gaussian (:func:`lstm_map`).

For the GRU and the LSTM every variance may also be set per gate, as Gilboa et al. choose them
(:func:`gate_variances`): each gate's moments are then taken at its own pre-activation covariance
:math:`E_k = \sigma_{w,k}^2 Q + \sigma_{u,k}^2 R + \sigma_{b,k}^2`.

The gated maps factorise the expectation of a gate times the state and drop the cross term
between the state and the new content written into it. Both are exact at infinite width when the
recurrent weights are drawn afresh at every step (the annealed network); with weights tied over
time the GRU's and the LSTM's candidates become correlated with the state (measured by
:func:`mftlib.recurrent_experiments.state_candidate_correlation`), while the minimalRNN, whose new
content is its input, has no such cross term. Two sequences
that differed once and then receive identical inputs relax to the fixed point :math:`c^* = 1`
(in the ordered regime) with multiplier :math:`\chi_c = \partial Q^{ab}_t/\partial Q^{ab}_{t-1}`
at :math:`Q^{ab} = Q^*`; their difference survives for the time scale
:math:`\xi = -1/\log\chi_c` (:func:`mftlib.dynamics.depth_scale`), the memory time of Chen et al.
For the minimalRNN (Price's theorem, :math:`\partial_{q_{12}}\mathbb E[fg]=\mathbb E[f'g']`)

.. math:: \chi_c = \mathbb E[u^2] + \sigma_w^2\,\mathbb E[u'^2]\,(Q^* + r),

which tends to 1 as the gate bias :math:`\mu_b\to\infty` *for every* :math:`\sigma_w^2`: gating
gives a long memory without fine tuning. All functions take variances, not standard deviations.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mftlib import _validate as V
from mftlib import dense, dynamics, gaussian
from mftlib.activations import Activation, activation

Array = jax.Array


def _f64(x) -> Array:
    return jnp.asarray(x, dtype=jnp.float64)


def _check(**kw) -> None:
    for name, value in kw.items():
        if name.startswith("mu"):
            V.real(name, value)
        else:
            V.variance(name, value)


def _sym_pair(name: str, value) -> None:
    V.covariance(name, value)
    if np.shape(value) != (2, 2):
        raise ValueError(f"{name} must be a 2 x 2 covariance, got shape {np.shape(value)}")


# --- per-gate variances ---------------------------------------------------------------------------

#: Gate names of the GRU (update, reset, candidate) and of the LSTM (forget, input, output,
#: candidate), in the order of per-gate tuples.
GRU_GATES = ("u", "r", "h")
LSTM_GATES = ("f", "i", "o", "g")


def gate_variances(name: str, value, gates: tuple[str, ...]) -> np.ndarray:
    r"""One variance per gate, from a scalar (shared by all gates), a sequence in the order
    ``gates`` or a mapping from every gate name to its variance.

    Gilboa et al. (2019) choose the weight variance :math:`\sigma_{w,k}^2`, input variance
    :math:`\sigma_{u,k}^2` and bias variance :math:`\sigma_{b,k}^2` of every gate :math:`k`
    separately; the GRU's gates are ``GRU_GATES`` ``("u", "r", "h")`` (update, reset,
    candidate), the LSTM's ``LSTM_GATES`` ``("f", "i", "o", "g")``.

    Returns:
        float64 array ``(len(gates),)``; ``ValueError`` on a wrong length, unknown or missing
        gate names, or a negative or non-finite variance.
    """
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(gates))
        missing = [g for g in gates if g not in value]
        if unknown or missing:
            raise ValueError(
                f"{name} as a mapping needs exactly the gates {gates}; "
                f"unknown {unknown}, missing {missing}"
            )
        value = [value[g] for g in gates]
    arr = np.asarray(V.variance(name, value), dtype=np.float64)
    if arr.ndim == 0:
        return np.full(len(gates), float(arr))
    if arr.shape != (len(gates),):
        raise ValueError(
            f"{name} must be a scalar, {len(gates)} values (gates {gates}) or a mapping, "
            f"got shape {arr.shape}"
        )
    return arr


def _per_gate(gates, **kw) -> tuple:
    """:func:`gate_variances` of every keyword, as float64 JAX arrays."""
    return tuple(_f64(gate_variances(k, v, gates)) for k, v in kw.items())


def _broadcast(n: int, *xs) -> tuple:
    """Per-gate parameters broadcast to ``(n,)`` (a scalar means one value for all gates)."""
    return tuple(jnp.broadcast_to(jnp.asarray(x, jnp.float64), (n,)) for x in xs)


# --- vanilla RNN --------------------------------------------------------------------------------


def vanilla_map(phi, sigma_w2, sigma_u2, sigma_b2, Sigma, R) -> Array:
    r"""One step of the vanilla RNN's covariance map,
    :math:`\Sigma \mapsto \sigma_w^2\mathbb E[\phi(u)\phi(u)^\top] + \sigma_u^2 R + \sigma_b^2`.

    ``Sigma``: covariance of the pre-activations of ``n`` sequences at time ``t-1``; ``R``: the
    ``n x n`` covariance :math:`x^a_t\cdot x^b_t/d` of their inputs at time ``t``.
    """
    act = activation(phi)
    _check(sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2)
    V.covariance("Sigma", Sigma)
    V.covariance("R", R)
    if np.shape(Sigma) != np.shape(R):
        raise ValueError(
            f"Sigma and R must have the same shape, got {np.shape(Sigma)}, {np.shape(R)}"
        )
    return _vanilla_map_jit(
        act, _f64(sigma_w2), _f64(sigma_u2), _f64(sigma_b2), _f64(Sigma), _f64(R)
    )


def _vanilla_map(act: Activation, sw, su, sb, S, R):
    return sw * act.moment_matrix(S) + su * R + sb


_vanilla_map_jit = jax.jit(_vanilla_map, static_argnums=0)


def vanilla_fixed_point(phi, sigma_w2, sigma_u2, sigma_b2, r: float = 1.0) -> dict:
    r"""Fixed point and time scales of the vanilla RNN driven by identical inputs of variance r.

    The recursion is the deep feed-forward one with effective bias
    :math:`\sigma_b^2 + \sigma_u^2 r`, so :func:`mftlib.phase_diagram` gives
    :math:`q^*`, :math:`c^*` (1 in the ordered phase), :math:`\chi_c` (= :math:`\chi_1` there) and
    the memory time :math:`\xi = \xi_c = -1/\log\chi_c` as well as :math:`\xi_q`.

    Returns:
        dict of float64 scalars ``q_star, c_star, chi_c, xi_q, xi_c``.
    """
    _check(sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2, r=r)
    out = vanilla_timescales(phi, [sigma_w2], [sigma_b2], sigma_u2, r)
    return {k: out[k][0, 0] for k in ("q_star", "c_star", "chi_c", "xi_q", "xi_c")}


def vanilla_timescales(phi, sigma_w2_grid, sigma_b2_grid, sigma_u2, r: float = 1.0) -> dict:
    r"""The vanilla RNN's fixed point and time scales on a grid of
    :math:`(\sigma_w^2, \sigma_b^2)` (axis 0: :math:`\sigma_w^2`), identical inputs of variance r.

    Uses :func:`mftlib.phase_diagram` at effective bias :math:`\sigma_b^2 + \sigma_u^2 r`.
    """
    _check(sigma_u2=sigma_u2, r=r)
    V.grid("sigma_b2_grid", sigma_b2_grid)
    V.variance("sigma_b2_grid", sigma_b2_grid)
    eff = np.asarray(sigma_b2_grid, np.float64) + float(sigma_u2) * float(r)
    return dense.phase_diagram(phi, np.asarray(sigma_w2_grid, np.float64), eff)


def vanilla_trajectory(phi, sigma_w2, sigma_u2, sigma_b2, Sigma0, Rs) -> Array:
    """Iterate :func:`vanilla_map` with the input covariances ``Rs`` (shape ``(T, n, n)``):
    returns ``(T+1, n, n)``, starting with ``Sigma0``."""
    act = activation(phi)
    _check(sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2)
    V.covariance("Sigma0", Sigma0)
    V.matrix("Rs", Rs, ndim=3)
    return _vanilla_traj(
        act, _f64(sigma_w2), _f64(sigma_u2), _f64(sigma_b2), _f64(Sigma0), _f64(Rs)
    )


@partial(jax.jit, static_argnums=0)
def _vanilla_traj(act, sw, su, sb, S0, Rs):
    return dynamics.iterate_driven(lambda S, R: _vanilla_map(act, sw, su, sb, S, R), S0, Rs)


# --- gates ----------------------------------------------------------------------------------------


def _gate_moments(mu, q11, q22, q12):
    """E[u^a u^b], E[u^a], E[u^b] for u = sigmoid(mu + e), e ~ N(0, [[q11, q12], [q12, q22]])."""
    s = lambda x: jax.nn.sigmoid(mu + x)  # noqa: E731
    return (
        gaussian.expect2(s, s, q11, q22, q12),
        gaussian.expect1(s, q11),
        gaussian.expect1(s, q22),
    )


def _gate_products(mu, E):
    """2 x 2 matrices E[u u^T] and E[(1-u)(1-u)^T] for gate pre-activation covariance E."""

    uu, m1, m2 = _gate_moments(mu, E[0, 0], E[1, 1], E[0, 1])
    sq = lambda q: gaussian.expect1(lambda x: jax.nn.sigmoid(mu + x) ** 2, q)  # noqa: E731
    G = jnp.array([[sq(E[0, 0]), uu], [uu, sq(E[1, 1])]])
    m = jnp.array([m1, m2])
    H = 1.0 - m[:, None] - m[None, :] + G
    return G, H


# --- minimalRNN -----------------------------------------------------------------------------------


def minimal_map(sigma_w2, sigma_u2, sigma_b2, mu_b, Q, R) -> Array:
    r"""One step of the minimalRNN's map on the 2 x 2 state covariance ``Q`` with input
    covariance ``R``: :math:`Q' = \mathbb E[uu^\top]\odot Q + \mathbb E[(1-u)(1-u)^\top]\odot R`."""
    _check(sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2, mu_b=mu_b)
    _sym_pair("Q", Q)
    _sym_pair("R", R)
    return _minimal_map_jit(*map(_f64, (sigma_w2, sigma_u2, sigma_b2, mu_b, Q, R)))


def _minimal_map(sw, su, sb, mu, Q, R):
    G, H = _gate_products(mu, sw * Q + su * R + sb)
    return G * Q + H * R


_minimal_map_jit = jax.jit(_minimal_map)


def minimal_trajectory(sigma_w2, sigma_u2, sigma_b2, mu_b, Q0, Rs) -> Array:
    """Iterate :func:`minimal_map` with input covariances ``Rs`` (``(T, 2, 2)``).

    Returns ``(T+1, 2, 2)``, starting with ``Q0``."""
    _check(sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2, mu_b=mu_b)
    _sym_pair("Q0", Q0)
    V.matrix("Rs", Rs, ndim=3)
    return _minimal_traj(tuple(map(_f64, (sigma_w2, sigma_u2, sigma_b2, mu_b))), _f64(Q0), _f64(Rs))


@jax.jit
def _minimal_traj(p, Q0, Rs):
    return dynamics.iterate_driven(lambda Q, R: _minimal_map(*p, Q, R), Q0, Rs)


def _sig_sq(mu, q):
    return gaussian.expect1(lambda x: jax.nn.sigmoid(mu + x) ** 2, q)


def _omsig_sq(mu, q):
    return gaussian.expect1(lambda x: (1.0 - jax.nn.sigmoid(mu + x)) ** 2, q)


def _dsig_sq(mu, q):
    return gaussian.expect1(lambda x: (jax.nn.sigmoid(mu + x) * jax.nn.sigmoid(-mu - x)) ** 2, q)


@jax.jit
def _minimal_quantities(sw, su, sb, mu, r):
    def length(Q):
        q = sw * Q + su * r + sb
        return _sig_sq(mu, q) * Q + _omsig_sq(mu, q) * r

    # Q* in [0, r]: h is a convex combination of inputs, and u^2 + (1-u)^2 <= 1.
    root = dynamics.find_root(lambda Q: length(Q) - Q, 0.0, jnp.maximum(r, 1e-300))
    Q = jnp.where(r > 0, root.value, 0.0)
    q = sw * Q + su * r + sb
    chi_c = _sig_sq(mu, q) + sw * _dsig_sq(mu, q) * (Q + r)
    return _fixed_point_result(chi_c, _slope(length, Q), q_star=Q)


def _slope(F, x):
    """dF/dx of a scalar map at x (:func:`mftlib.dynamics.linearise`)."""
    return dynamics.linearise(F, x)[0, 0]


def _fixed_point_result(chi_c, chi_q, **stars) -> dict:
    r"""The fixed point's values ``stars``, the slopes and their time scales
    :math:`\xi = -1/\log\chi` (shared by the gated cells' fixed-point functions)."""
    return {
        **stars,
        "chi_c": chi_c,
        "chi_q": chi_q,
        "xi_c": dynamics.depth_scale(chi_c),
        "xi_q": dynamics.depth_scale(chi_q),
    }


def minimal_fixed_point(sigma_w2, sigma_u2, sigma_b2, mu_b, r: float = 1.0) -> dict:
    r"""The minimalRNN's fixed point :math:`Q^*` for identical inputs of variance r, and its time
    scales.

    :math:`Q^*` solves :math:`Q = \mathbb E[u^2]Q + \mathbb E[(1-u)^2] r` (a bracketed root in
    :math:`[0, r]`); :math:`\chi_c = \mathbb E[u^2] + \sigma_w^2\mathbb E[u'^2](Q^*+r)` is the
    multiplier of a perturbation of the correlation between two sequences,
    :math:`\chi_q` that of the common length; :math:`\xi = -1/\log\chi`.
    Where :math:`\chi_c > 1` the point :math:`c = 1` is unstable (chaotic regime) and ``xi_c``
    is ``inf``; check ``chi_c``.

    Returns:
        dict of float64 scalars ``q_star, chi_c, chi_q, xi_c, xi_q``.
    """
    _check(sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2, mu_b=mu_b, r=r)
    return _minimal_quantities(*map(_f64, (sigma_w2, sigma_u2, sigma_b2, mu_b, r)))


def minimal_timescales(sigma_w2_grid, mu_b_grid, sigma_u2, sigma_b2, r: float = 1.0) -> dict:
    r""":func:`minimal_fixed_point` on the grid :math:`(\sigma_w^2, \mu_b)` (axis 0:
    :math:`\sigma_w^2`), vectorised with ``jax.vmap``."""
    V.grid("sigma_w2_grid", sigma_w2_grid)
    V.variance("sigma_w2_grid", sigma_w2_grid)
    V.grid("mu_b_grid", mu_b_grid)
    _check(sigma_u2=sigma_u2, sigma_b2=sigma_b2, r=r)
    sw, mu = np.meshgrid(
        np.asarray(sigma_w2_grid, np.float64), np.asarray(mu_b_grid, np.float64), indexing="ij"
    )
    out = _minimal_batch(
        _f64(sw.ravel()), _f64(sigma_u2), _f64(sigma_b2), _f64(mu.ravel()), _f64(r)
    )
    return {k: v.reshape(sw.shape) for k, v in out.items()}


# Batched over points (compiled once per grid size, not once per call as a fresh jit would be).
_minimal_batch = jax.jit(
    jax.vmap(_minimal_quantities.__wrapped__, in_axes=(0, None, None, 0, None))
)


# --- GRU ----------------------------------------------------------------------------------------


def gru_map(sigma_w2, sigma_u2, sigma_b2, mu_u, mu_r, Q, R) -> Array:
    r"""One step of the GRU's map on the 2 x 2 state covariance (after Gilboa et al. 2019).

    The pre-activation of gate :math:`k\in\{u, r, h\}` (update gate, reset gate, candidate) has
    recurrent weight variance :math:`\sigma_{w,k}^2/N`, input weight variance
    :math:`\sigma_{u,k}^2/d` and bias variance :math:`\sigma_{b,k}^2`; each of ``sigma_w2``,
    ``sigma_u2``, ``sigma_b2`` is a scalar shared by the three or per gate
    (:func:`gate_variances`, order ``GRU_GATES``). The gate biases have means ``mu_u``,
    ``mu_r`` (the candidate's 0). With :math:`E_k = \sigma_{w,k}^2 Q + \sigma_{u,k}^2 R +
    \sigma_{b,k}^2` the gates' pre-activation covariances,
    :math:`Q' = \mathbb E[uu^\top]\odot Q + \mathbb E[(1-u)(1-u)^\top]\odot\mathbb E[\tanh\tilde e
    \tanh\tilde e^\top]`, :math:`\tilde\Sigma = \sigma_{w,h}^2\mathbb E[rr^\top]\odot Q +
    \sigma_{u,h}^2 R + \sigma_{b,h}^2`.
    """
    sw, su, sb = _per_gate(GRU_GATES, sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2)
    _check(mu_u=mu_u, mu_r=mu_r)
    _sym_pair("Q", Q)
    _sym_pair("R", R)
    return _gru_map_jit(sw, su, sb, *map(_f64, (mu_u, mu_r, Q, R)))


_TANH = activation("tanh")


def _gru_map(sw, su, sb, mu_u, mu_r, Q, R):
    sw, su, sb = _broadcast(3, sw, su, sb)
    Gu, Hu = _gate_products(mu_u, sw[0] * Q + su[0] * R + sb[0])
    Gr, _ = _gate_products(mu_r, sw[1] * Q + su[1] * R + sb[1])
    Et = sw[2] * Gr * Q + su[2] * R + sb[2]
    K = _TANH.moment_matrix(Et)
    return Gu * Q + Hu * K


_gru_map_jit = jax.jit(_gru_map)


def gru_trajectory(sigma_w2, sigma_u2, sigma_b2, mu_u, mu_r, Q0, Rs) -> Array:
    """Iterate :func:`gru_map` with input covariances ``Rs`` (``(T, 2, 2)``): ``(T+1, 2, 2)``.

    The variances are shared or per gate as in :func:`gru_map`."""
    sw, su, sb = _per_gate(GRU_GATES, sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2)
    _check(mu_u=mu_u, mu_r=mu_r)
    _sym_pair("Q0", Q0)
    V.matrix("Rs", Rs, ndim=3)
    return _gru_traj((sw, su, sb, *map(_f64, (mu_u, mu_r))), _f64(Q0), _f64(Rs))


@jax.jit
def _gru_traj(p, Q0, Rs):
    return dynamics.iterate_driven(lambda Q, R: _gru_map(*p, Q, R), Q0, Rs)


@jax.jit
def _gru_quantities(sw, su, sb, mu_u, mu_r, r):
    sw, su, sb = _broadcast(3, sw, su, sb)

    def pre(Q):  # the update gate's, reset gate's and candidate's variances
        qu = sw[0] * Q + su[0] * r + sb[0]
        qr = sw[1] * Q + su[1] * r + sb[1]
        return qu, qr, sw[2] * _sig_sq(mu_r, qr) * Q + su[2] * r + sb[2]

    def length(Q):
        qu, _, qt = pre(Q)
        return _sig_sq(mu_u, qu) * Q + _omsig_sq(mu_u, qu) * _TANH.mean_square(qt)

    # Q* in [0, 1]: h is a convex combination of tanh's.
    Q = dynamics.find_root(lambda Q: length(Q) - Q, 0.0, 1.0).value
    # chi_c = d(off-diagonal)/d(Q^ab) at c = 1 by Price's theorem: 1-D integrals only
    # (tests check it against jax.jvp of gru_map through the 2-D quadrature).
    qu, qr, qt = pre(Q)
    d_tilde = sw[2] * (_sig_sq(mu_r, qr) + sw[1] * Q * _dsig_sq(mu_r, qr))
    chi_c = (
        _sig_sq(mu_u, qu)
        + sw[0] * _dsig_sq(mu_u, qu) * (Q + _TANH.mean_square(qt))
        + _omsig_sq(mu_u, qu) * _TANH.mean_square_derivative(qt) * d_tilde
    )
    return _fixed_point_result(chi_c, _slope(length, Q), q_star=Q)


def gru_fixed_point(sigma_w2, sigma_u2, sigma_b2, mu_u, mu_r, r: float = 1.0) -> dict:
    r"""The GRU's fixed point :math:`Q^*` (identical inputs of variance r) and time scales.

    Variances shared or per gate as in :func:`gru_map`. :math:`\chi_c` is the derivative of the
    off-diagonal of :func:`gru_map` at :math:`Q^{ab} = Q^*` (Price's theorem, exact at
    :math:`c = 1`): with :math:`q_k = \sigma_{w,k}^2 Q^* + \sigma_{u,k}^2 r + \sigma_{b,k}^2`
    and :math:`\tilde q = \sigma_{w,h}^2\mathbb E[r^2] Q^* + \sigma_{u,h}^2 r + \sigma_{b,h}^2`,

    .. math:: \chi_c = \mathbb E[u^2] + \sigma_{w,u}^2\mathbb E[u'^2](Q^* + \mathbb E[\tanh^2
       \tilde e]) + \mathbb E[(1-u)^2]\,\mathbb E[\tanh'^2\tilde e]\,\sigma_{w,h}^2
       (\mathbb E[r^2] + \sigma_{w,r}^2 Q^*\mathbb E[r'^2]),

    gate moments taken at :math:`q_u`, :math:`q_r`; :math:`\xi_c = -1/\log\chi_c`.

    Returns:
        dict of float64 scalars ``q_star, chi_c, chi_q, xi_c, xi_q``.
    """
    sw, su, sb = _per_gate(GRU_GATES, sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2)
    _check(mu_u=mu_u, mu_r=mu_r, r=r)
    return _gru_quantities(sw, su, sb, *map(_f64, (mu_u, mu_r, r)))


@jax.jit
def _gru_batch(sw, su, sb, mu_u, mu_r, r):
    return jax.vmap(_gru_quantities, in_axes=(0, None, None, 0, None, None))(
        sw, su, sb, mu_u, mu_r, r
    )


def gru_timescales(sigma_w2_grid, mu_u_grid, sigma_u2, sigma_b2, mu_r: float = 0.0, r=1.0):
    r""":func:`gru_fixed_point` on the grid :math:`(\sigma_w^2, \mu_u)` (axis 0:
    :math:`\sigma_w^2`, the weight variance of all three gates; ``sigma_u2``, ``sigma_b2``
    shared or per gate)."""
    V.grid("sigma_w2_grid", sigma_w2_grid)
    V.variance("sigma_w2_grid", sigma_w2_grid)
    V.grid("mu_u_grid", mu_u_grid)
    su, sb = _per_gate(GRU_GATES, sigma_u2=sigma_u2, sigma_b2=sigma_b2)
    _check(mu_r=mu_r, r=r)
    sw, mu = np.meshgrid(
        np.asarray(sigma_w2_grid, np.float64), np.asarray(mu_u_grid, np.float64), indexing="ij"
    )
    sw_gates = np.repeat(sw.ravel()[:, None], len(GRU_GATES), axis=1)
    out = _gru_batch(_f64(sw_gates), su, sb, _f64(mu.ravel()), _f64(mu_r), _f64(r))
    return {k: v.reshape(sw.shape) for k, v in out.items()}


# --- LSTM -----------------------------------------------------------------------------------------


def _lstm_check(sigma_w2, sigma_u2, sigma_b2, mu_f, mu_i, mu_o) -> tuple:
    _check(mu_f=mu_f, mu_i=mu_i, mu_o=mu_o)
    return _per_gate(LSTM_GATES, sigma_w2=sigma_w2, sigma_u2=sigma_u2, sigma_b2=sigma_b2)


def lstm_map(sigma_w2, sigma_u2, sigma_b2, mu_f, mu_i, mu_o, C, Q, R) -> tuple[Array, Array]:
    r"""One step of the LSTM's map on the pair of 2 x 2 covariances (cell ``C``, hidden ``Q``).

    The LSTM (forget gate :math:`f`, input gate :math:`i`, output gate :math:`o`, candidate
    :math:`g`): :math:`c_t = f_t\odot c_{t-1} + i_t\odot g_t`, :math:`h_t = o_t\odot\tanh c_t`,
    every pre-activation :math:`W_k h_{t-1} + U_k x_t + b_k` with variances
    :math:`\sigma_{w,k}^2/N`, :math:`\sigma_{u,k}^2/d`, :math:`\sigma_{b,k}^2` (each argument a
    scalar shared by the four or per gate, :func:`gate_variances`, order ``LSTM_GATES``) and
    bias means ``mu_f, mu_i, mu_o`` (the candidate's 0). Pre-activation :math:`k` is Gaussian
    with covariance :math:`E_k = \sigma_{w,k}^2 Q + \sigma_{u,k}^2 R + \sigma_{b,k}^2`.
    Decoupling the gates from what they multiply (as for the GRU; exact for fresh weights every
    step) and treating :math:`c_t` as Gaussian (an approximation: it is a gated sum) gives

    .. math:: C' = \mathbb E[ff^\top]\odot C + \mathbb E[ii^\top]\odot\mathbb E[\tanh e
       \tanh e^\top],\qquad Q' = \mathbb E[oo^\top]\odot\mathbb E_{c\sim\mathcal N(0, C')}
       [\tanh c\,\tanh c^\top],

    :math:`e\sim\mathcal N(0, E_g)`. Returns the pair ``(C', Q')``.
    """
    sw, su, sb = _lstm_check(sigma_w2, sigma_u2, sigma_b2, mu_f, mu_i, mu_o)
    _sym_pair("C", C)
    _sym_pair("Q", Q)
    _sym_pair("R", R)
    return _lstm_map_jit(sw, su, sb, *map(_f64, (mu_f, mu_i, mu_o, C, Q, R)))


def _lstm_map(sw, su, sb, mu_f, mu_i, mu_o, C, Q, R):
    sw, su, sb = _broadcast(4, sw, su, sb)
    E = [sw[k] * Q + su[k] * R + sb[k] for k in range(4)]  # f, i, o, g
    Gf, _ = _gate_products(mu_f, E[0])
    Gi, _ = _gate_products(mu_i, E[1])
    Go, _ = _gate_products(mu_o, E[2])
    C_new = Gf * C + Gi * _TANH.moment_matrix(E[3])
    return C_new, Go * _TANH.moment_matrix(C_new)


_lstm_map_jit = jax.jit(_lstm_map)


def lstm_trajectory(sigma_w2, sigma_u2, sigma_b2, mu_f, mu_i, mu_o, C0, Q0, Rs):
    """Iterate :func:`lstm_map` with input covariances ``Rs`` (``(T, 2, 2)``); variances shared
    or per gate.

    Returns ``(Cs, Qs)``, each ``(T+1, 2, 2)``, starting with ``C0``, ``Q0``."""
    sw, su, sb = _lstm_check(sigma_w2, sigma_u2, sigma_b2, mu_f, mu_i, mu_o)
    _sym_pair("C0", C0)
    _sym_pair("Q0", Q0)
    V.matrix("Rs", Rs, ndim=3)
    if np.shape(Rs)[1:] != (2, 2):
        raise ValueError(f"Rs must have shape (T, 2, 2), got {np.shape(Rs)}")
    p = (sw, su, sb, *map(_f64, (mu_f, mu_i, mu_o)))
    traj = _lstm_traj(p, jnp.stack([_f64(C0), _f64(Q0)]), _f64(Rs))
    return traj[:, 0], traj[:, 1]


@jax.jit
def _lstm_traj(p, CQ0, Rs):
    return dynamics.iterate_driven(lambda CQ, R: jnp.stack(_lstm_map(*p, CQ[0], CQ[1], R)), CQ0, Rs)


@jax.jit
def _lstm_quantities(sw, su, sb, mu_f, mu_i, mu_o, r):
    sw, su, sb = _broadcast(4, sw, su, sb)

    def pre(Q):  # the forget, input, output gates' and the candidate's variances
        return [sw[k] * Q + su[k] * r + sb[k] for k in range(4)]

    def cell_star(Q):
        qf, qi, _, qg = pre(Q)
        return _sig_sq(mu_i, qi) * _TANH.mean_square(qg) / (1.0 - _sig_sq(mu_f, qf))

    def length(CQ):  # the diagonal map (C, Q) -> (C', Q') for identical sequences
        C, Q = CQ
        qf, qi, qo, qg = pre(Q)
        C_new = _sig_sq(mu_f, qf) * C + _sig_sq(mu_i, qi) * _TANH.mean_square(qg)
        return jnp.stack([C_new, _sig_sq(mu_o, qo) * _TANH.mean_square(C_new)])

    # Q* in [0, 1) (h = o tanh c); C* = E[i^2] E[tanh^2] / (1 - E[f^2]) given Q*.
    Q = dynamics.find_root(
        lambda Q: _sig_sq(mu_o, pre(Q)[2]) * _TANH.mean_square(cell_star(Q)) - Q,
        0.0,
        1.0,
    ).value
    C = cell_star(Q)
    # Off-diagonal block of the Jacobian in (C^ab, Q^ab) at c = 1, by Price's theorem
    # (d/dq12 E[f(x_a) g(x_b)] = E[f' g'], which at c = 1 is a 1-D integral).
    qf, qi, qo, qg = pre(Q)
    a = _sig_sq(mu_f, qf)  # dC'/dC
    b = (  # dC'/dQ
        sw[0] * _dsig_sq(mu_f, qf) * C
        + sw[1] * _dsig_sq(mu_i, qi) * _TANH.mean_square(qg)
        + sw[3] * _sig_sq(mu_i, qi) * _TANH.mean_square_derivative(qg)
    )
    to = _sig_sq(mu_o, qo) * _TANH.mean_square_derivative(C)  # dQ'/dC'
    J = jnp.array([[a, b], [to * a, sw[2] * _dsig_sq(mu_o, qo) * _TANH.mean_square(C) + to * b]])
    chi_c = jnp.max(jnp.linalg.eigvals(J).real)
    lam, _ = dynamics.depth_scales_at(length, jnp.stack([C, Q]))  # sorted by modulus
    chi_q = jnp.abs(lam[0])
    return _fixed_point_result(chi_c, chi_q, c_star=C, q_star=Q)


def lstm_fixed_point(sigma_w2, sigma_u2, sigma_b2, mu_f, mu_i=0.0, mu_o=0.0, r: float = 1.0):
    r"""The LSTM's fixed point (identical inputs of variance r) and time scales.

    Variances shared or per gate as in :func:`lstm_map`, with
    :math:`q_k = \sigma_{w,k}^2 Q^* + \sigma_{u,k}^2 r + \sigma_{b,k}^2` the variance of
    pre-activation :math:`k` (gate moments below are taken at their own :math:`q_k`).
    The fixed point of the diagonal of :func:`lstm_map`: :math:`C^* = \mathbb E[i^2]\,
    \mathbb E[\tanh^2 e]/(1 - \mathbb E[f^2])` and :math:`Q^* = \mathbb E[o^2]\,
    \mathbb E[\tanh^2 c]`, :math:`c\sim\mathcal N(0, C^*)`, :math:`e\sim\mathcal N(0, q_g)`
    (a bracketed root in :math:`Q\in[0, 1]`).
    :math:`\chi_c` is the largest eigenvalue of the 2 x 2 Jacobian of the off-diagonals
    :math:`(C^{ab}, Q^{ab})` at :math:`c = 1`; with :math:`a = \mathbb E[f^2]`,
    :math:`b = \sigma_{w,f}^2\mathbb E[f'^2]C^* + \sigma_{w,i}^2\mathbb E[i'^2]\mathbb E[\tanh^2]
    + \sigma_{w,g}^2\mathbb E[i^2]\mathbb E[\tanh'^2]`,
    :math:`\tau = \mathbb E[o^2]\mathbb E[\tanh'^2 c]`,

    .. math:: J = \begin{pmatrix} a & b\\ \tau a & \sigma_{w,o}^2\mathbb E[o'^2]
       \mathbb E[\tanh^2 c] + \tau b\end{pmatrix},

    and :math:`\xi_c = -1/\log\chi_c`. As the forget-gate bias :math:`\mu_f\to\infty`,
    :math:`a\to 1` and :math:`\chi_c\to 1`: the memory time grows without bound. (On the slice
    :math:`\sigma_w^2 = 1`, :math:`\sigma_u^2 = 0.1`, :math:`\mu_i = \mu_o = 0`, at
    :math:`\mu_f` of about 5 or more, :math:`\chi_c` exceeds 1 by under 1% and ``xi_c`` is
    ``inf``; where that happens depends on the slice.) ``chi_q``: the
    largest multiplier of the common lengths :math:`(C, Q)`.

    Returns:
        dict of float64 scalars ``c_star, q_star, chi_c, chi_q, xi_c, xi_q``.
    """
    sw, su, sb = _lstm_check(sigma_w2, sigma_u2, sigma_b2, mu_f, mu_i, mu_o)
    _check(r=r)
    return _lstm_quantities(sw, su, sb, *map(_f64, (mu_f, mu_i, mu_o, r)))


@jax.jit
def _lstm_batch(sw, su, sb, mu_f, mu_i, mu_o, r):
    return jax.vmap(_lstm_quantities, in_axes=(0, None, None, 0, None, None, None))(
        sw, su, sb, mu_f, mu_i, mu_o, r
    )


def lstm_timescales(
    sigma_w2_grid, mu_f_grid, sigma_u2, sigma_b2, mu_i: float = 0.0, mu_o: float = 0.0, r=1.0
) -> dict:
    r""":func:`lstm_fixed_point` on the grid :math:`(\sigma_w^2, \mu_f)` (axis 0:
    :math:`\sigma_w^2`, the weight variance of all four gates; ``sigma_u2``, ``sigma_b2``
    shared or per gate)."""
    V.grid("sigma_w2_grid", sigma_w2_grid)
    V.variance("sigma_w2_grid", sigma_w2_grid)
    V.grid("mu_f_grid", mu_f_grid)
    su, sb = _per_gate(LSTM_GATES, sigma_u2=sigma_u2, sigma_b2=sigma_b2)
    _check(mu_i=mu_i, mu_o=mu_o, r=r)
    sw, mu = np.meshgrid(
        np.asarray(sigma_w2_grid, np.float64), np.asarray(mu_f_grid, np.float64), indexing="ij"
    )
    sw_gates = np.repeat(sw.ravel()[:, None], len(LSTM_GATES), axis=1)
    out = _lstm_batch(
        _f64(sw_gates),
        su,
        sb,
        _f64(mu.ravel()),
        _f64(mu_i),
        _f64(mu_o),
        _f64(r),
    )
    return {k: v.reshape(sw.shape) for k, v in out.items()}


# --- perturbations and their decay ---------------------------------------------------------------


def perturbation_inputs(r: float, length: int, t0: int) -> Array:
    r"""Input covariances ``(length, 2, 2)`` of two sequences identical except at step ``t0``,
    where their inputs are independent: :math:`R_t = r\mathbf 1\mathbf 1^\top`, and
    :math:`R_{t_0} = r I`."""
    V.variance("r", r)
    length = V.positive_int("length", length)
    t0 = V.nonneg_int("t0", t0)
    if t0 >= length:
        raise ValueError(f"t0 must be < length = {length}, got {t0}")
    Rs = jnp.full((length, 2, 2), float(r))
    return Rs.at[t0].set(float(r) * jnp.eye(2))


def correlation(traj: Array) -> Array:
    """Correlations :math:`c_t = Q^{ab}_t/\\sqrt{Q^{aa}_t Q^{bb}_t}` along a ``(T, 2, 2)``
    trajectory."""
    traj = jnp.asarray(traj)
    return traj[:, 0, 1] / jnp.sqrt(traj[:, 0, 0] * traj[:, 1, 1])
