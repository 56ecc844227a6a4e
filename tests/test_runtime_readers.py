"""Every reader on broken files: the project's own error naming the file and the problem, never a
traceback, never an allocation the file cannot back; and any changed byte of a bundle is refused."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ecgae.benchmarks.fuzz import CASES, campaign, summary
from ecgae.cli import main
from ecgae.runtime import BundleError, EcgaeError, InputError, Model, read_manifest
from ecgae.runtime import files as files_module
from ecgae.runtime.bundle import SEAL
from ecgae.runtime.files import read_bytes, read_csv, read_npy, read_npz
from ecgae.runtime.io import read_array
from ecgae.runtime.seal import seal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RAW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _refused(call, error=EcgaeError) -> str:
    with pytest.raises(error) as e:
        call()
    message = str(e.value)
    assert "\n" not in message and message.encode("utf-8")
    return message


def test_an_empty_npy_file_is_refused_by_name(tmp_path):
    (tmp_path / "b.npy").write_bytes(b"")
    assert "b.npy" in _refused(lambda: read_array(tmp_path / "b.npy"), InputError)


def test_a_header_promising_more_rows_than_the_file_holds_is_refused_before_allocating(tmp_path):
    good = _npy(np.zeros((50, 450), dtype=np.float32))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999, 450), }".ljust(118) + "\n"
    forged = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + good[128:]
    (tmp_path / "b.npy").write_bytes(forged)
    message = _refused(lambda: read_array(tmp_path / "b.npy"), InputError)
    assert "promises shape (99999999, 450)" in message and "holds 90,000 bytes" in message


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.mkdir(), "a folder"),
    (lambda p: None, "not found"),
    (lambda p: (p.symlink_to(p.with_name("other.npy")), p.with_name("other.npy").symlink_to(p)), "loop"),
    (lambda p: os.mkfifo(p), "not a regular file"),
])
def test_paths_that_are_not_readable_files_are_refused_with_the_reason(tmp_path, make, reason):
    path = tmp_path / "in.npy"
    make(path)
    message = _refused(lambda: read_array(path, "INPUT"), InputError)
    assert str(path) in message and reason in message


def test_permission_denied_is_reported_as_such(tmp_path, monkeypatch):
    """Simulated: the tests may run as root, which no file permission stops."""
    (tmp_path / "b.npy").write_bytes(_npy(np.zeros(3)))

    def denied(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files_module.os, "open", denied)
    assert "permission denied" in _refused(lambda: read_array(tmp_path / "b.npy"), InputError)


def test_a_non_utf8_file_name_reaches_the_message_as_printable_text(tmp_path, capsys, bundles):
    name = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"\xff\xfe.npy"))
    Path(name).write_bytes(b"garbage")
    assert main(["score", str(bundles["ae"]), name, "--out", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert "\\xff\\xfe.npy" in err and len(err.strip().splitlines()) == 1


def _only_ecgae_errors(call) -> None:
    try:
        call()
    except EcgaeError as e:
        assert "\n" not in str(e) and str(e).encode("utf-8")


@RAW
@given(data=st.one_of(st.binary(max_size=400), st.binary(max_size=300).map(lambda b: b"\x93NUMPY\x01\x00" + b),
                      st.binary(max_size=200).map(lambda b: _npy(np.arange(12.0).reshape(3, 4))[:128] + b)))
def test_npy_reader_on_any_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "x.npy").write_bytes(data)
        _only_ecgae_errors(lambda: read_npy(Path(tmp) / "x.npy", "x"))


@RAW
@given(data=st.one_of(st.binary(max_size=400),
                      st.text(alphabet="0123456789.,-e\nnaif x", max_size=300).map(str.encode)))
def test_csv_reader_on_any_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "x.csv").write_bytes(data)
        _only_ecgae_errors(lambda: read_csv(Path(tmp) / "x.csv", "x"))


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


@RAW
@given(data=st.one_of(st.binary(max_size=400),
                      st.dictionaries(st.sampled_from(["x.npy", "y.npy", "z", "a/b.npy"]),
                                      st.binary(max_size=200), max_size=3).map(_zip),
                      st.binary(max_size=100).map(lambda b: _zip({"x.npy": _npy(np.zeros(4))})[:-30] + b)))
def test_npz_reader_on_any_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "r.npz").write_bytes(data)
        _only_ecgae_errors(lambda: read_npz(Path(tmp) / "r.npz", "reference", BundleError))


@RAW
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=200).map(str.encode),
                      st.recursive(st.none() | st.integers() | st.text(max_size=4),
                                   lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                        max_size=3)).map(
                          lambda v: json.dumps(v).encode())))
def test_manifest_reader_on_any_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "manifest.json").write_bytes(data)
        _only_ecgae_errors(lambda: read_manifest(tmp))


WFDB_HEADER = r"rec [0-9]{1,3} [0-9]{1,4} [0-9]{1,13}\nrec\.dat (8|16|212|24|32|80) [0-9]{1,3}\n"


@settings(max_examples=60, deadline=None)
@given(header=st.one_of(st.binary(max_size=200), st.from_regex(WFDB_HEADER, fullmatch=True).map(str.encode)),
       dat=st.binary(max_size=300))
def test_wfdb_reader_on_any_bytes(header, dat):
    pytest.importorskip("wfdb", reason="needs the [wfdb] extra")
    from ecgae.runtime.cli import read_wfdb

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "rec.hea").write_bytes(header)
        (Path(tmp) / "rec.dat").write_bytes(dat)
        _only_ecgae_errors(lambda: read_wfdb(Path(tmp) / "rec", None))


def test_read_bytes_refuses_files_above_its_limit(tmp_path):
    (tmp_path / "big.json").write_bytes(b" " * 101)
    assert "holds 101 bytes, expected at most 100" in _refused(lambda: read_bytes(tmp_path / "big.json", "doc", 100))


def test_every_malformation_class_is_refused_cleanly(bundles):
    """A small sample of the soak campaign: every class, no traceback, no always-bad input accepted."""
    results = campaign(bundles["ae"], per_class=int(os.environ.get("ECGAE_FUZZ_PER_CLASS", "6")), cli_share=0.5)
    s = summary(results)
    assert s["classes"] == len(CASES) >= 30
    assert s["tracebacks"] == 0 and not s["broken_classes"], s["broken_classes"]


def test_every_single_byte_change_of_a_bundle_is_refused(bundles, tmp_path):
    """1,000+ positions across every bundle file, each byte changed to a random other value: all refused."""
    b = shutil.copytree(bundles["vae"], tmp_path / "b")
    rng = np.random.default_rng(0)
    names = sorted(p.name for p in b.iterdir())
    sizes = {n: (b / n).stat().st_size for n in names}
    per_file = int(os.environ.get("ECGAE_TAMPER_PER_FILE", "260"))
    tried = refused = 0
    for name in names:
        original = (b / name).read_bytes()
        positions = rng.choice(sizes[name], size=min(per_file, sizes[name]), replace=False)
        for pos in positions:
            damaged = bytearray(original)
            damaged[pos] ^= int(rng.integers(1, 256))
            (b / name).write_bytes(damaged)
            tried += 1
            try:
                Model.load(b)
            except BundleError:
                refused += 1
        (b / name).write_bytes(original)
    assert tried >= 1000 and refused == tried
    Model.load(b)  # and the restored bundle loads


@pytest.mark.parametrize("atol", [{}, "tight", None, float("nan")])
def test_a_forged_parity_tolerance_is_the_bundles_error(bundles, tmp_path, atol):
    """Found by the soak campaign: a resealed manifest whose parity.atol is not a number."""
    b = shutil.copytree(bundles["ae"], tmp_path / "b")
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["parity"]["atol"] = atol
    (b / "manifest.json").write_bytes(seal(manifest, SEAL))
    assert "parity.atol: expected a finite number" in _refused(lambda: Model.load(b).check_parity(), BundleError)
