"""report/: results.json round-trip, the self-contained HTML report, its figures and its number formatting."""

from __future__ import annotations

import html as html_lib
import itertools
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from _fixtures_report import (
    LABELS,
    OPTIMIZED_VARIANTS,
    PARETO_FRONT,
    SIZE_BYTES,
    TARGETS,
    VARIANTS,
    make_optimized_run_result,
    make_run_result,
)
from deployable.core import locks
from deployable.core.records import RunResult
from deployable.report import ReportSection, plots, render_report, write_report, write_results_json
from deployable.report import _format as report_format
from deployable.report import html as report_html
from deployable.report.plots import _svg

SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def result() -> RunResult:
    return make_run_result()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, result: RunResult) -> Path:
    folder = tmp_path_factory.mktemp("run")
    write_results_json(result, folder / "results.json")
    write_report(result, folder / "report.html")
    return folder


@pytest.fixture(scope="module")
def page(run_folder: Path) -> str:
    return (run_folder / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def optimized() -> RunResult:
    return make_optimized_run_result()


@pytest.fixture(scope="module")
def opt_page(optimized: RunResult) -> str:
    return render_report(optimized)


@pytest.fixture(params=["page", "opt_page"])
def any_page(request: pytest.FixtureRequest) -> str:
    """Each report: the two-variant run and the six-variant optimized run."""
    return request.getfixturevalue(request.param)


def _text_outside_svg(html: str) -> str:
    return SVG.sub("", html)


def _with_nans(result: RunResult) -> RunResult:
    """The fixture run with NaN in fields the report shows as numbers in tables."""
    e = result.evaluations[0]
    per_class = (e.quality.per_class[0].replace(precision=math.nan), *e.quality.per_class[1:])
    slices = (e.slices[0].replace(macro_f1=math.nan, ece=math.nan), *e.slices[1:])
    e = e.replace(
        quality=e.quality.replace(per_class=per_class, balanced_accuracy=math.nan),
        calibration=e.calibration.replace(adaptive_ece=math.nan, nll=math.nan),
        slices=slices,
    )
    return result.replace(evaluations=(e, *result.evaluations[1:]))


# ---------------------------------------------------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------------------------------------------------


def test_results_json_round_trips(run_folder: Path, result: RunResult) -> None:
    data = json.loads((run_folder / "results.json").read_text(encoding="utf-8"))
    assert RunResult.from_dict(data).to_dict() == result.to_dict()
    assert RunResult.load(run_folder).to_dict() == result.to_dict()
    # the fixture holds NaN (empty reliability bins): they must survive as NaN, not as 0 or a string
    loaded = RunResult.load(run_folder).evaluations[0].calibration.reliability
    assert any(b.count == 0 and math.isnan(b.accuracy) for b in loaded)


def test_results_json_is_standard_indented_json(run_folder: Path, tmp_path: Path, result: RunResult) -> None:
    text = (run_folder / "results.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "schema_version"')

    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    json.loads(text, parse_constant=reject)
    # an infinite NLL (a confidently wrong prediction) must not produce `Infinity`, which strict readers reject
    e = result.evaluations[0]
    inf = result.replace(evaluations=(e.replace(calibration=e.calibration.replace(nll=math.inf)),))
    out = write_results_json(inf, tmp_path / "results.json")
    data = json.loads(out.read_text(encoding="utf-8"), parse_constant=reject)
    assert data["evaluations"][0]["calibration"]["nll"] is None


# ---------------------------------------------------------------------------------------------------------------------
# report.html: content
# ---------------------------------------------------------------------------------------------------------------------


def test_report_has_every_section_and_variant(page: str, result: RunResult) -> None:
    for section_id in ("summary", "dataset", "provenance"):
        assert f'id="{section_id}"' in page
    for heading in (
        "Summary",
        "Quality",
        "Calibration",
        "Slices",
        "Efficiency",
        "Dataset",
        "Environment &amp; provenance",
        "Splits",
        "Label counts",
        "Targets",
        "Environment",
    ):
        assert f">{heading}</h" in page, heading
    for i, name in enumerate(VARIANTS, start=1):
        anchor = f"v{i}-{name}"
        assert f'<section class="variant" id="{anchor}">' in page
        for part in ("quality", "calibration", "slices", "efficiency"):
            assert f'id="{anchor}-{part}"' in page
        assert f'<td><a href="#{anchor}">{name}</a></td>' in page  # summary row
        assert f'<a href="#{anchor}">{name}</a>' in page[page.index("<nav") : page.index("</nav>")]
        assert f"<h2>{name}" in page  # the variant's own section
        assert f"<h4>{name} <span" in page  # provenance card
    for variant in result.variants:
        assert variant.sha256 in page
        for f in variant.files:
            assert f in page
    for target in TARGETS:
        assert f"<h4>{target.name}</h4>" in page
    for label in LABELS:
        assert f"<td>{label.replace('&', '&amp;')}</td>" in page
    for split in result.dataset.splits:
        assert split.fingerprint[:12] in page
    for key, value in result.environment.items():
        assert f'<th>{key}</th><td class="mono">{value}</td>' in page
    assert "<title>support-tickets · deployable report</title>" in page
    assert result.deployable_version in page
    assert "2025-03-14 09:26 UTC" in page


def test_report_numbers_are_formatted(page: str, result: RunResult) -> None:
    q = result.evaluations[0].quality
    assert f"{100 * q.accuracy:.1f}%" in page  # 89.0%
    lat = result.evaluations[0].efficiency[1].latency[1]  # cloud-cpu, batch 32
    assert f'<td class="num">{lat.p50_ms:.2f}</td>' in page
    assert f"{lat.throughput_per_s:,.1f}" in page
    assert "memory over budget (256 MB)" in page  # the source model does not fit the edge box
    assert "memory within budget (8,192 MB)" in page


def test_summary_marks_best_value_per_column(page: str) -> None:
    summary = page[page.index('id="summary"') : page.index("</table>", page.index('id="summary"'))]
    rows = re.findall(r"<tr>\s*<td><a href=\"#(v\d-[\w-]+)\">.*?</tr>", summary, flags=re.DOTALL)
    assert rows == ["v1-source", "v2-int8-dynamic"]
    source_row, int8_row = re.findall(r"<tr>\s*<td><a href.*?</tr>", summary, flags=re.DOTALL)
    assert source_row.count(" best") == 4  # accuracy, macro-F1, ECE, ECE after T
    assert int8_row.count(" best") == 4  # p50 and cost on both targets


def test_nan_renders_as_dash(result: RunResult) -> None:
    html = render_report(_with_nans(result))
    text = _text_outside_svg(html)
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)
    assert "<tr><th>Adaptive ECE</th><td>—</td></tr>" in html
    assert "<tr><th>NLL</th><td>—</td></tr>" in html
    assert '<td>billing</td><td class="num">—</td>' in html
    assert '<div class="sub">balanced —</div>' in html


def test_user_text_is_escaped(result: RunResult) -> None:
    evil = "<script>alert(1)</script> -->"  # also closes an XML comment, should a figure ever hold one
    e = result.evaluations[0]
    per_class = (e.quality.per_class[0].replace(label=evil), *e.quality.per_class[1:])
    e = e.replace(variant=evil, quality=e.quality.replace(per_class=per_class))
    variants = (result.variants[0].replace(name=evil), *result.variants[1:])
    html = render_report(result.replace(name=evil, evaluations=(e, *result.evaluations[1:]), variants=variants))
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; --&gt;" in html
    for svg in SVG.findall(html):
        ET.fromstring(svg)  # a label in a figure cannot break the SVG either
    # the class name is drawn, shortened in the middle, as text on both axes of the confusion matrix
    confusion = next(svg for svg in SVG.findall(html) if "Confusion matrix" in svg)
    assert confusion.count(">&lt;script&gt;a…ipt&gt; --&gt;</text>") == 2


# ---------------------------------------------------------------------------------------------------------------------
# report.html: self-contained and well-formed
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("page_name", "result_name"), [("page", "result"), ("opt_page", "optimized")])
def test_every_svg_is_well_formed(page_name: str, result_name: str, request: pytest.FixtureRequest) -> None:
    page, result = request.getfixturevalue(page_name), request.getfixturevalue(result_name)
    svgs = SVG.findall(page)
    # 4 per variant (confusion, reliability, slices, latency) + the latency comparison in the summary + a Pareto
    # plot per target in the optimization section + the audit's overlap plot
    assert result.audit is not None and result.audit.leakage
    assert len(svgs) == 4 * len(result.evaluations) + 1 + len(TARGETS) + 1
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG_NS}svg"
        assert root.get("viewBox")
        assert root.findall(f".//{SVG_NS}path"), "an SVG without any drawing"


def test_element_ids_are_unique(any_page: str) -> None:
    page = any_page
    ids = re.findall(r'\bid="([^"]+)"', page)
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates
    # every internal reference points at an id of the page
    refs = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    assert refs <= set(ids)


def test_report_is_self_contained(any_page: str) -> None:
    page = any_page
    attrs = re.findall(r'\b(?:src|href|xlink:href|action|poster|data)\s*=\s*"([^"]*)"', page, flags=re.IGNORECASE)
    attrs += re.findall(r"url\(\s*['\"]?([^'\")]*)", page, flags=re.IGNORECASE)
    assert attrs  # the regexes do match something (anchors, icon, clip paths)
    for value in attrs:
        assert not re.match(r"\s*(https?:)?//", value, flags=re.IGNORECASE), value
        assert value.startswith(("#", "data:")), value
    assert not re.search(r"https?://", _text_outside_svg(page))
    assert "<script" not in page.lower()
    assert "@import" not in page and "@font-face" not in page
    assert '<link rel="icon" href="data:,">' in page
    assert len(re.findall(r"<link\b", page)) == 1


def test_extra_sections_are_placed(result: RunResult) -> None:
    sections = [
        ReportSection(id="gate", title="Gate verdict", html="<p>PASS: int8-dynamic on edge-cpu</p>", where="top"),
        ReportSection(id="drift", title="Drift", html="<p>no drift</p>"),
        ReportSection(
            id="robust-int8", title="Robustness", html="<p>typos: -1.2%</p>", where="variant", variant="int8-dynamic"
        ),
    ]
    html = render_report(result, extra_sections=sections)
    order = [
        html.index(marker)
        for marker in (
            'id="summary"',
            'id="gate"',
            'id="v1-source"',
            'id="v2-int8-dynamic"',
            'id="robust-int8"',
            'id="dataset"',
            'id="drift"',
            'id="provenance"',
        )
    ]
    assert order == sorted(order)
    assert '<a href="#gate">Gate verdict</a>' in html
    assert "<p>PASS: int8-dynamic on edge-cpu</p>" in html
    with pytest.raises(ValueError, match="no evaluation of variant 'nope'"):
        render_report(
            result, extra_sections=[ReportSection(id="x", title="x", html="", where="variant", variant="nope")]
        )
    with pytest.raises(ValueError, match="already used"):
        render_report(result, extra_sections=[ReportSection(id="dataset", title="x", html="")])
    with pytest.raises(ValueError, match="already used"):
        render_report(result, extra_sections=[ReportSection(id="audit", title="x", html="")])
    with pytest.raises(ValueError, match="where='variant'"):
        ReportSection(id="x", title="x", html="", where="variant")


# ---------------------------------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------------------------------


def test_writes_leave_only_the_files(tmp_path: Path, result: RunResult) -> None:
    assert write_results_json(result, tmp_path / "results.json") == tmp_path / "results.json"
    assert write_report(result, tmp_path / "report.html") == tmp_path / "report.html"
    write_report(result, tmp_path / "report.html")  # overwriting is fine too
    assert sorted(os.listdir(tmp_path)) == ["report.html", "results.json"]


def test_failed_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, result: RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.json"
    target.write_text("old", encoding="utf-8")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(locks.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_results_json(result, target)
    with pytest.raises(OSError, match="disk full"):
        write_report(result, tmp_path / "report.html")
    assert os.listdir(tmp_path) == ["results.json"]
    assert target.read_text(encoding="utf-8") == "old"


# ---------------------------------------------------------------------------------------------------------------------
# Formatting and figures
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        (report_format.fmt_pct, 0.91349, "91.3%"),
        (report_format.fmt_pct, 1.0, "100.0%"),
        (report_format.fmt_pct, math.nan, "—"),
        (report_format.fmt_pct, None, "—"),
        (report_format.fmt_ms, 1234.567, "1,234.6"),
        (report_format.fmt_ms, 12.345, "12.35"),
        (report_format.fmt_ms, 0.9, "0.90"),
        (report_format.fmt_ms, 0.01234, "0.012"),
        (report_format.fmt_ms, math.nan, "—"),
        (report_format.fmt_usd, 0.0123456, "$0.0123"),
        (report_format.fmt_usd, 0.000267, "$0.000267"),
        (report_format.fmt_usd, 5, "$5.00"),
        (report_format.fmt_usd, 12.5, "$12.50"),
        (report_format.fmt_usd, None, "—"),
        (report_format.fmt_int, 12345, "12,345"),
        (report_format.fmt_mb, 412.53, "412.5 MB"),
        (report_format.fmt_mb, 0.5, "512.0 KB"),
        (report_format.fmt_seconds, math.nan, "—"),
        (report_format.fmt_bytes, 90_868_376, "86.7 MB"),
        (report_format.fmt_date, "2025-03-14T11:26:53+02:00", "2025-03-14 09:26 UTC"),
        (report_format.fmt_date, "not a date", "not a date"),
        (report_format.fmt_pts, -0.00375, "−0.38 pts"),
        (report_format.fmt_pts, 0.0163, "+1.63 pts"),
        (report_format.fmt_pts, -0.00001, "0.00 pts"),
        (report_format.fmt_pts, math.nan, "—"),
        (report_format.fmt_signed, -2.375, "−2.38"),
        (report_format.fmt_signed, 0.125, "+0.12"),
        (report_format.fmt_sig, 2.4e-06, "2.4e-06"),
        (report_format.fmt_sig, 0.018345, "0.0183"),
        (report_format.fmt_times, 9.8 / 2.94, "3.3×"),
        (report_format.fmt_times, 9.8 / 11.27, "0.9×"),
        (report_format.fmt_times, None, "—"),
    ],
)
def test_formatters(fmt, value, expected: str) -> None:
    assert fmt(value) == expected


def _rects(svg: str, cls: str) -> list[dict[str, float | str]]:
    """The ``<rect class=cls>`` elements of ``svg``: geometry as floats, fill as a string."""
    out = []
    for el in ET.fromstring(svg).iter(f"{SVG_NS}rect"):
        if el.get("class") == cls:
            geometry = {k: float(el.get(k)) for k in ("x", "y", "width", "height")}
            out.append({**geometry, "fill": el.get("fill")})
    return out


def _paths(svg: str, stroke: str) -> list[ET.Element]:
    return [el for el in ET.fromstring(svg).iter(f"{SVG_NS}path") if el.get("stroke") == stroke]


def _texts(svg: str) -> list[str]:
    return ["".join(el.itertext()) for el in ET.fromstring(svg).iter(f"{SVG_NS}text")]


def _luminance(hex_color: str) -> float:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_plots_are_inline_deterministic_svg(result: RunResult) -> None:
    e = result.evaluations[0]
    figures = [
        plots.reliability_diagram(e.calibration),
        plots.confusion_matrix_plot(e.quality),
        plots.slice_plot(e.slices, e.quality.accuracy),
        plots.latency_plot(result.evaluations),
        plots.pareto_plot(_pareto_points(make_optimized_run_result(), "edge-cpu"), title="edge-cpu", batch_size=1),
    ]
    for svg in figures:
        assert svg.startswith("<svg")
        assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<!--" not in svg and "<metadata" not in svg
        assert not re.search(r"https?://(?!www\.w3\.org/(2000/svg|1999/xlink)\")", svg)
        assert "<image" not in svg and "<foreignObject" not in svg and "<script" not in svg and "@font-face" not in svg
        root = ET.fromstring(svg)
        # scales with its container, never past its natural size, in a font every system has
        width = float(root.get("viewBox").split()[2])
        assert root.get("width") == "100%"
        assert root.get("style") == f"max-width:{width:g}px"
        assert root.get("font-family").endswith("'DejaVu Sans', sans-serif")
        assert root.findall(f".//{SVG_NS}text"), "labels are drawn as text"
        # its own ids are namespaced, and every reference points inside the figure
        ids = re.findall(r'\bid="([^"]+)"', svg)
        assert all(i.startswith("dp-") for i in ids)
        assert set(re.findall(r"url\(#([^)]+)\)", svg)) <= set(ids)
    assert plots.confusion_matrix_plot(e.quality) == figures[1]


def test_plots_do_not_import_matplotlib() -> None:
    code = "import sys, deployable.report.html; assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plots_handle_empty_and_wide_ranges(result: RunResult) -> None:
    e = result.evaluations[0]
    empty = (
        plots.slice_plot(()),
        plots.latency_plot(()),
        plots.latency_plot([e.replace(efficiency=())]),
        plots.confusion_matrix_plot(e.quality.replace(confusion_matrix=(), per_class=())),
        plots.reliability_diagram(e.calibration.replace(reliability=(), reliability_after_temperature=())),
        plots.pareto_plot([], title="edge-cpu"),
        plots.pareto_plot([plots.ParetoPoint("a", math.nan, 0.9)], title="edge-cpu"),
    )
    for svg in empty:
        root = ET.fromstring(svg)
        assert "no " in root.get("aria-label")
        assert any(text.startswith("no ") for text in _texts(svg))
    # latencies from microseconds to seconds switch the panel to a log scale
    eff = e.efficiency[1]
    fast = eff.latency[0].replace(p50_ms=0.004, p95_ms=0.005, p99_ms=0.006)
    slow = eff.latency[1].replace(p50_ms=900.0, p95_ms=1000.0, p99_ms=1200.0)
    wide = plots.latency_plot([e.replace(efficiency=(eff.replace(latency=(fast, slow)),))])
    assert ET.fromstring(wide).get("aria-label").endswith("(log scale: cloud-cpu)")
    assert any("(log scale)" in text for text in _texts(wide))
    bars = _rects(wide, "dp-bar")
    # on a log axis, 900 ms over 4 µs is 5.35 decades: the bar heights differ by that many decades' length
    assert bars[1]["height"] > bars[0]["height"] > 0
    narrow = plots.latency_plot([e.replace(efficiency=(eff,))])
    assert "log scale" not in ET.fromstring(narrow).get("aria-label")


def test_plots_show_nan_as_dash(result: RunResult) -> None:
    e = result.evaluations[0]
    cal = e.calibration.replace(temperature=math.nan, ece_after_temperature=math.nan)
    nan_slice = e.slices[0].replace(accuracy=e.slices[0].accuracy.replace(value=math.nan, low=math.nan, high=math.nan))
    figures = [plots.reliability_diagram(cal), plots.slice_plot((nan_slice, *e.slices[1:]), math.nan)]
    for svg in figures:
        assert not re.search(r"\bnan\b", " ".join(_texts(svg)), flags=re.IGNORECASE)
    assert "After T = — · ECE —" in _texts(figures[0])
    assert "—" in _texts(figures[1])  # in place of the slice's bar
    assert len(_rects(figures[1], "dp-bar")) == len(e.slices) - 1
    assert not _paths(figures[1], plots.ORANGE), "no overall line without an overall accuracy"


def test_plots_escape_user_text(result: RunResult) -> None:
    e = result.evaluations[0]
    evil = 'a<b>&"c\x01'
    per_class = (e.quality.per_class[0].replace(label=evil), *e.quality.per_class[1:])
    slices = (e.slices[0].replace(column=evil, value=evil), *e.slices[1:])
    variant = e.replace(variant=evil, efficiency=tuple(f.replace(target=evil) for f in e.efficiency))
    figures = [
        plots.confusion_matrix_plot(e.quality.replace(per_class=per_class)),
        plots.slice_plot(slices, e.quality.accuracy),
        plots.latency_plot([variant]),
        plots.pareto_plot([plots.ParetoPoint(evil, 3.0, 0.9, 100)], title=evil),
    ]
    for svg in figures:
        assert "<b>" not in svg
        assert any(text.startswith('a<b>&"c\ufffd') for text in _texts(svg))  # the control character is replaced


def test_confusion_matrix_geometry(result: RunResult) -> None:
    q = result.evaluations[0].quality
    svg = plots.confusion_matrix_plot(q)
    k = len(q.per_class)
    cells = _rects(svg, "dp-cell")
    assert len(cells) == k * k
    # rows are true classes, columns predicted classes, in per_class order, on a regular grid
    size = cells[0]["width"]
    for n, cell in enumerate(cells):
        i, j = divmod(n, k)
        assert cell["x"] == pytest.approx(cells[0]["x"] + j * size, abs=0.02)
        assert cell["y"] == pytest.approx(cells[0]["y"] + i * size, abs=0.02)
        assert cell["height"] == pytest.approx(size)
    # colour is the row share (not the count: billing's 231 of 250 is darker than technical_issue's 262 of 290);
    # a larger share is never lighter
    counts = [c for row in q.confusion_matrix for c in row]
    shares = [c / sum(row) for row in q.confusion_matrix for c in row]
    order = sorted(range(k * k), key=lambda n: shares[n])
    lum = [_luminance(cells[n]["fill"]) for n in order]
    assert lum == sorted(lum, reverse=True) and lum[0] > lum[-1]
    darkest = min(range(k * k), key=lambda n: _luminance(cells[n]["fill"]))
    assert shares[darkest] == max(shares) and counts[darkest] != max(counts)
    # with equal class sizes, the largest count is the darkest cell
    balanced = ((41, 2, 1, 0), (3, 38, 2, 1), (0, 5, 39, 0), (2, 2, 4, 36))
    cells = _rects(plots.confusion_matrix_plot(q.replace(confusion_matrix=balanced)), "dp-cell")
    darkest = min(range(k * k), key=lambda n: _luminance(cells[n]["fill"]))
    assert divmod(darkest, k) == (0, 0)
    # every count is written in its cell; the class names label both axes
    texts = _texts(svg)
    for c in counts:
        assert f"{c:,}" in texts
    for c in q.per_class:
        assert texts.count(c.label) == 2
    assert "predicted class" in texts and "true class" in texts and "100%" in texts


def test_slice_plot_geometry(result: RunResult) -> None:
    e = result.evaluations[0]
    overall = e.quality.accuracy
    worse = e.slices[2].replace(accuracy=e.slices[2].accuracy.replace(value=0.5, low=0.4, high=0.6))
    slices = (*e.slices[:2], worse, *e.slices[3:])
    svg = plots.slice_plot(slices, overall)
    bars = _rects(svg, "dp-bar")
    assert len(bars) == len(slices)
    # bars start at the same x, their lengths are proportional to accuracy, and they go down in report order
    scale = max(b["width"] for b in bars) / max(s.accuracy.value for s in slices)
    for bar, s in zip(bars, slices, strict=True):
        assert bar["x"] == bars[0]["x"]
        assert bar["width"] == pytest.approx(s.accuracy.value * scale, abs=0.02)
        assert bar["fill"] == (plots.RED if s.accuracy.high < overall else plots.BLUE)
    assert [b["y"] for b in bars] == sorted(b["y"] for b in bars)
    # the dashed overall line sits at the overall accuracy on the same scale
    (line,) = [p for p in _paths(svg, plots.ORANGE) if "V" in p.get("d")]  # the other one is in the legend
    assert line.get("stroke-dasharray")
    x = float(re.match(r"M([\d.]+) ", line.get("d")).group(1))
    assert x == pytest.approx(bars[0]["x"] + overall * scale, abs=0.02)
    texts = _texts(svg)
    for s in slices:
        assert f"{s.value} (n={s.n:,})" in texts
    assert {"language", "length"} <= set(texts)  # the column headers
    assert "CI below overall" in texts and f"overall {100 * overall:.1f}%" in texts


def test_reliability_diagram_geometry(result: RunResult) -> None:
    cal = result.evaluations[0].calibration
    svg = plots.reliability_diagram(cal)
    # the diagonal of each panel gives the panel's frame: from (x0, bottom) to (x1, top)
    diagonals = [p for p in _paths(svg, plots.MUTED) if p.get("stroke-dasharray") and "L" in p.get("d")]
    assert len(diagonals) == 2
    bars, gaps, counts = _rects(svg, "dp-acc"), _rects(svg, "dp-gap"), _rects(svg, "dp-count")
    start = 0
    for bins, diagonal in zip((cal.reliability, cal.reliability_after_temperature), diagonals, strict=True):
        x0, bottom, x1, top = map(float, re.findall(r"[\d.]+", diagonal.get("d")))
        height, width = bottom - top, x1 - x0
        shown = [b for b in bins if b.count > 0]
        assert any(b.count == 0 for b in bins)  # empty bins: no bar
        for b, bar in zip(shown, bars[start : start + len(shown)], strict=True):
            assert bar["x"] == pytest.approx(x0 + b.lower * width, abs=0.02)
            assert bar["width"] == pytest.approx((b.upper - b.lower) * width, abs=0.02)
            assert bar["height"] == pytest.approx(b.accuracy * height, abs=0.02)
            assert bar["y"] + bar["height"] == pytest.approx(bottom, abs=0.02)
        for b, gap in zip(shown, gaps[start : start + len(shown)], strict=True):
            # the hatched gap spans from the accuracy to the mean confidence
            assert gap["y"] == pytest.approx(top + (1 - max(b.accuracy, b.confidence)) * height, abs=0.02)
            assert gap["height"] == pytest.approx(abs(b.confidence - b.accuracy) * height, abs=0.02)
            assert gap["fill"] == "url(#dp-hatch)"
        # the histogram beneath: heights proportional to the counts, one labelled bar per non-empty bin
        hist = counts[start : start + len(shown)]
        per_sample = hist[-1]["height"] / shown[-1].count  # the tallest bar: the least rounding
        for b, bar in zip(shown, hist, strict=True):
            assert bar["height"] == pytest.approx(b.count * per_sample, abs=0.02)
            assert bar["y"] + bar["height"] == pytest.approx(hist[0]["y"] + hist[0]["height"], abs=0.02)
            assert bar["y"] > bottom
        start += len(shown)
    assert len(bars) == len(gaps) == len(counts) == start
    assert '<pattern id="dp-hatch"' in svg
    texts = _texts(svg)
    assert f"Before · ECE {100 * cal.ece:.1f}%" in texts
    assert f"After T = {cal.temperature:.2f} · ECE {100 * cal.ece_after_temperature:.1f}%" in texts
    for label in ("accuracy", "gap to confidence", "perfect calibration", "samples per bin", "0%", "100%"):
        assert label in texts


def test_latency_plot_geometry(result: RunResult) -> None:
    svg = plots.latency_plot(result.evaluations)
    bars = _rects(svg, "dp-bar")
    assert len(bars) == sum(len(f.latency) for e in result.evaluations for f in e.efficiency) == 6
    # within a panel (linear here), bar heights are proportional to p50 and every bar stands on the same axis
    edge = [f.latency[0].p50_ms for e in result.evaluations for f in e.efficiency if f.target == "edge-cpu"]
    ratio = bars[0]["height"] / edge[0]
    assert bars[1]["height"] == pytest.approx(edge[1] * ratio, abs=0.02)
    assert len({round(b["y"] + b["height"], 2) for b in bars}) == 1
    # one colour per variant, in palette order
    assert [b["fill"] for b in bars[:2]] == list(plots.PALETTE[:2])
    texts = _texts(svg)
    assert {"edge-cpu", "cloud-cpu", "batch 1", "batch 32", "p95", "p99", "source p50"} <= set(texts)
    assert "latency per call (ms)" in texts


@pytest.mark.parametrize(
    ("lo", "hi", "n"),
    [(0, 1, 5), (0, 145, 2), (0, 2044.7, 5), (0.003, 0.0171, 4), (-3.2, 7.9, 6), (5, 5, 4), (0, 1, 1)],
)
def test_nice_ticks(lo: float, hi: float, n: int) -> None:
    ticks = _svg._nice_ticks(lo, hi, n)
    assert ticks[0] <= lo and ticks[-1] >= hi  # they span the range
    assert 2 <= len(ticks) <= n + 2
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in {1, 2, 2.5, 5}
    assert all(round(t / step, 9).is_integer() for t in ticks)


def test_nice_ticks_of_unit_range_and_non_finite() -> None:
    assert _svg._nice_ticks(0, 1, 5) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert _svg._nice_ticks(0, math.nan, 5) == []
    assert _svg._nice_ticks(-math.inf, 1, 5) == []


def test_scope_ids_prefixes_ids_and_references() -> None:
    svg = '<svg><defs><path id="a"/></defs><use xlink:href="#a"/><g clip-path="url(#a)" style="x:url(#a)"/></svg>'
    scoped = plots.scope_ids(svg, "f1-")
    assert scoped == (
        '<svg><defs><path id="f1-a"/></defs><use xlink:href="#f1-a"/>'
        '<g clip-path="url(#f1-a)" style="x:url(#f1-a)"/></svg>'
    )


# ---------------------------------------------------------------------------------------------------------------------
# Optimization: the variants table, the Pareto plots, the faithfulness and recipe of each variant
# ---------------------------------------------------------------------------------------------------------------------


def _plain(fragment: str) -> str:
    """The text of an HTML fragment: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _optimization_rows(page: str) -> dict[str, tuple[str, list[str], str]]:
    """Per variant, in table order: the row's class, the text of each cell and the row's HTML."""
    start = page.index('<section id="optimization">')
    table = page[start : page.index("</table>", start)]
    rows = {}
    for cls, name, body in re.findall(r'<tr class="(\w+)" data-variant="([^"]+)">(.*?)</tr>', table, flags=re.DOTALL):
        cells = re.findall(r"<td\b[^>]*>(.*?)</td>", body, flags=re.DOTALL)
        rows[html_lib.unescape(name)] = (cls, [_plain(c) for c in cells], body)
    return rows


def _card(page: str, anchor: str) -> str:
    """The HTML of one variant's section."""
    start = page.index(f'id="{anchor}"')
    end = page.find('<section class="variant', start)
    return page[start : end if end > 0 else page.index('<section id="dataset"')]


def _pareto_points(result: RunResult, target: str) -> list[plots.ParetoPoint]:
    records = {v.name: v for v in result.variants}
    points = []
    for e in result.evaluations:
        (eff,) = [f for f in e.efficiency if f.target == target]
        v = records[e.variant]
        points.append(
            plots.ParetoPoint(
                e.variant, eff.latency[0].p50_ms, e.quality.accuracy, v.size_bytes, rejected=v.status == "rejected"
            )
        )
    return points


def test_optimization_table_lists_every_variant_with_its_status(opt_page: str, optimized: RunResult) -> None:
    rows = _optimization_rows(opt_page)
    assert list(rows) == list(OPTIMIZED_VARIANTS)
    assert {name: cls for name, (cls, _, _) in rows.items()} == {
        "source": "source",
        "onnx-fp32": "accepted",
        "onnx-fused": "accepted",
        "int8-dynamic": "accepted",
        "int8-static": "rejected",
        "fp16": "accepted",
    }
    badges = {
        "source": '<span class="badge">source</span>',
        "accepted": '<span class="badge ok">accepted</span>',
        "rejected": '<span class="badge bad">rejected</span>',
    }
    for i, name in enumerate(OPTIMIZED_VARIANTS, start=1):
        cls, _, body = rows[name]
        assert f'<a href="#v{i}-{name}">{name}</a>' in body  # the name links to the variant's card
        assert badges[cls] in body
    # kind and parent under the name; status with the reason of a rejection
    assert rows["source"][1][:2] == ["source transformers", "source"]
    assert rows["int8-dynamic"][1][:2] == ["int8-dynamic onnx · from onnx-fused", "accepted"]
    reason = optimized.variants[OPTIMIZED_VARIANTS.index("int8-static")].reason
    assert reason.startswith("outside tolerance")
    assert rows["int8-static"][1][1] == f"rejected {reason}"
    assert '<a href="#optimization">Optimization</a>' in opt_page[opt_page.index("<nav") : opt_page.index("</nav>")]


def test_optimization_table_computes_size_ratios_and_speedups(opt_page: str) -> None:
    rows = _optimization_rows(opt_page)
    # file size against the source's 86.7 MB (90,868,376 bytes): 90,868,376 / 23,150,112 = 3.93, / 45,496,310 = 2.00
    sizes = {name: cells[2] for name, (_, cells, _) in rows.items()}
    assert sizes == {
        "source": "86.7 MB",
        "onnx-fp32": "86.8 MB same size",
        "onnx-fused": "86.6 MB same size",
        "int8-dynamic": "22.1 MB 3.9× smaller",
        "int8-static": "22.3 MB 3.9× smaller",
        "fp16": "43.4 MB 2.0× smaller",
    }
    assert SIZE_BYTES["source"] / SIZE_BYTES["int8-dynamic"] == pytest.approx(3.925, abs=1e-3)
    # p50 at batch 1 and the speedup over the source's 9.80 ms (edge-cpu) and 3.10 ms (cloud-cpu):
    # e.g. int8-dynamic 9.80 / 2.94 = 3.33 and 3.10 / 1.116 = 2.78; fp16 is slower: 9.80 / 11.27 = 0.87
    latency = {name: cells[-2:] for name, (_, cells, _) in rows.items()}
    assert latency == {
        "source": ["9.80", "3.10"],
        "onnx-fp32": ["8.04 1.2×", "2.54 1.2×"],
        "onnx-fused": ["5.98 1.6×", "1.71 1.8×"],
        "int8-dynamic": ["2.94 3.3×", "1.12 2.8×"],
        "int8-static": ["2.55 3.8×", "0.96 3.2×"],
        "fp16": ["11.27 0.9×", "3.84 0.8×"],
    }
    assert rows["fp16"][2].count('<span class="sub slower"') == 2
    assert 'class="sub slower"' not in rows["int8-dynamic"][2]


def test_optimization_table_shows_faithfulness_against_the_source(opt_page: str) -> None:
    rows = _optimization_rows(opt_page)
    # accuracy, its paired delta with the 95% interval (points), agreement, ECE delta
    assert rows["source"][1][3:5] == ["89.0%", "reference for every comparison"]
    assert rows["int8-dynamic"][1][3:7] == ["88.6%", "−0.38 pts [−0.88, +0.12]", "98.6%", "+1.63 pts"]
    assert rows["int8-static"][1][3:7] == ["87.5%", "−1.50 pts [−2.38, −0.75]", "96.2%", "+2.41 pts"]
    assert rows["fp16"][1][3:7] == ["89.1%", "+0.12 pts [−0.12, +0.38]", "99.8%", "−0.08 pts"]
    assert rows["onnx-fp32"][1][3:7] == ["89.0%", "0.00 pts [0.00, 0.00]", "100.0%", "0.00 pts"]
    # an interval wholly below zero is red; an ECE increase above 1 point is amber, with the reason
    assert '<span class="delta worse">' in rows["int8-static"][2]
    assert '<span class="delta worse">' not in rows["int8-dynamic"][2]
    warned = {name for name, (_, _, body) in rows.items() if 'class="num warn"' in body}
    assert warned == {"int8-dynamic", "int8-static"}
    assert "quantization often breaks calibration" in rows["int8-dynamic"][2]
    assert "Quantization often breaks calibration" in _plain(opt_page)  # the note under the table says why


def test_single_variant_run_has_no_optimization_section(result: RunResult) -> None:
    single = result.replace(variants=result.variants[:1], evaluations=result.evaluations[:1])
    html = render_report(single)
    assert 'id="optimization"' not in html
    assert 'href="#optimization"' not in html
    assert "Faithfulness &amp; recipe" not in html
    assert len(SVG.findall(html)) == 4 + 1  # the variant's own figures and the audit's overlap plot
    # two variants are enough for the section; without faithfulness records, deltas are plain differences
    rows = _optimization_rows(render_report(result))
    assert list(rows) == list(VARIANTS)
    assert rows["int8-dynamic"][1][3:6] == ["87.5%", "−1.50 pts", "—"]


def test_rejected_variants_are_marked_everywhere(opt_page: str, optimized: RunResult) -> None:
    name = "int8-static"
    anchor = f"v{OPTIMIZED_VARIANTS.index(name) + 1}-{name}"
    reason = html_lib.escape(optimized.variants[OPTIMIZED_VARIANTS.index(name)].reason, quote=False)
    assert f'<section class="variant rejected" id="{anchor}">' in opt_page
    card = _card(opt_page, anchor)
    assert '<span class="badge bad">rejected</span>' in card[: card.index("</h2>")]
    assert f'<div class="callout bad"><b>Rejected</b>: {reason}.' in card
    assert opt_page.count('<section class="variant rejected"') == 1
    # the summary says so too, and a rejected variant never holds a column's best value
    summary = opt_page[opt_page.index('id="summary"') : opt_page.index("</table>", opt_page.index('id="summary"'))]
    rows = dict(re.findall(r'<tr>\s*<td><a href="#v\d-([\w-]+)">(.*?)</tr>', summary, flags=re.DOTALL))
    assert '<span class="badge bad">rejected</span>' in rows[name]
    assert " best" not in rows[name]  # it is the fastest, but out of the running
    assert rows["int8-dynamic"].count(" best") == 4  # the fastest accepted one: p50 and cost on both targets
    assert sum('badge bad">rejected' in row for row in rows.values()) == 1
    # in the Pareto plots: hollow, grey, and said so in the tooltip
    for svg in (s for s in SVG.findall(opt_page) if "against p50 latency" in s):
        (circle,) = [c for c in ET.fromstring(svg).iter(f"{SVG_NS}circle") if "dp-rejected" in (c.get("class") or "")]
        assert circle.get("stroke") == plots.GREY and circle.get("fill") == "#fff"
        assert "".join(circle.itertext()).startswith(f"{name} (rejected)")


def test_pareto_front_is_the_undominated_accepted_points() -> None:
    P = plots.ParetoPoint
    points = [
        P("slow-best", 10.0, 0.92),
        P("same-accuracy-slower", 12.0, 0.92),  # slow-best is faster at the same accuracy
        P("fast", 2.0, 0.90),
        P("fast-twin", 2.0, 0.90),  # equal to fast: neither dominates the other
        P("middle", 5.0, 0.91),
        P("dominated", 6.0, 0.905),  # middle is both faster and more accurate
        P("same-speed-worse", 5.0, 0.90),  # middle is as fast and more accurate
        P("rejected-best", 1.0, 0.99, rejected=True),  # would beat everything, but is out
        P("not-measured", math.nan, 0.99),
        P("no-accuracy", 0.5, math.nan),
    ]
    front = plots.pareto_front(points)
    assert [points[i].name for i in front] == ["fast", "fast-twin", "middle", "slow-best"]
    assert plots.pareto_front([]) == []
    assert plots.pareto_front([P("a", 1.0, 0.5, rejected=True)]) == []
    assert plots.pareto_front([P("only", 3.0, 0.5)]) == [0]


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_matches_its_definition_on_random_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    latency = np.round(rng.uniform(1, 20, n), 1)  # rounded: ties on both axes happen
    accuracy = np.round(rng.uniform(0.8, 0.95, n), 2)
    rejected = rng.uniform(size=n) < 0.2
    points = [
        plots.ParetoPoint(f"v{i}", float(latency[i]), float(accuracy[i]), rejected=bool(rejected[i])) for i in range(n)
    ]
    eligible = [i for i in range(n) if not rejected[i]]

    def dominates(j: int, i: int) -> bool:
        return bool(
            latency[j] <= latency[i]
            and accuracy[j] >= accuracy[i]
            and (latency[j] < latency[i] or accuracy[j] > accuracy[i])
        )

    expected = {i for i in eligible if not any(dominates(j, i) for j in eligible)}
    front = plots.pareto_front(points)
    assert set(front) == expected
    assert [latency[i] for i in front] == sorted(latency[i] for i in front)
    assert [accuracy[i] for i in front] == sorted(accuracy[i] for i in front)  # a staircase going up


def test_pareto_plots_show_the_expected_front(opt_page: str) -> None:
    figures = [s for s in SVG.findall(opt_page) if "against p50 latency" in s]
    assert len(figures) == len(TARGETS)
    for svg, target in zip(figures, TARGETS, strict=True):
        root = ET.fromstring(svg)
        assert root.get("aria-label") == f"Test accuracy against p50 latency on {target.name}"
        circles = {
            "".join(c.itertext()).split(":")[0].removesuffix(" (rejected)"): c.get("class").split()[1]
            for c in root.iter(f"{SVG_NS}circle")
            if c.get("class")
        }
        assert circles == {
            "source": "dp-dominated",
            "onnx-fp32": "dp-dominated",
            "onnx-fused": "dp-front",
            "int8-dynamic": "dp-front",
            "int8-static": "dp-rejected",
            "fp16": "dp-front",
        }
        labels = [t for t in _texts(svg) if t in OPTIMIZED_VARIANTS]
        assert sorted(labels) == sorted(OPTIMIZED_VARIANTS)  # every point labelled, once
    caption = f"Pareto-optimal on {TARGETS[0].name}: {', '.join(PARETO_FRONT)}"
    assert f"<figcaption>{caption}</figcaption>" in opt_page


def _circle_geometry(svg: str) -> dict[str, dict[str, float]]:
    out = {}
    for c in ET.fromstring(svg).iter(f"{SVG_NS}circle"):
        if c.get("class"):
            name = "".join(c.itertext()).split(":")[0].removesuffix(" (rejected)")
            out[name] = {k: float(c.get(k)) for k in ("cx", "cy", "r")}
    return out


def test_pareto_plot_geometry(optimized: RunResult) -> None:
    points = _pareto_points(optimized, "edge-cpu")
    svg = plots.pareto_plot(points, title="edge-cpu", batch_size=1)
    geo = _circle_geometry(svg)
    by_name = {p.name: p for p in points}
    # linear x (2.55 to 11.27 ms is less than 10x): x = x0 + k * latency
    (a, b), rest = list(by_name)[:2], list(by_name)[2:]
    k = (geo[a]["cx"] - geo[b]["cx"]) / (by_name[a].latency_ms - by_name[b].latency_ms)
    x0 = geo[a]["cx"] - k * by_name[a].latency_ms
    for name in rest:
        assert geo[name]["cx"] == pytest.approx(x0 + k * by_name[name].latency_ms, abs=0.02)
    assert "log scale" not in ET.fromstring(svg).get("aria-label")
    # y: accuracy, higher up
    order = sorted(by_name, key=lambda n: by_name[n].accuracy)
    assert [geo[n]["cy"] for n in order] == sorted((geo[n]["cy"] for n in order), reverse=True)
    assert geo["source"]["cy"] == geo["onnx-fp32"]["cy"] == geo["onnx-fused"]["cy"]
    # area proportional to the file size
    per_byte = {n: geo[n]["r"] ** 2 / by_name[n].size_bytes for n in by_name}
    assert max(per_byte.values()) == pytest.approx(min(per_byte.values()), rel=2e-3)
    # the step line runs through the front's centres, fastest first: right, then up
    (line,) = [el for el in ET.fromstring(svg).iter(f"{SVG_NS}path") if el.get("class") == "dp-front"]
    numbers = [float(v) for v in re.findall(r"-?[\d.]+", line.get("d"))]
    front = [geo[n] for n in PARETO_FRONT]
    assert numbers[:2] == pytest.approx([front[0]["cx"], front[0]["cy"]], abs=0.01)
    assert numbers[2:] == pytest.approx([v for c in front[1:] for v in (c["cx"], c["cy"])], abs=0.01)
    assert re.fullmatch(r"M[\d.]+ [\d.]+(H[\d.]+V[\d.]+){2}", line.get("d"))
    texts = _texts(svg)
    assert {"Pareto-optimal", "Pareto front", "dominated", "rejected", "point area ∝ file size:"} <= set(texts)
    assert {"22.1 MB", "86.8 MB"} <= set(texts)  # the smallest and the largest file in the size key
    assert "p50 latency per call, batch 1 (ms)" in texts


def test_pareto_plot_switches_to_log_scale_over_a_wide_range() -> None:
    P = plots.ParetoPoint
    points = [P("gpu-ish", 0.5, 0.90, 10), P("middle", 5.0, 0.91, 20), P("slow", 50.0, 0.93, 40)]
    svg = plots.pareto_plot(points, title="edge")
    assert ET.fromstring(svg).get("aria-label").endswith("(log scale)")
    assert any("(log scale)" in t for t in _texts(svg))
    geo = _circle_geometry(svg)
    # equal ratios are equal distances
    assert geo["middle"]["cx"] - geo["gpu-ish"]["cx"] == pytest.approx(
        geo["slow"]["cx"] - geo["middle"]["cx"], abs=0.02
    )
    # at most 10x stays linear
    narrow = plots.pareto_plot([P("a", 1.0, 0.9), P("b", 10.0, 0.91)], title="edge")
    assert "log scale" not in ET.fromstring(narrow).get("aria-label")


def test_variant_cards_show_faithfulness_and_recipe(opt_page: str, optimized: RunResult) -> None:
    assert 'id="v1-source-recipe"' not in opt_page  # the source is the reference: nothing to compare
    for i, name in enumerate(OPTIMIZED_VARIANTS[1:], start=2):
        assert f'<section class="recipe" id="v{i}-{name}-recipe">' in opt_page

    dynamic = _plain(_card(opt_page, "v4-int8-dynamic"))
    for text in (
        "Faithfulness to source",
        "Top-1 agreement 98.62%",
        "Accuracy Δ −0.38 pts 95% CI −0.88 to +0.12",
        "ECE Δ +1.63 pts",
        "Max |logit difference| 1.84",
        "Mean |logit difference| 0.093",
        # the tolerance check, against optimize.tolerance of the run's config
        "Accuracy 89.00% source 89.17%",
        "Accuracy change −0.17 points [−0.64, +0.31] may drop 1.00 pts within",
        "Agreement 99.17% changed 0.8% [0.4%, 1.7%] at most 5.0% may change within",
        "Outcome within",
        "Checked when the variant was made, on validation (split, n = 600): the test split stays unseen.",
        "Intervals are one-sided 5.0% bounds",
        "Recipe int8-dynamic",
        "per-channel scales yes",
        "reduced range (7-bit weights) no",
        "nodes quantized 70",
        # the search, step by step: nodes kept in float, where, accuracy change [interval], agreement, outcome
        "1 0 validation n = 600 −2.50 [−3.61, −1.38] 93.33% outside",
        "2 1 validation n = 600 −0.83 [−1.55, −0.11] 96.83% undecided n ≈ 18,394",
        "3 2 validation n = 600 −0.17 [−0.64, +0.31] 99.17% within",
        "Nodes kept in float · 2",
        "/classifier/MatMul MatMul 4.12%",
        "/bert/encoder/layer.5/output/dense/MatMul MatMul 1.87%",
        "Kept in float: among the most sensitive nodes needed to stay within tolerance.",
    ):
        assert text in dynamic, text
    assert dynamic.count("among the most sensitive nodes") == 1  # the same reason for every node: said once
    assert "could not decide" not in dynamic
    fp16 = _plain(_card(opt_page, "v6-fp16"))
    assert "on validation + train (splits pooled, n = 600)" in fp16
    assert "validation alone could not decide (on validation (n=160): accuracy +0.00 points [-1.51, +1.51]" in fp16

    fused = _plain(_card(opt_page, "v3-onnx-fused"))
    assert "Graph fusion · 1,108 → 316 nodes (−71%)" in fused
    for op, count in (
        ("SkipLayerNormalization", 12),
        ("Attention", 6),
        ("BiasGelu", 6),
        ("EmbedLayerNormalization", 1),
    ):
        assert f"{op} {count}" in fused
    assert "optimization level extended" in fused

    export = _plain(_card(opt_page, "v2-onnx-fp32"))
    assert "Export parity ✓" in export
    assert "Max |logit difference| 2.4e-06 allowed 0.0104" in export
    assert "Top-1 agreement 100.00% on 64 real inputs" in export

    static = _plain(_card(opt_page, "v5-int8-static"))
    assert "Accuracy change −2.50 points [−3.61, −1.38] may drop 1.00 pts outside" in static
    assert "Agreement 93.33% changed 6.7% [5.2%, 8.5%] at most 5.0% may change outside" in static
    assert "accuracy-aware search off" in static

    fp16 = _card(opt_page, "v6-fp16")
    assert "<b>Note</b> · FP16 halves the file; on CPUs without native FP16 arithmetic" in fp16
    # recipe keys the report has no layout for: compact JSON, once
    assert "<code>[&#34;Softmax&#34;, &#34;LayerNormalization&#34;]</code>" in fp16
    assert "<code>true</code>" in fp16
    assert "Other details" not in _card(opt_page, "v4-int8-dynamic")
    # the provenance card keeps the raw recipe; the variant card does not repeat it verbatim
    for v in optimized.variants:
        assert opt_page.count(str(escape(report_format.fmt_json(v.recipe)))) == 1


def test_recipe_view_falls_back_to_json_for_unknown_or_malformed_parts(result: RunResult) -> None:
    recipe = {
        "recipe": "pruned",
        "amount": 0.3,
        "layers": [0, 2, 4],
        "parity": "skipped",
        "search": [{"k": 1}],
        "excluded_nodes": 3,
        "transformer_fusions": {"Attention": "six"},
        "nodes_before": "many",
        "note": "",
    }
    view = report_html._recipe_view(recipe, {})
    assert dict(view["other"]) == {
        "amount": 0.3,
        "layers": [0, 2, 4],
        "parity": "skipped",
        "search": [{"k": 1}],
        "excluded_nodes": 3,
        "transformer_fusions": {"Attention": "six"},
        "nodes_before": "many",
    }
    assert view["parity"] is None and view["search"] is None and view["excluded"] is None and view["fusion"] is None
    variant = result.variants[1].replace(recipe=recipe)
    html = render_report(result.replace(variants=(result.variants[0], variant)))
    card = _card(html, "v2-int8-dynamic")
    assert "<code>[0, 2, 4]</code>" in card and "<code>&#34;skipped&#34;</code>" in card
    assert "Recipe pruned" in _plain(card)


def test_a_variant_without_evaluation_is_listed_without_a_link(result: RunResult) -> None:
    unevaluated = result.variants[1].replace(name="int4-experimental", status="rejected", reason="failed to load")
    html = render_report(result.replace(variants=(*result.variants, unevaluated)))
    rows = _optimization_rows(html)
    assert list(rows) == [*VARIANTS, "int4-experimental"]
    cls, cells, body = rows["int4-experimental"]
    assert cls == "rejected" and "<a " not in body
    assert cells[1] == "rejected failed to load"
    assert cells[3:] == ["—", "—", "—", "—", "—", "—"]  # no accuracy, faithfulness or latency measured
    # the Pareto plots only hold measured variants
    for svg in (s for s in SVG.findall(html) if "against p50 latency" in s):
        assert len(_circle_geometry(svg)) == len(VARIANTS)
