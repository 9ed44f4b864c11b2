"""The README's Kernels table is the committed result of the last full ``make test-kernels``."""

from __future__ import annotations

import json
import pathlib

from tests.kernels import matrix, readme

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_readme_table_is_rendered_from_kernels_json():
    record = json.loads((REPO / "tests/kernels/kernels.json").read_text())
    text = (REPO / "README.md").read_text()
    assert readme.current_table(text) == readme.section(record), (
        "README's Kernels table is stale: run `python3 -m tests.kernels readme`")


def test_every_matrix_row_is_in_the_committed_results():
    record = json.loads((REPO / "tests/kernels/kernels.json").read_text())
    assert [k["kernel"] for k in record["kernels"]] == [k.name for k in matrix.MATRIX]


def test_render_shows_a_refusal_and_the_counts():
    record = {"kernels": [{"kernel": "5.10", "package": "linux-image-x=5.10.262-1", "lockdown": "none",
                           "preflight_error": "needs Linux >= 5.17",
                           "gadgets": {"drops": {"passed": 1, "failed": 2, "skipped": 0}}}]}
    table = readme.render(record)
    assert "| 5.10 | 5.10.262-1 | refused: needs Linux >= 5.17 |" in table
    assert "1 passed, 2 failed" in table
