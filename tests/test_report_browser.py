"""report.html in a real browser: it renders, shows its figures and asks the network for nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _fixtures_report import OPTIMIZED_VARIANTS, VARIANTS, make_optimized_run_result, make_run_result
from deployable.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _open_in_chromium(
    report: Path, result, variants: list[str], shot: Path, check: Callable[[Any], None] | None = None
) -> None:
    """Open ``report`` in headless Chromium and check it renders with no request, failure or console error.

    ``check(page)``, when given, runs further checks on the loaded page before the screenshot.
    """
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: CI images must ship Debian's chromium for the report test")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI runs this test")
    from playwright.sync_api import sync_playwright

    url = report.resolve().as_uri()
    console_errors: list[str] = []
    page_errors: list[str] = []
    failed: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("request", lambda r: None if r.url == url or r.url.startswith("data:") else foreign.append(r.url))
            page.goto(url, wait_until="load")

            assert page.title() == f"{result.name} · deployable report"
            assert page.get_by_role("heading", name=result.name, level=1).is_visible()
            for i, name in enumerate(variants, start=1):
                heading = page.locator(f"#v{i}-{name} > h2")
                assert heading.is_visible()
                assert heading.inner_text().startswith(name)
                assert page.locator("#summary").get_by_role("link", name=name, exact=True).is_visible()
            boxes = [svg.bounding_box() for svg in page.locator("svg").all()]
            drawn = [b for b in boxes if b and b["width"] > 0 and b["height"] > 0]
            assert len(drawn) >= 4, boxes
            # nothing overflows the page sideways (a wide table or figure would give a horizontal scrollbar)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            if check is not None:
                check(page)
                page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()

    assert console_errors == []
    assert page_errors == []
    assert failed == []
    assert foreign == []


def _check_verdict(page: Any) -> None:
    """The verdict leads: above the summary, the chosen variant per target, the failed check, comparisons folded."""
    verdict = page.locator("#verdict")
    assert verdict.is_visible()
    assert verdict.bounding_box()["y"] < page.locator("#summary").bounding_box()["y"]
    assert verdict.get_by_text("PASS", exact=True).first.is_visible()
    assert verdict.locator("table.selections tbody tr").count() == 2
    assert verdict.locator("ul.checks").first.get_by_text("language=de", exact=False).is_visible()
    other = verdict.locator("details", has_text="Comparisons of the other variants")
    assert not other.locator("table").is_visible()
    other.locator("summary").click()
    assert other.locator("tr.fail").is_visible()


def _check_audit(page: Any) -> None:
    _check_verdict(page)
    """The audit section: severity counts, the overlap plot drawn, a finding's samples shown when opened."""
    section = page.locator("#audit")
    assert section.is_visible()
    assert page.locator("nav.toc").get_by_role("link", name="Audit", exact=True).is_visible()
    assert section.locator(".kpi").count() == 5
    plot = section.locator("figure.plot svg").bounding_box()
    assert plot and plot["width"] > 300 and plot["height"] > 100
    leak = section.locator("li", has_text="near duplicates (not exact) of train samples")
    ids = leak.locator("p.ids")
    assert not ids.is_visible()  # the sample list is folded until asked for
    leak.locator("summary").click()
    assert ids.is_visible() and "test:t-0023" in ids.inner_text()
    assert leak.get_by_text("my parcel 0000 never arrived", exact=False).is_visible()
    scan = section.locator("li", has_text="mymodule.Head")
    assert scan.get_by_text("extra_head/data.pkl", exact=False).is_visible()
    assert scan.get_by_text("safetensors", exact=False).first.is_visible()  # how to convert


@pytest.mark.slow
def test_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    result = make_run_result()
    report = write_report(result, tmp_path / "report.html")
    _open_in_chromium(report, result, list(VARIANTS), tmp_path / "report.png", check=_check_audit)


def _check_optimization(page: Any) -> None:
    """The optimization section: every variant in the table, the rejected one marked, Pareto plots side by side."""
    section = page.locator("#optimization")
    assert section.is_visible()
    rows = section.locator("table.variants tbody tr")
    assert rows.count() == len(OPTIMIZED_VARIANTS)
    for name in OPTIMIZED_VARIANTS:
        assert section.get_by_role("link", name=name, exact=True).is_visible()
    rejected = section.locator("tr.rejected")
    assert rejected.count() == 1
    assert rejected.get_by_text("rejected", exact=True).is_visible()
    assert rejected.get_by_text("outside tolerance", exact=False).is_visible()
    # the rejected row is marked by a red bar on its first cell, the others are not
    bar = "getComputedStyle(el).boxShadow"
    assert "inset" in rejected.locator("td").first.evaluate(f"el => {bar}")
    assert section.locator("tr.accepted td").first.evaluate(f"el => {bar}") == "none"
    figures = section.locator(".pareto figure")
    assert figures.count() == 2
    first, second = (figures.nth(i).bounding_box() for i in range(2))
    assert first["width"] > 300 and first["height"] > 200
    assert abs(first["y"] - second["y"]) < 1 and second["x"] > first["x"] + first["width"]  # side by side
    assert page.locator("section.recipe").count() == len(OPTIMIZED_VARIANTS) - 1  # every card but the source's
    # on a narrow screen the plots wrap, one under the other, and the page still does not scroll sideways
    page.set_viewport_size({"width": 600, "height": 900})
    first, second = (figures.nth(i).bounding_box() for i in range(2))
    assert second["y"] >= first["y"] + first["height"]
    assert first["x"] + first["width"] <= 600
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.slow
def test_optimized_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    result = make_optimized_run_result()
    report = write_report(result, tmp_path / "report.html")
    _open_in_chromium(report, result, list(OPTIMIZED_VARIANTS), tmp_path / "report.png", check=_check_optimization)


@pytest.mark.slow
def test_real_run_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    """The report of a real run (the digits example: a CNN on real scans) renders in the browser."""
    import yaml

    import deployable
    from deployable.config import load_config

    config = Path(__file__).resolve().parents[1] / "examples" / "digits" / "deployable.yaml"
    data = yaml.safe_load(config.read_text())
    data.setdefault("evaluate", {})["efficiency"] = {"warmup": 1, "min_repetitions": 3, "max_seconds": 0.05}
    result = deployable.run(load_config(data, base_dir=config.parent), tmp_path / "run")
    _open_in_chromium(tmp_path / "run" / "report.html", result, [v.name for v in result.variants], tmp_path / "run.png")
