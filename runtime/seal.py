"""A JSON document that carries the sha256 of its own bytes, so that any changed byte is detected.

The digest is computed over the exact file with the digest's own 64 characters replaced by zeros, then
written into that place. Whitespace, key order and number spelling are therefore all covered: a file
that is not byte-for-byte what was sealed is refused. Used for bundle manifests, and meant for any other
small JSON the runtime trusts (wearer profiles).
"""

from __future__ import annotations

import hashlib
import json
import re

from .errors import EcgaeError

PLACEHOLDER = "0" * 64
HEX64 = re.compile(r"[0-9a-f]{64}")


def _slot(field: str, digest: str) -> bytes:
    return f'"{field}": "{digest}"'.encode()


def seal(obj: dict, field: str) -> bytes:
    """``obj`` as indented JSON bytes with ``obj[field]`` set to the sha256 of the result."""
    text = (json.dumps({**obj, field: PLACEHOLDER}, indent=2) + "\n").encode()
    if text.count(_slot(field, PLACEHOLDER)) != 1:
        raise ValueError(f"seal: the field {field!r} must occur once, at the top level")
    return text.replace(_slot(field, PLACEHOLDER), _slot(field, hashlib.sha256(text).hexdigest()))


def check_seal(raw: bytes, doc: dict, field: str, name: str, error: type[EcgaeError]) -> bool:
    """True when ``raw`` (whose parsed form is ``doc``) carries a valid seal in ``field``, False when it
    carries none; ``error`` when the seal is malformed or does not match the bytes."""
    if field not in doc:
        return False
    claimed = doc[field]
    if not isinstance(claimed, str) or not HEX64.fullmatch(claimed):
        raise error(f"{name}: {field}: expected 64 lowercase hex digits, received {claimed!r}")
    slot = _slot(field, claimed)
    if raw.count(slot) != 1:
        raise error(f"{name}: expected the seal {field!r} written once as exported, received a file where it "
                    f"appears {raw.count(slot)} times in that form; the file was modified")
    actual = hashlib.sha256(raw.replace(slot, _slot(field, PLACEHOLDER))).hexdigest()
    if actual != claimed:
        raise error(f"{name}: its bytes do not match its seal ({field} {claimed[:12]}..., computed "
                    f"{actual[:12]}...): the file was modified after it was written, so it is refused")
    return True
