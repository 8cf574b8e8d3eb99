"""``ttscale report``: one self-contained HTML page, opened in a real headless browser.

A run directory is built from imported samples whose correctness is known (``ttscale sample
--backend import``), verified, analysed and compared with the real commands; a folder holding it
with a ``sweep.json`` stands for a sweep. The pages must be self-contained (no http(s) source or
link), embed every figure, show the fitted parameters and the config, and render: Debian's
chromium loads each page headless, its load handler marks ``<body data-figures="N/N">`` once
every figure decoded, and a screenshot is not blank. Skipped where chromium is absent
(CI: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ttscale.cli import main

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

# per problem: number right of 20 samples at T = 0.6 and T = 1.0
RIGHT = {0.6: [0, 0, 1, 3, 9, 14, 18, 20], 1.0: [0, 1, 2, 4, 8, 12, 16, 20]}
N = 20


def _samples_jsonl(path: Path) -> Path:
    rng = random.Random(1)
    lines = []
    for i in range(8):
        answer = 10 + 7 * i
        for t, right in RIGHT.items():
            for j in range(N):
                text = str(answer) if j < right[i] else str(answer + rng.randint(1, 3))
                lines.append({"problem_id": f"p{i}", "temperature": t, "text": f"answer: {text}",
                              "prompt": f"{10 + i}+{7 * i - i}=", "answer": str(answer)})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report") / "sweep"
    run = root / "m" / "imported"
    src = _samples_jsonl(root.parent / "samples.jsonl")
    steps = [
        ["sample", "--backend", "import", "--from", str(src), "--temperatures", "0.6,1.0", "--out", str(run), "--quiet"],
        ["verify", str(run), "--verifier", "exact"],
        ["verify", str(run), "--verifier", "majority"],
        # compare verifies the imperfect verifier: analyze after it, or the analysis is stale
        ["compare", str(run), "--verifiers", "exact,majority,imperfect(base=exact,fpr=0.2)", "--n-boot", "50"],
        ["analyze", str(run), "--n-boot", "50"],
    ]
    for argv in steps:
        assert main(argv) == 0, argv
    (root / "sweep.json").write_text(json.dumps({"config": {"name": "report-test", "num_samples": N},
                                                 "config_hash": "0123456789abcdef", "source": "hand-made"}))
    assert main(["report", str(run)]) == 0
    assert main(["report", str(root)]) == 0
    return {"root": root, "run": run, "run_page": run / "report.html", "sweep_page": root / "report.html"}


def _figure_files(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*") if p.suffix in (".svg", ".png")} if folder.is_dir() else set()


@pytest.mark.parametrize("page", ["run_page", "sweep_page"])
def test_page_is_self_contained(built, page):
    text = built[page].read_text()
    assert text.startswith("<!doctype html>")
    # nothing fetched from elsewhere: no http(s) or protocol-relative src/href, no external CSS
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", text, re.I)
    assert "<link" not in text.lower()
    for m in re.finditer(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text):
        assert m.group(1).startswith(("#", "data:image/")), m.group(1)[:80]


@pytest.mark.parametrize("page", ["run_page", "sweep_page"])
def test_page_embeds_every_figure(built, page):
    text = built[page].read_text()
    run = built["run"]
    stems = _figure_files(run / "analysis" / "figures") | _figure_files(run / "analysis" / "compare")
    assert stems >= {"compare"} and len(stems) >= 3
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", text)
    for stem in stems:
        assert html.escape(stem.replace("_", " ")) in captions, stem
    figures = re.findall(r"<figure>(.*?)</figure>", text, re.S)
    assert len(figures) == len(captions) == len(stems)
    for fig in figures:
        inline_svg = "<svg" in fig and "</svg>" in fig
        png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', fig)
        assert inline_svg or png
        if png:
            assert base64.b64decode(png.group(1))[:8] == b"\x89PNG\r\n\x1a\n"


def _shown(x: float, text: str) -> bool:
    return any(f.format(x) in text for f in ("{:.4f}", "{:.3f}", "{:.3g}", "{:.4g}"))


@pytest.mark.parametrize("page", ["run_page", "sweep_page"])
def test_page_shows_fit_parameters_curves_and_config(built, page):
    text = built[page].read_text()
    plain = html.unescape(text)
    fits = json.loads((built["run"] / "analysis" / "fits.json").read_text())
    fitted = [f for f in fits if f.get("law")]
    assert [(f["verifier"], f["temperature"]) for f in fitted] == [("exact", 0.6), ("exact", 1.0)]  # the oracle
    for f in fitted:
        assert _shown(f["a"], text) and _shown(f["b"], text), f
    run_json = json.loads((built["run"] / "run.json").read_text())
    assert json.dumps(run_json, indent=2) in plain  # the config that produced the run
    # pass@1 at T = 1.0 is the mean right share, 63/160; at k = 20 the share of solved problems
    assert "0.394" in text and "0.875" in text
    assert "accept@k" in text and "maj@k" in text
    if page == "sweep_page":
        assert "report-test" in plain and "0123456789abcdef" in plain
        assert "m/imported" in plain


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


@needs_chromium
@pytest.mark.parametrize("page", ["run_page", "sweep_page"])
def test_every_figure_loads_in_a_headless_browser(built, page, tmp_path):
    path = built[page]
    proc = _chromium(["--virtual-time-budget=5000", "--dump-dom", path.as_uri()], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<body[^>]*\bdata-figures="(\d+)/(\d+)"', proc.stdout)
    assert m, proc.stdout[:500]
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total >= 3 and loaded == total
    assert total == len(re.findall(r"<figure[\s>]", path.read_text()))  # images and interactive charts


@needs_chromium
def test_screenshot_is_not_blank(built, tmp_path):
    import matplotlib.image

    shot = tmp_path / "page.png"
    proc = _chromium(["--window-size=1200,1800", f"--screenshot={shot}", built["run_page"].as_uri()], tmp_path)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = matplotlib.image.imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    ink = (img[..., :3] < 0.85).any(axis=2).mean()  # share of pixels that are not (near) white
    assert 0.01 < ink < 0.9
    colour = (img[..., :3].max(axis=2) - img[..., :3].min(axis=2) > 0.2).mean()  # the figures' lines
    assert colour > 0.0005


@pytest.mark.parametrize(("setup", "expected"), [
    ("missing", "no such directory"),
    ("empty", "no run directories"),
    ("unanalysed", "no analysis found"),
])
def test_report_bad_input_is_one_line(tmp_path, capsys, setup, expected):
    target = tmp_path / "target"
    if setup != "missing":
        target.mkdir()
    if setup == "unanalysed":
        (target / "run.json").write_text("{}")
    code = main(["report", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and expected in err and str(target) in err
    assert not (target / "report.html").exists()
