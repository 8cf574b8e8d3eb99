"""The report a newcomer reads (issue 14, item 16): cells that do not wrap, tables that scroll
instead of running off the page, maj@k labelled by whose answers voted (once, not per oracle),
saturation "not reached by k = N", no fpr/fnr for selectors, forecast / simulate / per-problem
sections, and interactive figures (hover values, legend toggles) in a self-contained page."""

from __future__ import annotations

import json
import re

import pytest

from ttscale.cli import main

RUN: dict = {}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = tmp_path_factory.mktemp("rep") / "run"
    assert main(["sample", "--task", "arithmetic", "--num-problems", "8", "-k", "16", "--temperatures", "0.6,1.0",
                 "--max-tokens", "6", "--out", str(run), "--quiet"]) == 0
    for args in (["--verifier", "exact"], ["--verifier", "exact", "--name", "exact2"], ["--verifier", "majority"]):
        assert main(["verify", str(run), *args, "--workers", "0"]) == 0
    assert main(["analyze", str(run), "--n-boot", "50"]) == 0
    assert main(["compare", str(run), "--verifiers", "exact,majority", "--n-boot", "50"]) == 0
    assert main(["simulate", str(run), "--k-max", "100", "--fpr", "0.05", "--out", str(run / "whatif")]) == 0
    assert main(["report", str(run)]) == 0
    RUN["path"] = run
    return (run / "report.html").read_text()


def test_report_is_self_contained_and_interactive(report):
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", report)  # nothing fetched: works offline
    assert 'class="ttchart"' in report and "data-series=" in report  # legend entries toggle series
    assert re.search(r"<circle[^>]*><title>pass@k \(exact\)[^<]*k = 16, 0\.\d{3} \[", report)  # hover: value [CI]
    assert "addEventListener('click'" in report


def test_cells_do_not_wrap_and_tables_scroll(report):
    assert "white-space:nowrap" in report and ".scroll{overflow-x:auto" in report
    assert report.count('<div class="scroll"><table') >= 4


def test_maj_at_k_is_labelled_by_the_voters_once(report):
    curves = report[report.find("Scaling curves (estimate"):report.find("Fitted laws")]
    rows = re.findall(r"<tr><td class=\"l\">[^<]*</td><td class=\"l\">([^<]*)</td>[^\n]*?maj@k", curves)
    assert rows and set(rows) == {"answers: exact, exact2"}
    assert len(rows) == 2  # one per temperature, not one per oracle


def test_selectors_have_no_error_rates(report):
    compare = report[report.find("Verifier comparison"):]
    row = re.search(r"<tr><td class=\"l\">majority</td><td class=\"l\">selector</td>.*?</tr>", compare).group(0)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[4] == "" and cells[5] == ""  # fpr, fnr blank
    assert "0.0000" not in "".join(cells[4:6])


def test_saturation_not_reached_is_said(report):
    fits = json.loads((RUN["path"] / "analysis" / "fits.json").read_text())
    never = [f for f in fits if f.get("saturation_k") is None]
    for f in fits:  # each group's measured saturation point as a number, or said not reached
        if f.get("saturation_k") is not None:
            assert f"<td>{int(f['saturation_k'])}</td>" in report
    assert report.count("not reached by k = 16") >= len(never)
    fits = report[report.find("Fitted laws"):report.find("Scaling curves, interactive")]
    assert "None" not in fits and "nan" not in fits


def test_simulate_and_per_problem_sections(report):
    assert "What-if simulations" in report and "whatif" in report
    # per temperature the optimal k with its bootstrap interval; no cost: k = 100 is best, censored
    lines = re.findall(r"<li>task=arithmetic, temperature=[\d.]+: optimal k = 100 \[\d+, ≥ 100\] \(95% "
                       r"bootstrap interval over problems, 200 replicates; upper end censored", report)
    assert len(lines) == 2
    assert "Per problem (exact)" in report and "8 problems" in report
    assert "a passing sample" in report and "a failing sample" in report
    assert "problem(s)</title></rect>" in report  # the histogram's bars hover their counts
