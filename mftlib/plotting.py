r"""The book's figure style and its recurring plots (matplotlib; safe on the Agg backend).

* :func:`use_book_style`: rcParams for every figure of the book (colour-blind-safe Okabe-Ito
  cycle, readable fonts, constrained layout).
* :func:`theory_vs_simulation`: mean-field theory as a line, finite-network simulation as markers
  with error bars (the mean and standard error over seeds when given the samples).
* :func:`phase_diagram_plot`: a quantity over the :math:`(\sigma_w^2, \sigma_b^2)` plane, with the
  order-chaos line on top.
* :func:`label_axes`: axis labels and title in one call.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.colors import LogNorm, Normalize
from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D

# Okabe & Ito (2008), "Color universal design": distinguishable under the common colour-vision
# deficiencies. Black last, so that it is free for reference lines.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

#: Matplotlib rcParams of every figure in the book (applied by :func:`use_book_style`).
BOOK_STYLE: dict[str, object] = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (5.5, 3.6),
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.prop_cycle": mpl.cycler(color=OKABE_ITO),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "errorbar.capsize": 2,
    "image.cmap": "viridis",
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib's rcParams (idempotent; changes global state)."""
    mpl.rcParams.update(BOOK_STYLE)


def _vector(values, name: str, length: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} must have length {length}, got {arr.shape[0]}")
    return arr


def theory_vs_simulation(
    ax: Axes,
    x: Sequence[float],
    theory: Sequence[float],
    sim: Sequence[float] | None = None,
    sim_err: Sequence[float] | None = None,
    *,
    sim_samples: Sequence[Sequence[float]] | None = None,
    x_sim: Sequence[float] | None = None,
    label: str | None = None,
    sim_label: str | None = None,
    color: str | None = None,
    marker: str = "o",
) -> tuple[Line2D, ErrorbarContainer | None]:
    """Theory as a line at ``x``; simulation as markers with error bars at ``x_sim`` (or ``x``).

    The simulation is either ``sim`` (with optional ``sim_err``) or ``sim_samples`` of shape
    ``(n_seeds, len(x_sim))``, drawn as the mean over seeds with error bars of one standard error,
    ``std(ddof=1) / sqrt(n_seeds)`` (none for a single seed). The line takes ``label``; the markers
    take ``sim_label`` (default: no legend entry) and the line's colour.

    Returns:
        The theory line and the simulation's errorbar container (None without a simulation).
    """
    x = _vector(x, "x")
    theory = _vector(theory, "theory", len(x))
    x_sim = x if x_sim is None else _vector(x_sim, "x_sim")
    if sim is not None and sim_samples is not None:
        raise ValueError("give either sim (with sim_err) or sim_samples, not both")
    if sim_samples is not None:
        samples = np.asarray(sim_samples, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != len(x_sim):
            raise ValueError(
                f"sim_samples must have shape (n_seeds, {len(x_sim)}), got {samples.shape}"
            )
        sim = samples.mean(axis=0)
        n = samples.shape[0]
        sim_err = samples.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else None
    (line,) = ax.plot(x, theory, color=color, label=label, zorder=2)
    if sim is None:
        return line, None
    sim = _vector(sim, "sim", len(x_sim))
    if sim_err is not None:
        sim_err = _vector(sim_err, "sim_err", len(x_sim))
    bars = ax.errorbar(
        x_sim,
        sim,
        yerr=sim_err,
        fmt=marker,
        color=line.get_color(),
        markerfacecolor="white",
        label=sim_label,
        zorder=3,
    )
    return line, bars


def phase_diagram_plot(
    ax: Axes,
    sigma_w2_grid: Sequence[float],
    sigma_b2_grid: Sequence[float],
    values,
    critical_line: tuple[Sequence[float], Sequence[float]] | None = None,
    label: str | None = None,
    cmap: str = "viridis",
    log: bool = False,
    colorbar: bool = True,
) -> QuadMesh:
    r"""Colour map of ``values`` over the :math:`(\sigma_w^2, \sigma_b^2)` plane.

    ``values[i, j]`` is the value at ``(sigma_w2_grid[i], sigma_b2_grid[j])``, the layout of
    :func:`mftlib.phase_diagram` (first grid along axis 0); :math:`\sigma_w^2` runs along the
    horizontal axis. Non-finite values (a depth scale that diverges at criticality) are left blank,
    and so are non-positive ones with ``log=True``. ``critical_line = (sigma_w2, sigma_b2)`` is
    drawn on top as a dashed white line labelled "critical line".

    Returns:
        The ``QuadMesh`` (its colorbar, if drawn, labelled ``label``).
    """
    w = _vector(sigma_w2_grid, "sigma_w2_grid")
    b = _vector(sigma_b2_grid, "sigma_b2_grid")
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape != (len(w), len(b)):
        raise ValueError(
            f"values must have shape (len(sigma_w2_grid), len(sigma_b2_grid)) = "
            f"{(len(w), len(b))}, got {vals.shape}"
        )
    bad = ~np.isfinite(vals)
    if log:
        bad |= vals <= 0
    # pcolormesh wants rows along sigma_b2 (vertical) and columns along sigma_w2.
    data = np.ma.masked_array(vals, mask=bad).T
    norm = LogNorm() if log else Normalize()
    mesh = ax.pcolormesh(w, b, data, cmap=cmap, norm=norm, shading="nearest")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=label)
    if critical_line is not None:
        cw = _vector(critical_line[0], "critical_line[0]")
        cb = _vector(critical_line[1], "critical_line[1]", len(cw))
        xlim, ylim = ax.get_xlim(), ax.get_ylim()
        ax.plot(cw, cb, color="white", linestyle="--", linewidth=1.5, label="critical line")
        ax.set_xlim(xlim)  # the line may run past the grid: keep the map's extent
        ax.set_ylim(ylim)
    label_axes(ax, r"$\sigma_w^2$", r"$\sigma_b^2$")
    ax.grid(False)  # a grid over a colour map only adds noise
    return mesh


def label_axes(ax: Axes, xlabel: str, ylabel: str, title: str | None = None) -> Axes:
    """Set the axis labels (and the title, if given); returns ``ax`` for chaining."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    return ax


def glue(name: str, value, display: bool = False) -> None:
    """Glue ``value`` into the book page under ``name`` (``myst_nb.glue``).

    A numpy or JAX array holding one number (0-d, or of size 1) is glued as the Python int or
    float it holds: the ``{glue:text}`` role formats only Python numbers (``np.float64`` fails to
    format under ``-W``). Everything else is glued unchanged. Not displayed in the cell unless
    ``display``.
    """
    from myst_nb import glue as nb_glue  # a book dependency, imported only where a page glues

    if hasattr(value, "item") and np.size(value) == 1:
        value = value.item()
    nb_glue(name, value, display=display)
