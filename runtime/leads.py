"""Which lead of a multi-lead recording to score, one rule for every command that reads recordings
(``score``, ``calibrate``, ``compress``, ``score-archive``): the lead named with ``--lead``, else MLII
(the lead the bundled models were trained on), else its standard twin II, else the first ECG lead."""

from __future__ import annotations

import re

from .errors import InputError

PREFERRED_LEADS = ("MLII", "II")  # the lead the bundled models were trained on, then its standard twin
ECG_LEADS = {"I", "II", "III", "AVR", "AVL", "AVF", "V", "V1", "V2", "V3", "V4", "V5", "V6", "MLI", "MLII",
             "MLIII", "MV1", "MV2", "MV3", "MV4", "MV5", "MV6", "VX", "VY", "VZ", "X", "Y", "Z"}


def _normalised(label: str) -> str:
    """'ECG II', 'EKG-ii', 'ii' -> 'II': the lead name without the signal-type prefix, upper case."""
    return re.sub(r"^(ECG|EKG)[\s_\-:]*", "", label.strip().upper()).replace(" ", "")


def choose_lead(names: list[str], lead: str | None, where: str) -> int:
    """Index of the lead to score: ``lead`` by name or index, else MLII, II, then the first ECG lead."""
    if lead is not None:
        for match in (lambda n: n == lead, lambda n: n.strip().upper() == lead.strip().upper()):
            hits = [i for i, n in enumerate(names) if match(n)]
            if hits:
                return hits[0]
        if lead.isdigit() and int(lead) < len(names):
            return int(lead)
        raise InputError(f"--lead: expected one of {names} or an index below {len(names)} in {where}, "
                         f"received {lead!r}")
    normalised = [_normalised(n) for n in names]
    for preferred in PREFERRED_LEADS:
        if preferred in normalised:
            return normalised.index(preferred)
    for i, (name, norm) in enumerate(zip(names, normalised)):
        if norm in ECG_LEADS or re.search(r"ECG|EKG", name.upper()):
            return i
    if all(not n.strip() for n in names):  # unnamed channels (raw arrays): the first one
        return 0
    raise InputError(f"{where}: expected an ECG lead (MLII, II, or a name such as V1 or 'ECG ...'), received "
                     f"leads {names}; choose one with --lead")
