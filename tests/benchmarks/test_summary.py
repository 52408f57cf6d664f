"""benchmarks/README.md's results blocks are the committed reports, rebuilt by the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import summary

README = """# Benchmarks

Prose written by hand.

<!-- results: fast (python -m benchmarks.summary --write-readme) -->
stale text
<!-- end results: fast -->

More prose.

<!-- results: never-run (python -m benchmarks.summary --write-readme) -->
<!-- end results: never-run -->
"""


def folder(tmp_path: Path) -> tuple[Path, Path]:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    results = tmp_path / "results"
    results.mkdir()
    (results / "fast.md").write_text("Command: `python -m fast`\n\n![Plot](fast.png)\n")
    return readme, results


def test_the_benchmarks_readme_shows_the_committed_reports() -> None:
    assert summary.main(["--check"]) == 0


def test_write_readme_puts_each_report_in_its_block_and_links_its_plot(tmp_path: Path) -> None:
    readme, results = folder(tmp_path)
    args = ["--readme", str(readme), "--results", str(results), "--write-readme"]
    assert summary.main(args) == 0
    text = readme.read_text()
    assert "Command: `python -m fast`\n\n![Plot](results/fast.png)\n" in text
    assert "stale text" not in text
    assert "No results yet: `never-run.md` is missing from the results folder." in text
    assert text.startswith("# Benchmarks\n\nProse written by hand.\n")
    assert "More prose." in text
    # Rebuilding again changes nothing.
    assert summary.main(args) == 0
    assert readme.read_text() == text


def test_check_fails_and_says_what_to_run_when_a_report_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme, results = folder(tmp_path)
    base = ["--readme", str(readme), "--results", str(results)]
    assert summary.main([*base, "--write-readme"]) == 0
    assert summary.main([*base, "--check"]) == 0
    (results / "fast.md").write_text("Command: `python -m fast --again`\n")
    assert summary.main([*base, "--check"]) == 1
    assert "python -m benchmarks.summary --write-readme" in capsys.readouterr().err
