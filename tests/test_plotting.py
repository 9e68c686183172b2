"""Tests for mftlib.plotting: every function runs on Agg, draws what it says, and cleans up."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mftlib import plotting  # noqa: E402


@pytest.fixture
def ax():
    with matplotlib.rc_context():  # use_book_style changes rcParams: undo after each test
        plotting.use_book_style()
        fig, ax = plt.subplots()
        yield ax
        fig.canvas.draw()  # render, so that drawing errors surface here
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)


def test_use_book_style_sets_rcparams():
    with matplotlib.rc_context():
        plotting.use_book_style()
        assert matplotlib.rcParams["figure.dpi"] == 110
        assert matplotlib.rcParams["font.size"] == 11
        assert matplotlib.rcParams["figure.constrained_layout.use"]
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert [c.upper() for c in colors] == list(plotting.OKABE_ITO)


def test_theory_vs_simulation_with_errors(ax):
    x = np.arange(5.0)
    line, bars = plotting.theory_vs_simulation(
        ax, x, x**2, sim=x**2 + 0.1, sim_err=np.full(5, 0.2), label="q", sim_label="sim"
    )
    np.testing.assert_array_equal(line.get_ydata(), x**2)
    assert line.get_label() == "q"
    assert bars.lines[0].get_color() == line.get_color()  # markers in the line's colour
    np.testing.assert_array_equal(bars.lines[0].get_ydata(), x**2 + 0.1)
    assert len(bars.lines[2]) == 1  # vertical error bars drawn
    ax.legend()


def test_theory_vs_simulation_from_samples(ax):
    x_fine = np.linspace(0, 4, 50)
    x_sim = np.arange(5.0)
    samples = np.random.default_rng(0).normal(size=(8, 5)) + x_sim
    line, bars = plotting.theory_vs_simulation(
        ax, x_fine, x_fine, sim_samples=samples, x_sim=x_sim, color="k"
    )
    np.testing.assert_allclose(bars.lines[0].get_ydata(), samples.mean(axis=0))
    segments = bars.lines[2][0].get_segments()
    half_widths = np.array([(s[1, 1] - s[0, 1]) / 2 for s in segments])
    np.testing.assert_allclose(half_widths, samples.std(axis=0, ddof=1) / np.sqrt(8))
    assert line.get_color() == "k"


def test_theory_vs_simulation_theory_only_and_single_seed(ax):
    line, bars = plotting.theory_vs_simulation(ax, [0, 1], [1, 2])
    assert bars is None and len(ax.lines) == 1
    _, bars = plotting.theory_vs_simulation(ax, [0, 1], [1, 2], sim_samples=[[1.0, 2.0]])
    assert len(bars.lines[2]) == 0  # one seed: no error bars


def test_theory_vs_simulation_validation(ax):
    with pytest.raises(ValueError, match="theory"):
        plotting.theory_vs_simulation(ax, [0, 1, 2], [1, 2])
    with pytest.raises(ValueError, match="not both"):
        plotting.theory_vs_simulation(ax, [0, 1], [1, 2], sim=[1, 2], sim_samples=[[1, 2]])
    with pytest.raises(ValueError, match="sim_samples"):
        plotting.theory_vs_simulation(ax, [0, 1], [1, 2], sim_samples=[1, 2])
    with pytest.raises(ValueError, match="sim_err"):
        plotting.theory_vs_simulation(ax, [0, 1], [1, 2], sim=[1, 2], sim_err=[1, 2, 3])


@pytest.mark.parametrize("log", [False, True])
def test_phase_diagram_plot(ax, log):
    w = np.linspace(0.5, 3.0, 6)
    b = np.linspace(0.0, 0.3, 4)
    values = np.add.outer(w, b)  # values[i, j] at (w[i], b[j])
    values[2, 1] = np.inf  # a diverging depth scale
    values[3, 3] = np.nan
    mesh = plotting.phase_diagram_plot(
        ax, w, b, values, critical_line=(w, 0.1 * w), label=r"$\xi_c$", log=log
    )
    data = mesh.get_array()
    assert data.shape == (4, 6)  # rows along sigma_b2, columns along sigma_w2
    assert data[1, 2] is np.ma.masked and data[3, 3] is np.ma.masked
    assert data[0, 5] == pytest.approx(values[5, 0])
    assert ax.get_xlabel() == r"$\sigma_w^2$" and ax.get_ylabel() == r"$\sigma_b^2$"
    assert ax.lines[-1].get_label() == "critical line"
    assert len(ax.figure.axes) == 2  # the colorbar
    assert ax.figure.axes[1].get_ylabel() == r"$\xi_c$"


def test_phase_diagram_plot_validation(ax):
    with pytest.raises(ValueError, match="values"):
        plotting.phase_diagram_plot(ax, [1, 2, 3], [0, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="critical_line"):
        plotting.phase_diagram_plot(
            ax, [1, 2], [0, 1], np.zeros((2, 2)), critical_line=([1, 2], [0])
        )


def test_label_axes(ax):
    assert plotting.label_axes(ax, "depth $l$", "$q^l$", title="length map") is ax
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "depth $l$",
        "$q^l$",
        "length map",
    )
    plotting.label_axes(ax, "a", "b")
    assert ax.get_title() == "length map"  # title untouched when not given


def test_glue_passes_numpy_and_jax_numbers_as_python_numbers(monkeypatch):
    import jax.numpy as jnp
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.update({name: value}))
    plotting.glue("f", np.float64(0.25))
    plotting.glue("j", jnp.asarray(1.5))
    plotting.glue("i", np.int64(3))
    plotting.glue("s", "text")
    plotting.glue("one", np.array([0.5]))
    plotting.glue("v", np.array([1.0, 2.0]))
    assert type(glued["f"]) is float and glued["f"] == 0.25
    assert type(glued["j"]) is float and glued["j"] == 1.5
    assert type(glued["i"]) is int and glued["i"] == 3
    assert type(glued["one"]) is float and glued["one"] == 0.5
    assert glued["s"] == "text"
    np.testing.assert_array_equal(glued["v"], [1.0, 2.0])
