"""`make demo` end to end in its quick mode: every stage runs and the report holds every section."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from ecgae.demo import main, plan, train_all  # noqa: E402


def test_quick_demo_writes_report_bundles_and_bench(tmp_path, capsys):
    from ecgae.evaluation.summary import README_END, README_START

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_START}\nold figures\n{README_END}\n\nafter\n")
    results = tmp_path / "docs" / "results.md"
    assert main(["--quick", "--out", str(tmp_path), "--results", str(results), "--readme", str(readme)]) == 0
    out = capsys.readouterr().out
    assert "AUC normal vs abnormal" in out and "raw signal -> runtime" in out
    assert "[run 1 of 3] ae-seed-mitdb" in out and "[run 2 of 3, about " in out and "of training left]" in out
    assert "KLD: 0.0000" not in out  # an AE's epochs log no KL term
    report = (tmp_path / "report.md").read_text()
    assert report.index("## Summary") < report.index("## The chapter's figures")
    assert "**Deploy `demo/bundles/ae-seed-mitdb`**" in report and "](examples.png)" in report
    page = results.read_text()
    assert "Written by `make demo` on " in page and "| cross-wearer AUC with enrolment" in page
    g = json.loads((tmp_path / "ec57" / "ec57.json").read_text())["gross"]["real"]["model"]
    assert f"(EC57 gross): VEB Se / +P, N Sp | {g['veb_se']:.3f} / {g['veb_pp']:.3f}, {g['n_spec']:.3f} |" in page
    assert (results.parent / "figures" / "examples.png").is_file() and "](figures/examples.png)" in page
    site_report = (results.parent / "report.md").read_text()  # the full report as a page of the site
    assert "](report/runs/ae-seed-mitdb/latent.png)" in site_report and "](../docs/" not in site_report
    assert (results.parent / "report" / "runs" / "ae-seed-mitdb" / "latent.png").is_file()
    assert "[every figure and table](report.md)" in page
    block = readme.read_text()
    assert "old figures" not in block and "| raw 30-min record -> beats -> scores" in block
    assert block.startswith("# title") and block.endswith("after\n")
    for section in ("## The chapter's figures", "## Held-out metrics", "## Corrected decoder vs the seed decoder",
                    "## Export parity", "## The runtime on a raw signal", "## Benchmark", "## Targets",
                    "## Cross-wearer scoring", "## Beat classes of pre-cut beats (ECG5000)",
                    "## Archive-scale scoring",
                    "## Compression", "## Denoising", "## Gap filling"):
        assert section in report, section
    runs = plan(quick=True)
    for r in runs:
        assert (tmp_path / "runs" / r.name / "latent.png").is_file()
        assert json.loads((tmp_path / "bundles" / r.name / "manifest.json").read_text())["parity"]["passed"]
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["trained"] == len(runs) and summary["raw_signal"]["annotated_beats_found"] > 0.99
    assert json.loads((tmp_path / "bench" / "bench.json").read_text())["targets"]
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "cross" / "scores.png").is_file()
    assert "cross/scores.png" in report
    assert all((tmp_path / "uses" / f"{f}.png").is_file()
               for f in ("compression", "denoising", "denoising_ectopy", "gap_filling"))
    assert train_all(runs, tmp_path) == 0  # a second invocation keeps finished runs


def test_the_field_table_row_spans_its_leads(tmp_path):
    """The headline row of the field table gives the lowest and highest usable and flagged shares, and counts
    only the leads the table measured."""
    from ecgae.evaluation.summary import headline_rows

    rows = [{"usable_share": 0.93, "flagged_share": 0.11}, {"usable_share": 1.0, "flagged_share": 0.004},
            {"usable_share": None, "flagged_share": None}]
    (tmp_path / "field").mkdir()
    (tmp_path / "field" / "field.json").write_text(json.dumps({"rows": rows}))
    (row,) = headline_rows(tmp_path, {}, {}, {})
    assert row[0].startswith("other people's and devices' recordings (2 leads)")
    assert row[1] == "93.0% to 100.0% / 0.4% to 11.0%"

