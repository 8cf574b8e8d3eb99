"""Tests for ttscale.analysis.forecast: coverage at large K from few samples per problem."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln

from ttscale.analysis.forecast import (
    METHODS,
    BetaMixture,
    _neg_loglik,
    fit_beta_mixture,
    forecast_coverage,
    forecast_curve,
)
from ttscale.errors import InputError

REFERENCE = Path(
    os.environ.get(
        "TTSCALE_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference"
    )
)
MONKEYS = REFERENCE / "monkeys_llama3_counts.csv"


def test_uniform_prior_coverage_is_k_over_k_plus_one() -> None:
    mix = BetaMixture(np.array([1.0]), np.array([1.0]), np.array([1.0]), 0.0)
    ks = np.array([1, 9, 99, 10_000])
    np.testing.assert_allclose(mix.coverage(ks), ks / (ks + 1), rtol=1e-12)


def test_mixture_coverage_matches_monte_carlo() -> None:
    mix = BetaMixture(np.array([0.3, 4.0]), np.array([3.0, 1.0]), np.array([0.4, 0.6]), 0.0)
    rng = np.random.default_rng(0)
    comp = rng.random(400_000) < 0.4
    p = np.where(comp, rng.beta(0.3, 3.0, comp.size), rng.beta(4.0, 1.0, comp.size))
    for k in (1, 10, 1000):
        assert mix.coverage([k])[0] == pytest.approx(np.mean(1 - (1 - p) ** k), abs=3e-3)


def test_posterior_coverage_closed_form_for_one_problem() -> None:
    mix = BetaMixture(np.array([0.5]), np.array([2.0]), np.array([1.0]), 0.0)
    # a problem with 0 of 10 right: posterior Beta(0.5, 12)
    want = 1 - np.exp(betaln(0.5, 12 + 100) - betaln(0.5, 12))
    assert mix.posterior_coverage([10], [0], [100])[0] == pytest.approx(want, rel=1e-12)
    # seen solved 5 of 10 times: 1000 more samples surely hold a right one
    assert mix.posterior_coverage([10], [5], [1000])[0] == pytest.approx(1.0, abs=1e-9)


def test_likelihood_gradient_matches_finite_differences() -> None:
    n = np.array([10.0, 10.0, 20.0, 20.0, 5.0])
    c = np.array([0.0, 3.0, 20.0, 7.0, 1.0])
    w = np.array([3.0, 1.0, 2.0, 1.0, 4.0])
    x = np.array([-0.5, 1.2, 0.3, -0.7, 0.4])  # two components
    _, grad = _neg_loglik(x, n, c, w, 2)
    eps = 1e-6
    for i in range(x.size):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        fd = (_neg_loglik(up, n, c, w, 2)[0] - _neg_loglik(down, n, c, w, 2)[0]) / (2 * eps)
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_beta_binomial_fit_recovers_parameters_with_mixed_n() -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(0.5, 2.0, 20_000)
    n = rng.choice([20, 50, 100], p.size)
    c = rng.binomial(n, p)
    fit = fit_beta_mixture(n, c)
    assert fit.alpha[0] == pytest.approx(0.5, rel=0.05)
    assert fit.beta[0] == pytest.approx(2.0, rel=0.07)
    assert fit.weight[0] == 1.0
    two = fit_beta_mixture(n, c, components=2)  # a mixture can only fit better
    assert two.log_likelihood >= fit.log_likelihood - 1e-6


def test_forecasts_on_synthetic_population_are_close_to_truth() -> None:
    rng = np.random.default_rng(2)
    p = rng.beta(0.4, 1.5, 2000)
    c = rng.binomial(100, p)
    n = np.full(p.size, 100)
    truth = float(np.mean(1 - (1 - p) ** 10_000))  # expected coverage of these problems
    for method in METHODS:
        got = forecast_coverage(n, c, 10_000, method)
        tol = 0.03 if method == "power_law" else 0.01
        assert got == pytest.approx(truth, abs=tol), method
    curve = forecast_curve(n, c, [1, 10, 100, 1000], "beta_eb")
    assert np.all(np.diff(curve) > 0)
    assert curve[0] == pytest.approx(c.sum() / n.sum(), abs=0.005)  # pass@1 is the mean rate


def test_bad_input_raises_input_error() -> None:
    with pytest.raises(InputError, match="method"):
        forecast_coverage([10], [1], 100, method="crystal_ball")
    with pytest.raises(InputError, match="nothing to forecast"):
        forecast_coverage([10, 10], [0, 0], 100)
    with pytest.raises(InputError, match="'K'"):
        forecast_coverage([10], [1], 0)
    with pytest.raises(InputError, match="num_correct"):
        forecast_coverage([10], [11], 100)


@pytest.mark.skipif(not MONKEYS.exists(), reason="reference data absent")
def test_reference_forecast_from_100_samples_per_problem() -> None:
    df = pd.read_csv(MONKEYS)
    g = df[(df.benchmark == "MATH") & (df.model == "Llama-3-70B-Instruct")]
    big_n, big_c = g.num_samples.to_numpy(), g.num_correct.to_numpy()
    truth = float(np.mean(big_c > 0))  # coverage at 10,000 from all samples
    rng = np.random.default_rng(0)
    errors = {m: [] for m in ("power_law", "beta_eb")}
    for _ in range(3):
        c = rng.hypergeometric(big_c, big_n - big_c, 100)
        n = np.full(c.size, 100)
        for m in errors:
            errors[m].append(abs(forecast_coverage(n, c, 10_000, m) - truth))
        observed = float(np.mean(c > 0))
        assert truth - observed > 0.03  # the forecast has real work to do
    assert np.mean(errors["power_law"]) < 0.015
    assert np.mean(errors["beta_eb"]) < 0.01
