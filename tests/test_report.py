"""report/: results.json round-trip, the self-contained HTML report, its figures and its number formatting."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from _fixtures_report import LABELS, TARGETS, VARIANTS, make_run_result
from deployable.core.records import RunResult
from deployable.report import ReportSection, plots, render_report, write_report, write_results_json
from deployable.report import html as report_html

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


def test_every_svg_is_well_formed(page: str, result: RunResult) -> None:
    svgs = SVG.findall(page)
    # 4 per variant (confusion, reliability, slices, latency) + the latency comparison in the summary
    assert len(svgs) == 4 * len(result.evaluations) + 1
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG_NS}svg"
        assert root.get("viewBox")
        assert root.findall(f".//{SVG_NS}path"), "an SVG without any drawing"


def test_element_ids_are_unique(page: str) -> None:
    ids = re.findall(r'\bid="([^"]+)"', page)
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates
    # every internal reference points at an id of the page
    refs = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    assert refs <= set(ids)


def test_report_is_self_contained(page: str) -> None:
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
        ReportSection(id="audit", title="Data audit", html="<p>2 near-duplicates</p>"),
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
            'id="audit"',
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

    monkeypatch.setattr(report_html.os, "replace", fail)
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
        (report_html.fmt_pct, 0.91349, "91.3%"),
        (report_html.fmt_pct, 1.0, "100.0%"),
        (report_html.fmt_pct, math.nan, "—"),
        (report_html.fmt_pct, None, "—"),
        (report_html.fmt_ms, 1234.567, "1,234.6"),
        (report_html.fmt_ms, 12.345, "12.35"),
        (report_html.fmt_ms, 0.9, "0.90"),
        (report_html.fmt_ms, 0.01234, "0.012"),
        (report_html.fmt_ms, math.nan, "—"),
        (report_html.fmt_usd, 0.0123456, "$0.0123"),
        (report_html.fmt_usd, 0.000267, "$0.000267"),
        (report_html.fmt_usd, 5, "$5.00"),
        (report_html.fmt_usd, 12.5, "$12.50"),
        (report_html.fmt_usd, None, "—"),
        (report_html.fmt_int, 12345, "12,345"),
        (report_html.fmt_mb, 412.53, "412.5 MB"),
        (report_html.fmt_mb, 0.5, "512.0 KB"),
        (report_html.fmt_seconds, math.nan, "—"),
        (report_html.fmt_bytes, 90_868_376, "86.7 MB"),
        (report_html.fmt_date, "2025-03-14T11:26:53+02:00", "2025-03-14 09:26 UTC"),
        (report_html.fmt_date, "not a date", "not a date"),
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
    ticks = plots._nice_ticks(lo, hi, n)
    assert ticks[0] <= lo and ticks[-1] >= hi  # they span the range
    assert 2 <= len(ticks) <= n + 2
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in {1, 2, 2.5, 5}
    assert all(round(t / step, 9).is_integer() for t in ticks)


def test_nice_ticks_of_unit_range_and_non_finite() -> None:
    assert plots._nice_ticks(0, 1, 5) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert plots._nice_ticks(0, math.nan, 5) == []
    assert plots._nice_ticks(-math.inf, 1, 5) == []


def test_scope_ids_prefixes_ids_and_references() -> None:
    svg = '<svg><defs><path id="a"/></defs><use xlink:href="#a"/><g clip-path="url(#a)" style="x:url(#a)"/></svg>'
    scoped = plots.scope_ids(svg, "f1-")
    assert scoped == (
        '<svg><defs><path id="f1-a"/></defs><use xlink:href="#f1-a"/>'
        '<g clip-path="url(#f1-a)" style="x:url(#f1-a)"/></svg>'
    )
