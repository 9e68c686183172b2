r"""Finite random recurrent networks in plain JAX (``lax.scan``), to check :mod:`mftlib.recurrent`.

Four cells, each a step on a batch of states ``(..., N)`` with inputs ``(..., d)``:

* ``"vanilla"``: :math:`e_t = W\phi(e_{t-1}) + U x_t + b` (state: the pre-activation :math:`e`);
* ``"minimal"`` (Chen et al. 2018): :math:`z_t = P x_t` (or :math:`z_t = x_t` without ``P``),
  :math:`u_t = \sigma(W h_{t-1} + U z_t + b)`, :math:`h_t = u_t h_{t-1} + (1-u_t) z_t`;
* ``"gru"`` (Gilboa et al. 2019): :math:`u_t = \sigma(W_u h + U_u x + b_u)`,
  :math:`r_t = \sigma(W_r h + U_r x + b_r)`,
  :math:`h_t = u_t h_{t-1} + (1-u_t)\tanh(W_h(r_t h_{t-1}) + U_h x_t + b_h)`;
* ``"lstm"``: gates :math:`f, i, o = \sigma(W_\cdot h + U_\cdot x + b_\cdot)`, candidate
  :math:`g = \tanh(W_g h + U_g x + b_g)`, :math:`c_t = f_t c_{t-1} + i_t g_t`,
  :math:`h_t = o_t\tanh c_t`. Its state is the concatenation ``[c, h]`` (``(..., 2n)``).

Weights: :math:`W\sim\mathcal N(0,\sigma_w^2/N)` (or :math:`\sqrt{\sigma_w^2}` times a Haar
orthogonal matrix), :math:`U\sim\mathcal N(0,\sigma_u^2/\text{fan\_in})`, biases
:math:`\mathcal N(\mu,\sigma_b^2)` with mean :math:`\mu_b` for the minimalRNN's gate and
:math:`\mu_u, \mu_r` for the GRU's gates, :math:`\mu_f, \mu_i, \mu_o` for the LSTM's (0
elsewhere). The GRU's and the LSTM's variances may be set per gate (Gilboa et al. 2019): a
scalar, a tuple in the order ``mftlib.recurrent.GRU_GATES`` /
``mftlib.recurrent.LSTM_GATES``, or a mapping gate name -> variance. Weights are tied over
time.

Also here: the two-sequence perturbation experiment behind the memory time scale
(:func:`perturbation_covariances`), state-to-state Jacobians (:func:`state_jacobian`), and a
small long-memory task and its training (:func:`memory_task`, :func:`train_memory`, on the loop
of :func:`mftlib.training.optimize`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mftlib import _validate as V
from mftlib.activations import activation
from mftlib.recurrent import GRU_GATES, LSTM_GATES, gate_variances

Array = jax.Array
CELLS = ("vanilla", "minimal", "gru", "lstm")


def _cell(cell: str) -> str:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    return cell


def init(
    key,
    cell: str,
    n: int,
    d: int,
    sigma_w2,
    sigma_u2,
    sigma_b2,
    *,
    mu_b=0.0,
    mu_u=0.0,
    mu_r=0.0,
    mu_f=0.0,
    mu_i=0.0,
    mu_o=0.0,
    orthogonal: bool = False,
    embed_var=None,
) -> dict:
    r"""Draw one random cell of width ``n`` with ``d``-dimensional inputs.

    For ``"minimal"``, ``embed_var`` adds an input embedding ``P`` (``n x d``, entries
    ``N(0, embed_var/d)``) so that ``z = P x``; without it ``d`` must equal ``n`` and ``z = x``.
    ``mu_b`` is the minimalRNN gate's bias mean, ``mu_u``/``mu_r`` the GRU's gate bias means,
    ``mu_f``/``mu_i``/``mu_o`` the LSTM's (forget, input, output gates). For the GRU and the
    LSTM each of ``sigma_w2``, ``sigma_u2``, ``sigma_b2`` is a scalar shared by the gates or one
    value per gate (:func:`mftlib.recurrent.gate_variances`):
    :math:`W_k\sim\mathcal N(0,\sigma_{w,k}^2/n)`.
    Returns a dict of arrays (a pytree; draw many with ``jax.vmap`` over keys).
    """
    _cell(cell)
    sw, su, sb = gate_hyper(cell, sigma_w2, sigma_u2, sigma_b2)
    n, d = V.positive_int("n", n), V.positive_int("d", d)
    means = _means(mu_b, mu_u, mu_r, mu_f, mu_i, mu_o)
    return _init(key, cell, n, d, sw, su, sb, means, orthogonal, embed_var)


def gate_hyper(cell: str, sigma_w2, sigma_u2, sigma_b2) -> tuple:
    """Validated variances of a cell: floats for the vanilla and minimal cells, and for the GRU
    and the LSTM dicts gate name -> float (from a scalar, a per-gate tuple or a mapping,
    :func:`mftlib.recurrent.gate_variances`); ``ValueError`` otherwise. Traced values (inside
    ``jax.jit``) pass unchecked."""
    gates = {"gru": GRU_GATES, "lstm": LSTM_GATES}.get(_cell(cell))
    out = []
    for name, v in (("sigma_w2", sigma_w2), ("sigma_u2", sigma_u2), ("sigma_b2", sigma_b2)):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(v)):
            out.append(v)
        elif gates is None:
            if isinstance(v, Mapping) or np.ndim(V.variance(name, v)) != 0:
                raise ValueError(f"the {cell} cell has one {name}: give a scalar, got {v!r}")
            out.append(float(v))
        else:
            vals = gate_variances(name, v, gates)
            out.append({g: float(x) for g, x in zip(gates, vals, strict=True)})
    return tuple(out)


def _gate_value(x, name: str):
    """The variance of parameter ``name`` (``Wu``, ``Uf``, ``bg``, ...): per gate from a dict
    keyed by the gate letter, else the shared scalar."""
    return x[name[1]] if isinstance(x, dict) else x


def fresh_recurrent_weights(key, names, n: int, sigma_w2) -> dict:
    """New Gaussian recurrent weights ``W_k ~ N(0, sigma_w2_k/n)`` (``n x n``) for the parameter
    names ``names`` (``"W"`` or ``"Wu"``, ...), ``sigma_w2`` a scalar or a dict by gate letter
    (:func:`gate_hyper`): the annealed network's draw at every step."""
    z = jax.random.normal(key, (len(names), n, n), jnp.float64)
    return {k: jnp.sqrt(_gate_value(sigma_w2, k) / n) * z[j] for j, k in enumerate(names)}


def _means(mu_b, mu_u, mu_r, mu_f, mu_i, mu_o) -> dict:
    """Bias means by parameter name (candidates and the vanilla cell: 0)."""
    mus = {"mu_b": mu_b, "mu_u": mu_u, "mu_r": mu_r, "mu_f": mu_f, "mu_i": mu_i, "mu_o": mu_o}
    for name, v in mus.items():
        V.real(name, v)
    return {
        "b": mu_b,
        "bu": mu_u,
        "br": mu_r,
        "bh": 0.0,
        "bf": mu_f,
        "bi": mu_i,
        "bo": mu_o,
        "bg": 0.0,
    }


def _shapes(cell: str, n: int, d: int, embed: bool) -> dict:
    """Shapes of a cell's parameters (weights as ``(fan_out, fan_in)``)."""
    if cell == "vanilla":
        return {"W": (n, n), "U": (n, d), "b": (n,)}
    if cell == "minimal":
        out = {"W": (n, n), "U": (n, n), "b": (n,)}
        return {**out, "P": (n, d)} if embed else out
    if cell == "lstm":
        return {
            **{k: (n, n) for k in ("Wf", "Wi", "Wo", "Wg")},
            **{k: (n, d) for k in ("Uf", "Ui", "Uo", "Ug")},
            **{k: (n,) for k in ("bf", "bi", "bo", "bg")},
        }
    return {
        **{k: (n, n) for k in ("Wu", "Wr", "Wh")},
        **{k: (n, d) for k in ("Uu", "Ur", "Uh")},
        **{k: (n,) for k in ("bu", "br", "bh")},
    }


def _init(key, cell, n, d, sw, su, sb, means, orthogonal, embed_var):
    # One normal draw for all the parameters, cut into pieces: a single random-bits kernel keeps
    # compilation fast when cells are drawn inside jit (fresh weights every step, vmap over seeds).
    if cell == "minimal" and embed_var is None and d != n:
        raise ValueError(f"the minimalRNN without embedding needs d == n, got {d}, {n}")
    shapes = _shapes(cell, n, d, embed_var is not None)
    sizes = [int(np.prod(s)) for s in shapes.values()]
    z = jax.random.normal(key, (sum(sizes),), jnp.float64)
    unit = dict(zip(shapes, jnp.split(z, np.cumsum(sizes)[:-1]), strict=True))
    p = {}
    for i, (name, shape) in enumerate(shapes.items()):
        x = unit[name].reshape(shape)
        if name.startswith("W"):
            w = _gate_value(sw, name)
            if orthogonal:
                kw = jax.random.fold_in(key, i)
                p[name] = jnp.sqrt(w) * jax.nn.initializers.orthogonal()(kw, shape, jnp.float64)
            else:
                p[name] = jnp.sqrt(w / n) * x
        elif name.startswith("U"):
            fan = n if (cell == "minimal") else d
            p[name] = jnp.sqrt(_gate_value(su, name) / fan) * x
        elif name == "P":
            p[name] = jnp.sqrt(embed_var / d) * x
        else:
            mean = 0.0 if cell == "vanilla" else means[name]
            p[name] = mean + jnp.sqrt(_gate_value(sb, name)) * x
    return p


def state_size(cell: str, n: int) -> int:
    """Length of a cell's state vector: ``2n`` for the LSTM (``[c, h]``), ``n`` otherwise."""
    return 2 * n if _cell(cell) == "lstm" else n


def step(cell: str, p: dict, h: Array, x: Array, phi="tanh") -> Array:
    """One time step of ``cell`` on states ``h`` (``(..., n)``; the LSTM's ``[c, h]``,
    ``(..., 2n)``) with inputs ``x`` (``(..., d)``)."""
    if cell == "vanilla":
        return activation(phi)(h) @ p["W"].T + x @ p["U"].T + p["b"]
    if cell == "minimal":
        z = x @ p["P"].T if "P" in p else x
        u = jax.nn.sigmoid(h @ p["W"].T + z @ p["U"].T + p["b"])
        return u * h + (1.0 - u) * z
    if cell == "lstm":
        c, hh = jnp.split(h, 2, axis=-1)
        pre = {k: hh @ p["W" + k].T + x @ p["U" + k].T + p["b" + k] for k in "fiog"}
        f, i, o = (jax.nn.sigmoid(pre[k]) for k in "fio")
        c = f * c + i * jnp.tanh(pre["g"])
        return jnp.concatenate([c, o * jnp.tanh(c)], axis=-1)
    u = jax.nn.sigmoid(h @ p["Wu"].T + x @ p["Uu"].T + p["bu"])
    r = jax.nn.sigmoid(h @ p["Wr"].T + x @ p["Ur"].T + p["br"])
    cand = jnp.tanh((r * h) @ p["Wh"].T + x @ p["Uh"].T + p["bh"])
    return u * h + (1.0 - u) * cand


def run(cell: str, p: dict, h0: Array, xs: Array, phi="tanh") -> Array:
    """All states ``h_1..h_T`` for inputs ``xs`` with time on axis 0 (``(T, ..., d)``):
    ``lax.scan`` of :func:`step`; returns ``(T, ..., n)``."""
    _cell(cell)

    def body(h, x):
        h = step(cell, p, h, x, phi)
        return h, h

    return jax.lax.scan(body, h0, xs)[1]


def features(cell: str, h: Array, phi="tanh") -> Array:
    """What a readout sees: :math:`\\phi(e)` for the vanilla cell, the hidden half of the LSTM's
    ``[c, h]``, the state itself otherwise."""
    if cell == "lstm":
        return jnp.split(h, 2, axis=-1)[1]
    return activation(phi)(h) if cell == "vanilla" else h


# --- the perturbation experiment -----------------------------------------------------------------


@partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 10))
def _perturb_one(cell, key, n, d, length, phi, hyper, q0, c0, r, annealed):
    kp, kh, kx, ky = jax.random.split(key, 4)
    sw, su, sb, means = hyper
    h0 = jnp.sqrt(q0) * jax.random.normal(kh, (n,), jnp.float64)
    if cell == "lstm":  # [c, h], independent draws of the two variances
        c = jnp.sqrt(c0) * jax.random.normal(jax.random.fold_in(kh, 1), (n,), jnp.float64)
        h0 = jnp.concatenate([c, h0])
    xs = jnp.sqrt(r) * jax.random.normal(kx, (length, d), jnp.float64)
    xb = xs.at[0].set(jnp.sqrt(r) * jax.random.normal(ky, (d,), jnp.float64))
    xab = jnp.stack([xs, xb], axis=1)
    draw = lambda k: _init(k, cell, n, d, sw, su, sb, means, False, None)  # noqa: E731
    if annealed:  # fresh recurrent weights every step (the network the decoupling describes)
        base = draw(kp)
        names = [k for k in base if k.startswith("W")]

        def body(h, kx):
            k, x = kx
            h = step(cell, {**base, **fresh_recurrent_weights(k, names, n, sw)}, h, x, phi)
            return h, h

        hs = jax.lax.scan(body, jnp.stack([h0, h0]), (jax.random.split(kp, length), xab))[1]
    else:
        hs = run(cell, draw(kp), jnp.stack([h0, h0]), xab, phi)  # (T, 2, n)
    hs = features(cell, hs) if cell == "lstm" else hs  # the LSTM's hidden state h
    Q = jnp.einsum("tan,tbn->tab", hs, hs) / n
    return Q


def perturbation_covariances(
    key,
    cell: str,
    n: int,
    length: int,
    n_seeds: int,
    *,
    sigma_w2,
    sigma_u2,
    sigma_b2,
    mu_b=0.0,
    mu_u=0.0,
    mu_r=0.0,
    mu_f=0.0,
    mu_i=0.0,
    mu_o=0.0,
    q0=1.0,
    c0=1.0,
    r=1.0,
    d=None,
    phi="tanh",
    annealed: bool = False,
) -> Array:
    r"""Two input sequences, identical except at the first step, through ``n_seeds`` random cells.

    Seed ``s`` (key ``split(key, n_seeds)[s]``) draws a cell, a shared initial state
    :math:`h_0\sim\mathcal N(0, q_0)` (use the fixed point :math:`q^*` or :math:`Q^*`), and
    inputs :math:`x_t\sim\mathcal N(0, r I_d)` shared by both sequences for :math:`t \ge 2`,
    independent at :math:`t = 1`. Returns the empirical covariances
    :math:`Q^{ab}_t = h^a_t\cdot h^b_t/n`, shape ``(n_seeds, length, 2, 2)`` (``t = 1..length``):
    the quantity :func:`mftlib.recurrent.vanilla_trajectory` (and the gated analogues) predict
    with :func:`mftlib.recurrent.perturbation_inputs` ``(r, length, 0)``. For the LSTM the
    initial cell state is :math:`c_0\sim\mathcal N(0, c_0)` (argument ``c0``, e.g. :math:`C^*`)
    and the covariances returned are those of the hidden state :math:`h_t = o_t\tanh c_t`.
    With ``annealed=True`` every step draws fresh recurrent weights :math:`W` (input weights and
    biases stay fixed; the inputs are fresh anyway): the network the mean-field decoupling
    describes, to separate its error from the effect of weights tied over time. The GRU's and the
    LSTM's variances may be per gate (:func:`gate_hyper`).
    """
    cell = _cell(cell)
    n, length = V.positive_int("n", n), V.positive_int("length", length)
    n_seeds = V.positive_int("n_seeds", n_seeds)
    d = n if d is None else V.positive_int("d", d)
    if cell == "minimal" and d != n:
        raise ValueError("the minimalRNN perturbation experiment feeds z = x: d must equal n")
    for name, v in (("q0", q0), ("r", r), ("c0", c0)):
        V.variance(name, v)
    sw, su, sb = gate_hyper(cell, sigma_w2, sigma_u2, sigma_b2)
    means = {k: jnp.float64(v) for k, v in _means(mu_b, mu_u, mu_r, mu_f, mu_i, mu_o).items()}
    hyper = (*jax.tree_util.tree_map(jnp.float64, (sw, su, sb)), means)
    keys = jax.random.split(key, n_seeds)
    return jax.vmap(
        lambda k: _perturb_one(
            cell,
            k,
            n,
            d,
            length,
            phi,
            hyper,
            jnp.float64(q0),
            jnp.float64(c0),
            jnp.float64(r),
            bool(annealed),
        )
    )(keys)


# --- Jacobians ----------------------------------------------------------------------------------


def state_jacobian(
    cell: str, p: dict, h0: Array, xs: Array, phi="tanh", all_steps: bool = False
) -> Array:
    r"""The state-to-state Jacobian :math:`\partial h_T/\partial h_0` over the inputs ``xs``
    (``(T, d)``), ``n x n`` (``2n x 2n`` on the LSTM's ``[c, h]``), by ``jax.jacfwd`` through
    :func:`run`; with ``all_steps`` every
    :math:`\partial h_t/\partial h_0`, ``t = 1..T``, as ``(T, n, n)``."""
    _cell(cell)
    if all_steps:
        return jax.jacfwd(lambda h: run(cell, p, h, xs, phi))(h0)
    return jax.jacfwd(lambda h: run(cell, p, h, xs, phi)[-1])(h0)


# --- a long-memory task and its training loop -----------------------------------------------------


def memory_task(key, batch: int, length: int, delay, d: int) -> tuple[Array, Array]:
    r"""Recall the sign of a token seen ``delay`` steps before the end.

    Every input is :math:`x_t\sim\mathcal N(0, I_d)` (distractors) except step
    ``length - 1 - delay``, which is :math:`x = s\sqrt{d}\,e_1` with the class
    :math:`s = \pm 1`; the label is :math:`(s+1)/2`. Returns ``xs`` ``(length, batch, d)``
    (time first, for :func:`run`) and labels ``(batch,)``. ``delay`` may be traced.
    """
    ks, kx = jax.random.split(key)
    y = jax.random.bernoulli(ks, 0.5, (batch,)).astype(jnp.int32)
    xs = jax.random.normal(kx, (length, batch, d), jnp.float64)
    return place_token(xs, y, delay), y


def place_token(xs: Array, y: Array, delay) -> Array:
    """Write the class token of :func:`memory_task` at step ``length - 1 - delay`` of ``xs``."""
    d = xs.shape[-1]
    token = jnp.zeros(xs.shape[1:]).at[..., 0].set((2.0 * y - 1.0) * jnp.sqrt(d))
    return xs.at[xs.shape[0] - 1 - delay].set(token)


def classifier_logits(cell: str, p: dict, xs: Array, phi="tanh") -> Array:
    """Logits ``V phi(h_T) + c`` of a cell with readout (``p['cell']``, ``p['V']``, ``p['c']``)
    started at zero state; ``xs`` is ``(T, batch, d)``."""
    n = state_size(cell, p["V"].shape[1])
    h0 = jnp.zeros(xs.shape[1:-1] + (n,))
    hT = run(cell, p["cell"], h0, xs, phi)[-1]
    return features(cell, hT, phi) @ p["V"].T + p["c"]


def train_memory(
    key,
    cell: str,
    params: dict,
    delays,
    *,
    length: int,
    d: int,
    steps: int = 300,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    n_test: int = 512,
    phi="tanh",
) -> dict:
    r"""Train ``M`` classifiers (``params`` leaves with leading axis ``M``) on
    :func:`memory_task` with their own ``delays`` (length ``M``), by Adam on gradients clipped
    to ``[-1, 1]``, all together (``jax.vmap`` of :func:`mftlib.training.optimize`; a fresh
    minibatch every step, the same for all models up to the position of the token).

    Returns dict of numpy arrays: ``test_accuracy`` ``(M,)`` on ``n_test`` fresh sequences and
    ``final_loss`` ``(M,)`` (mean of the last 10% of steps).
    """
    _cell(cell)
    delays = jnp.asarray(delays, jnp.int32)
    length, d = V.positive_int("length", length), V.positive_int("d", d)
    if np.any(np.asarray(delays) < 0) or np.any(np.asarray(delays) >= length):
        raise ValueError(f"delays must lie in 0..{length - 1}")
    steps, batch_size = V.positive_int("steps", steps), V.positive_int("batch_size", batch_size)
    V.real("learning_rate", learning_rate, lo=0.0, lo_open=True)
    run_all = _memory_trainer(cell, length, d, steps, batch_size, float(learning_rate), n_test, phi)
    # The random inputs are drawn once, outside the compiled loop, and shared by all models (the
    # token is placed per model): no random-number kernels in the compiled program.
    k1, k2, k3, k4 = jax.random.split(V.key(key), 4)
    noise = jax.random.normal(k1, (steps, length, batch_size, d), jnp.float64)
    labels = jax.random.bernoulli(k2, 0.5, (steps, batch_size)).astype(jnp.int32)
    test_noise = jax.random.normal(k3, (length, n_test, d), jnp.float64)
    test_labels = jax.random.bernoulli(k4, 0.5, (n_test,)).astype(jnp.int32)
    acc, final = run_all(params, delays, noise, labels, test_noise, test_labels)
    return {"test_accuracy": np.asarray(acc, np.float64), "final_loss": np.asarray(final)}


@lru_cache(maxsize=16)
def _memory_trainer(cell, length, d, steps, batch_size, learning_rate, n_test, phi):
    """The compiled, vmapped training program (cached: one compilation per cell and sizes):
    :func:`mftlib.training.optimize` by Adam on gradients clipped to [-1, 1]."""
    from mftlib.training import optimize  # local import: mftlib.training imports networks

    def one(p, delay, noise, labels, test_noise, test_labels):
        def loss(p, xs, y):
            z = classifier_logits(cell, p, place_token(xs, y, delay), phi)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, y))

        p, values = optimize(
            loss, p, (noise, labels), optimizer="adam", learning_rate=learning_rate, clip=1.0
        )
        z = classifier_logits(cell, p, place_token(test_noise, test_labels, delay), phi)
        acc = jnp.mean((jnp.argmax(z, -1) == test_labels) & jnp.all(jnp.isfinite(z), -1))
        return acc, jnp.mean(values[-max(1, steps // 10) :])

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None, None)))


def init_classifier(key, cell: str, n: int, d: int, sigma_w2, sigma_u2, sigma_b2, **kw) -> dict:
    """A cell from :func:`init` plus a readout ``V`` (``2 x n``, ``N(0, 1/n)``) and ``c = 0``."""
    k1, k2 = jax.random.split(key)
    return {
        "cell": init(k1, cell, n, d, sigma_w2, sigma_u2, sigma_b2, **kw),
        "V": jax.random.normal(k2, (2, n), jnp.float64) / jnp.sqrt(n),
        "c": jnp.zeros(2),
    }
