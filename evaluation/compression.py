"""Held-out experiment of the runtime's ECG compression: PRD against bits per second on record 100.

The held-out stretch of the record (the last 15% of its beats, about 4.5 minutes) is compressed with
runtime.codec at several bit depths, with the encoder's latents and with latents refined to rebuild each
beat's own part (``FIT`` Gauss-Newton steps), decompressed, and compared with the band-passed signal the codec
represents (zero-mean, so this PRD is the normalised one, PRDN) over the span the beat windows cover.
Bits per second count the whole file, header included, over the stretch's duration, beside MIT-BIH's
raw format: 360 samples/s x 11 bits = 3960 bit/s.
"""

from __future__ import annotations

from pathlib import Path

from ..runtime import Model
from ..runtime.codec import compress, decompress, filtered_windows, prd_percent
from ..training.datasets import held_out_mitdb

RAW_BITS_PER_SECOND = 360 * 11
BITS = (2, 3, 4, 6, 8)
FIT = 10  # Gauss-Newton steps of the refined rows (as fill_gaps); 5 lose about 0.3 points of PRD


def evaluate_compression(bundles: dict[str, Path], bits: tuple[int, ...] = BITS,
                         fits: tuple[int, ...] = (0, FIT)) -> dict:
    """PRD and bit/s of each bundle at each bit depth and latent fit on the held-out stretch of record 100."""
    rec = held_out_mitdb()
    segment = rec.raw[rec.start :]
    seconds = segment.size / rec.fs
    rows, example = [], {}
    for name, path in bundles.items():
        model = Model.load(path)
        reference, peaks, _ = filtered_windows(model, segment, rec.fs)
        prep = model.preprocessing
        span = slice(int(peaks[0] - prep.pre), int(peaks[-1] - prep.pre + prep.length))
        for fit in fits:
            for b in bits:
                data = compress(model, segment, rec.fs, b, fit)
                rebuilt, _ = decompress(model, data)
                bps = 8 * len(data) / seconds
                rows.append({"bundle": name, "latent": model.latent_dim, "fit": fit, "bits": b, "bytes": len(data),
                             "bits_per_second": bps, "compression_ratio": RAW_BITS_PER_SECOND / bps,
                             "prd_percent": prd_percent(reference[span], rebuilt[span])})
                if b == 8 and (model.latent_dim, fit) >= (example.get("latent", 0), example.get("fit", 0)):
                    cut = slice(span.start, span.start + int(4 * rec.fs))  # the largest latent's 8-bit file, best fit
                    example = {"latent": model.latent_dim, "fit": fit, "bundle": name, "fs": rec.fs,
                               "original": reference[cut].tolist(), "rebuilt": rebuilt[cut].tolist()}
    return {"seconds": seconds, "beats": int(len(peaks)), "raw_bits_per_second": RAW_BITS_PER_SECOND,
            "rows": rows, "example": example}
