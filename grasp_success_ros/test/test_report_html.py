"""report.html, opened as people open it: in a browser (headless Chromium, Debian's
`chromium`), which must render it with every image loaded."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from tool_helpers import red_minus_blue

from grasp_success_ros.bags.writer import write_session
from grasp_success_ros.cli import main as cli
from grasp_success_ros.data.synth import write_dataset
from grasp_success_ros.evaluation.report_html import ReportRow, write_report


def browser() -> str:
    """Chromium (installed by `make venv` where it can, and always in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: CI must open report.html in a browser")
        pytest.skip("chromium is not installed (apt install chromium)")
    return found


def rendered(page: Path) -> dict[str, int]:
    """The page as Chromium renders it: how many images it has and how many did not load
    (the page's own check, written on <body> once everything loaded)."""
    dom = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return {k: int(v) for k, v in re.findall(r'data-([a-z-]+)="(\d+)"', body)}


def rows_in(page: Path) -> int:
    return page.read_text().count("<tr class=")


def test_a_report_renders_with_its_plots_and_thumbnails(tmp_path):
    cv2.imwrite(str(tmp_path / "plot.png"), np.zeros((40, 60, 3), np.uint8))
    rows = [ReportRow("a.png", True, True, 0.9, image=np.full((50, 70, 3), 200, np.uint8)),
            ReportRow("b.png", False, None, None, "no_fresh_frame")]
    page = write_report(tmp_path, "evaluate t", "seed line", [tmp_path / "plot.png"], rows)
    assert rendered(page) == {"images": 2, "broken-images": 0}
    assert rows_in(page) == 2 and "seed line" in page.read_text()


def test_a_missing_image_shows_as_broken(tmp_path):
    cv2.imwrite(str(tmp_path / "plot.png"), np.zeros((40, 60, 3), np.uint8))
    page = write_report(tmp_path, "evaluate t", "", [tmp_path / "plot.png"], [])
    (tmp_path / "plot.png").unlink()
    assert rendered(page) == {"images": 1, "broken-images": 1}


def test_evaluate_writes_a_report_of_every_image_that_renders(tmp_path, capsys):
    write_dataset(tmp_path / "test", 12, seed=3, height=60, width=80)
    model = red_minus_blue(tmp_path / "rb.keras")
    assert cli.main(["evaluate", str(tmp_path / "test"), str(model), "--out-dir",
                     str(tmp_path / "out")]) == 0
    page = tmp_path / "out" / "report.html"
    assert f"report: {page}" in capsys.readouterr().out
    text = page.read_text()
    assert rows_in(page) == 12 and "accuracy" in text
    shown = rendered(page)
    assert shown["broken-images"] == 0 and shown["images"] >= 12 + 3  # thumbnails + plots


def test_bag_eval_writes_a_report_of_every_event_with_its_frame(tmp_path, capsys):
    bag = tmp_path / "session"
    write_session(bag, n_grasps=4, seed=5, height=60, width=80, approach_s=0.3, hold_s=0.4)
    model = red_minus_blue(tmp_path / "rb.keras")
    assert cli.main(["bag-eval", str(bag), "--model", str(model), "--out",
                     str(tmp_path / "out"), "--no-progress", "--quiet"]) == 0
    page = tmp_path / "out" / "report.html"
    assert rows_in(page) == 4 and page.read_text().count("report_files/") == 4
    shown = rendered(page)
    assert shown["broken-images"] == 0 and shown["images"] >= 4 + 2  # frames + plots
