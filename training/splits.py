"""Train/validation/test splits that never put neighbouring beats of one recording on both sides.

With three or more recordings, whole recordings go to one side each. With fewer, each recording is
cut into contiguous time blocks, and beats whose windows would overlap a beat across a block boundary
are dropped (a guard of one window), so no sample is seen on two sides. Never a random shuffle.

Rows that carry no time at all (the UCR archive's rows come sorted by class, cut from recordings
whose order was not kept) go round-robin by row index (14 train, 3 val, 3 test of every 20), so that
every class reaches every side; contiguous blocks there would put all normal beats in training.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError

FRACTIONS = (0.7, 0.15, 0.15)
NAMES = ("train", "val", "test")


def _by_record(records: np.ndarray, fractions: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Records in sorted order: the last ones to test, the ones before to validation, at least one each."""
    names = np.unique(records)
    n_val, n_test = (max(1, round(f * len(names))) for f in fractions[1:])
    n_train = len(names) - n_val - n_test
    groups = np.split(names, [n_train, n_train + n_val])
    return {n: np.flatnonzero(np.isin(records, g)) for n, g in zip(NAMES, groups)}


def _by_time(records: np.ndarray, positions: np.ndarray, guard: int, fractions: tuple[float, ...]):
    out: dict[str, list[np.ndarray]] = {n: [] for n in NAMES}
    for rec in np.unique(records):
        idx = np.flatnonzero(records == rec)
        idx = idx[np.argsort(positions[idx], kind="stable")]
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        blocks = np.split(idx, cuts)
        for i, (name, block) in enumerate(zip(NAMES, blocks)):
            if i > 0 and len(block) and len(blocks[i - 1]):
                block = block[positions[block] - positions[blocks[i - 1][-1]] >= guard]
            out[name].append(block)
    return {n: np.sort(np.concatenate(v)) for n, v in out.items()}


def _round_robin(n: int, fractions: tuple[float, ...]) -> dict[str, np.ndarray]:
    slots = np.repeat(np.arange(len(fractions)), np.round(np.asarray(fractions) * 20).astype(int))
    side = slots[np.arange(n) % len(slots)]
    return {name: np.flatnonzero(side == i) for i, name in enumerate(NAMES)}


def split_method(records: np.ndarray, time_ordered: bool) -> str:
    if len(np.unique(records)) >= len(NAMES):
        return "by_record"
    return "contiguous_time_blocks" if time_ordered else "round_robin_rows"


def split_indices(records: np.ndarray, positions: np.ndarray, guard: int, time_ordered: bool = True,
                  fractions: tuple[float, ...] = FRACTIONS) -> dict[str, np.ndarray]:
    """Indices of the train/val/test beats; ``guard`` is the window length in position units."""
    if len(records) < len(NAMES):
        raise InputError(f"split: expected at least {len(NAMES)} beats, received {len(records)}")
    method = split_method(records, time_ordered)
    if method == "round_robin_rows":
        parts = _round_robin(len(records), fractions)
    elif method == "by_record":
        parts = _by_record(records, fractions)
    else:
        parts = _by_time(records, positions, guard, fractions)
    for name, idx in parts.items():
        if len(idx) == 0:
            raise InputError(f"split: the {name} side is empty ({len(records)} beats); provide more data")
    return parts


def describe_split(records: np.ndarray, parts: dict[str, np.ndarray], time_ordered: bool) -> dict:
    """How the split was made and what each side holds, for the run's metrics.json."""
    return {"method": split_method(records, time_ordered), "fractions": list(FRACTIONS),
            **{n: {"count": int(len(i)), "records": sorted(set(records[i].tolist()))} for n, i in parts.items()}}
