"""Export refuses bad input with one clear line and writes nothing; failures never leave half a bundle."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch", reason="needs the [train] extra")

from ecgae.export import bundle as bundle_module  # noqa: E402
from ecgae.export.bundle import ParityError, export_run  # noqa: E402
from ecgae.runtime.errors import EcgaeError, InputError  # noqa: E402


def _quiet(*_):
    pass


def _tree(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture()
def run_copy(tiny_runs, tmp_path):
    """A private copy of the tiny AE run that a test may damage."""
    return shutil.copytree(tiny_runs["ae"], tmp_path / "run")


def _edit_config(run, **train):
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"].update(train)
    (run / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("damage, match", [
    (lambda run: shutil.rmtree(run), "expected an existing folder"),
    (lambda run: (run / "checkpoint.pt").unlink(), "expected checkpoint.pt"),
    (lambda run: (run / "checkpoint.pt").write_bytes(b"not a checkpoint"), "unreadable or corrupt"),
    (lambda run: (run / "config.json").write_text("{"), "not valid JSON"),
    (lambda run: (run / "metrics.json").unlink(), "expected metrics.json"),
    (lambda run: (run / "split.json").write_text('{"train": []}'), "expected key 'test'"),
    (lambda run: (run / "split.json").write_text('{"test": [100000]}'), "split.json test indices"),
    (lambda run: _edit_config(run, model="vae"), "does not fit a vae/seed"),
    (lambda run: _edit_config(run, arch="no-such-arch"), "received kind='ae', arch='no-such-arch'"),
], ids=["missing-run", "no-checkpoint", "corrupt-checkpoint", "bad-config", "no-metrics", "split-no-test",
        "split-out-of-range", "other-arch", "unknown-arch"])
def test_bad_run_is_refused_and_nothing_written(run_copy, tmp_path, damage, match):
    damage(run_copy)
    with pytest.raises(InputError, match=match):
        export_run(run_copy, tmp_path / "out" / "bundle", log=_quiet)
    assert not (tmp_path / "out").exists()


def test_bad_target_and_options_are_refused(tiny_runs, tmp_path):
    run = tiny_runs["ae"]
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep me")
    cases = [
        (dict(out_dir=tmp_path / "full"), "already exists"),
        (dict(out_dir=tmp_path / "full", force=True), "not one; refusing to delete it"),
        (dict(out_dir=tmp_path / "file"), "received an existing file"),
        (dict(out_dir=tmp_path / "file" / "bundle"), "expected a writable folder"),
        (dict(out_dir=tmp_path / "new", opset=12), "--opset: expected 17..20"),
        (dict(out_dir=tmp_path / "new", atol=0.0), "--atol: expected a finite number > 0"),
    ]
    before = _tree(tmp_path)
    for kwargs, match in cases:
        with pytest.raises(InputError, match=match):
            export_run(run, log=_quiet, **kwargs)
    assert _tree(tmp_path) == before and not (tmp_path / "new").exists()


def test_parity_failure_names_the_worst_element_and_writes_nothing(tiny_runs, tmp_path):
    with pytest.raises(ParityError, match=r"at disable_all: element \[\d+, \d+(, \d+)?\] torch .* vs onnxruntime"):
        export_run(tiny_runs["vae"], tmp_path / "b", atol=1e-12, log=_quiet)
    assert list(tmp_path.iterdir()) == []


def test_failed_forced_export_keeps_the_existing_bundle(bundles, tiny_runs, tmp_path, monkeypatch):
    good = shutil.copytree(bundles["ae"], tmp_path / "good")
    before = _tree(good)
    with pytest.raises(ParityError):
        export_run(tiny_runs["ae"], good, atol=1e-12, force=True, log=_quiet)
    assert _tree(good) == before

    def broken_write(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "seal", broken_write)  # fails after graphs and reference are written
    with pytest.raises(OSError, match="No space left"):
        export_run(tiny_runs["ae"], good, force=True, log=_quiet)
    assert _tree(good) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]


def test_forced_export_replaces_a_bundle_completely(bundles, tiny_runs, tmp_path):
    target = shutil.copytree(bundles["vae"], tmp_path / "b")
    (target / "stale.txt").write_text("from an older bundle")
    manifest = export_run(tiny_runs["vae"], target, force=True, log=_quiet)
    assert json.loads((target / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in target.iterdir()) == ["decoder.onnx", "encoder.onnx", "manifest.json",
                                                        "reference.npz", "score.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_cli_prints_one_line_errors(tiny_runs, tmp_path, capsys):
    from ecgae.cli import main

    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("ecgae export: error: run directory: expected")
    assert issubclass(ParityError, EcgaeError)


def test_naive_export_is_refused_for_an_arch_without_a_literal_decoder(tmp_path):
    from ecgae.training.train import TrainConfig, train

    train(TrainConfig(arch="upsample", data="bundled:ecg5000", epochs=1), tmp_path / "run", log=lambda *_: None)
    with pytest.raises(InputError, match="--naive: expected a seed-arch run"):
        export_run(tmp_path / "run", tmp_path / "bundle", naive=True, log=lambda *_: None)
    assert not (tmp_path / "bundle").exists()
    m = export_run(tmp_path / "run", tmp_path / "bundle", log=lambda *_: None)
    assert m["model"]["decoder_graph"] == "rewritten" and m["parity"]["passed"]
    assert m["graphs"]["decoder"]["macs_per_beat"] == m["graphs"]["decoder"]["macs_per_beat_literal"]


@pytest.mark.parametrize("value", ['"abc"', "3", "[[1]]", '["x"]'])
def test_a_split_part_that_is_not_a_list_of_integers_is_refused_by_name(run_copy, tmp_path, value):
    split = json.loads((run_copy / "split.json").read_text())
    split["val"] = json.loads(value)
    (run_copy / "split.json").write_text(json.dumps(split))
    with pytest.raises(InputError, match="split.json val indices: expected a list of integers"):
        export_run(run_copy, tmp_path / "b")
