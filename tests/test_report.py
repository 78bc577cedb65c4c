"""report/: results.json round-trip, the self-contained HTML report, its figures and its number formatting."""

from __future__ import annotations

import json
import math
import os
import re
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
    evil = "<script>alert(1)</script> -->"  # also closes an XML comment, as matplotlib writes labels in comments
    e = result.evaluations[0]
    per_class = (e.quality.per_class[0].replace(label=evil), *e.quality.per_class[1:])
    e = e.replace(variant=evil, quality=e.quality.replace(per_class=per_class))
    variants = (result.variants[0].replace(name=evil), *result.variants[1:])
    html = render_report(result.replace(name=evil, evaluations=(e, *result.evaluations[1:]), variants=variants))
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; --&gt;" in html
    for svg in SVG.findall(html):
        ET.fromstring(svg)  # a label in a figure cannot break the SVG either


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
        ET.fromstring(svg)
    assert plots.confusion_matrix_plot(e.quality) == figures[1]


def test_plots_handle_empty_and_wide_ranges(result: RunResult) -> None:
    e = result.evaluations[0]
    for svg in (plots.slice_plot(()), plots.latency_plot(()), plots.latency_plot([e.replace(efficiency=())])):
        assert "no " in ET.fromstring(svg).get("aria-label")
    # latencies from microseconds to seconds switch the panel to a log scale
    eff = e.efficiency[1]
    fast = eff.latency[0].replace(p50_ms=0.004, p95_ms=0.005, p99_ms=0.006)
    slow = eff.latency[1].replace(p50_ms=900.0, p95_ms=1000.0, p99_ms=1200.0)
    wide = plots.latency_plot([e.replace(efficiency=(eff.replace(latency=(fast, slow)),))])
    assert ET.fromstring(wide).get("aria-label").endswith("(log scale: cloud-cpu)")
    narrow = plots.latency_plot([e.replace(efficiency=(eff,))])
    assert "log scale" not in ET.fromstring(narrow).get("aria-label")


def test_scope_ids_prefixes_ids_and_references() -> None:
    svg = '<svg><defs><path id="a"/></defs><use xlink:href="#a"/><g clip-path="url(#a)" style="x:url(#a)"/></svg>'
    scoped = plots.scope_ids(svg, "f1-")
    assert scoped == (
        '<svg><defs><path id="f1-a"/></defs><use xlink:href="#f1-a"/>'
        '<g clip-path="url(#f1-a)" style="x:url(#f1-a)"/></svg>'
    )
