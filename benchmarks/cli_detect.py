"""``ecgae detect-eval RECORD...``: how well the runtime finds the beats of annotated WFDB records.

Each record's lead goes through the runtime's own path (resample, band-pass, detector); detections are
matched to the reference annotations within 150 ms (ANSI/AAMI EC57) and scored overall and per AAMI
class. Prints a table; ``--json`` also writes every figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..runtime.cli import read_wfdb
from ..runtime.errors import InputError
from ..runtime.io import write_json
from ..runtime.preprocess import r_peaks
from .detection import AAMI, default_preprocessing, pct, score_detections
from .qrs_peers import Input, generated, reference
from .qrs_peers import markdown as peers_markdown
from .qrs_peers import measure as measure_peers


def add_arguments(parser: argparse.ArgumentParser, _name: str) -> None:
    parser.add_argument("records", nargs="+", metavar="RECORD",
                        help="WFDB record path without extension (RECORD.hea and its annotation file beside it)")
    parser.add_argument("--ann", default="atr", help="annotation file extension (default atr)")
    parser.add_argument("--lead", metavar="NAME|INDEX", help="channel (default MLII, else the first)")
    parser.add_argument("--bundle", type=Path, metavar="BUNDLE",
                        help="use this bundle's preprocessing (default: the training default, 360 Hz, 0.5-40 Hz)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--peers", action="store_true",
                        help="also run wfdb's XQRS and gqrs and NeuroKit2's methods (when installed) on the same leads")
    parser.add_argument("--generated", action="store_true",
                        help="with --peers: also every generated condition of record 100 (stress, ventricular "
                             "beats, 8-bit, pacing spikes)")


def _read(record: str, ann_ext: str, lead: str | None,
          ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """(one lead in physical units, fs, annotated beat samples, their symbols, flutter episodes [E, 2])."""
    signal, fs = read_wfdb(Path(record), lead)  # checks the extra and the lead
    import wfdb

    try:
        ann = wfdb.rdann(record, ann_ext)
    except Exception as e:  # wfdb raises plain ValueError/OSError/... for missing or damaged files
        reason = " ".join(str(e).split())
        raise InputError(f"RECORD {record}: expected reference annotations in {record}.{ann_ext}, which "
                         f"cannot be read ({type(e).__name__}: {reason})") from None
    return signal, fs, *reference(np.asarray(ann.sample), np.asarray(ann.symbol))


def _progress(message: str) -> None:
    """The peer comparison's stages, on stderr: the tables on stdout stay clean to pipe."""
    print(message, file=sys.stderr, flush=True)


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def run(args: argparse.Namespace) -> int:
    if args.bundle is not None:
        from ..runtime import Model

        prep = Model.load(args.bundle).preprocessing
    else:
        prep = default_preprocessing()
    for record in args.records:  # all paths first: fail before any table is printed
        if not Path(record + ".hea").is_file():
            raise InputError(f"RECORD: expected a WFDB record path without extension (RECORD.hea beside it), "
                             f"received {record!r} (no {record}.hea)")
    results, leads = [], []
    header = ("record", "lead", "beats", "Se %", "+P %", "DER %", "offset med/p95 ms",
              *(f"{c} found" for c in AAMI))
    print(_row(header) + "\n" + _row(["---"] * len(header)))
    for record in args.records:
        signal, fs, ref, symbols, flutter = _read(record, args.ann, args.lead)
        leads.append(Input(Path(record).name, "annotated", signal, fs, ref, symbols, flutter))
        try:
            found = r_peaks(signal, fs, prep)
        except InputError as e:
            raise InputError(f"RECORD {record}: {e}") from None
        r = score_detections(ref, found, fs, symbols, flutter)
        r |= {"record": record, "lead": args.lead or "default", "fs": fs}
        results.append(r)
        by = r["by_class"]
        cells = (record, args.lead or "default", str(r["reference_beats"]),
                 pct(r["se"]), pct(r["ppv"]), pct(r["der"]),
                 f"{r['offset_median_abs_ms'] or 0:.1f}/{r['offset_p95_abs_ms'] or 0:.1f}",
                 *(f"{by[c]['found']}/{by[c]['beats']}" if c in by else "-" for c in AAMI))
        print(_row(cells))
    if len(results) > 1:
        tp, fn, fp = (sum(r[k] for r in results) for k in ("tp", "fn", "fp"))
        print(f"all {len(results)} records: Se {pct(tp / max(tp + fn, 1))} %, +P {pct(tp / max(tp + fp, 1))} %, "
              f"DER {pct((fn + fp) / max(tp + fn, 1))} %")
    peers = (measure_peers(prep, leads + (list(generated()) if args.generated else []), log=_progress)
             if args.peers else None)
    if peers:
        print("\n".join(["", *peers_markdown(peers)]))
    if args.json:
        write_json(args.json, {"match_window_s": 0.15, "records": results} | ({"peers": peers} if peers else {}))
        print(f"wrote {args.json}")
    return 0
