"""One recording's beat templates as a clinician reads them: each template's mean beat, its count, its class.

Takes ``beats.template`` (cluster id per beat, -1 for none) and ``beats.label`` of ``Model.analyze``, or
any other clustering (the Ward baseline's cluster ids and labels) on the same R peaks.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..runtime.errors import InputError
from .beat_baselines import PRE_S, beat_windows

MAX_TEMPLATES = 12
SHOWN_BEATS = 20  # faint single beats drawn behind each mean


def template_summary(template: np.ndarray, label: np.ndarray) -> list[dict]:
    """Per template id (>= 0), largest first: its count and its labels (the most common is its class)."""
    template, label = np.asarray(template).reshape(-1), np.asarray(label).astype(str).reshape(-1)
    if template.shape != label.shape:
        raise InputError(f"template, label: expected one of each per beat, received {template.size} and {label.size}")
    ids, counts = np.unique(template[template >= 0], return_counts=True)
    out = []
    for k in ids[np.argsort(-counts, kind="stable")]:
        labels = Counter(label[template == k].tolist())
        out.append({"template": int(k), "count": int(sum(labels.values())), "class": labels.most_common(1)[0][0],
                    "labels": dict(labels)})
    return out


def plot_templates(signal: np.ndarray, fs: float, r_peak: np.ndarray, template: np.ndarray, label: np.ndarray,
                   out: Path, title: str = "") -> Path:
    """Write a PNG of up to MAX_TEMPLATES templates (band-passed mean beat over faint members) to ``out``."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..runtime.io import atomic_write_bytes

    r_peak = np.asarray(r_peak, dtype=np.int64).reshape(-1)
    if r_peak.size != np.size(template):
        raise InputError(f"template: expected one per R peak ({r_peak.size}), received {np.size(template)}")
    summary = template_summary(template, label)[:MAX_TEMPLATES]
    if not summary:
        raise InputError("template: expected at least one beat with a template id >= 0, received none")
    w = beat_windows(signal, fs, r_peak)
    t_ms = (np.arange(w.shape[1]) - int(round(PRE_S * fs))) / fs * 1000
    cols = min(4, len(summary))
    rows = -(-len(summary) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharey=True, squeeze=False)
    for ax, s in zip(axes.flat, summary):
        members = w[np.asarray(template) == s["template"]]
        for beat in members[:: max(1, len(members) // SHOWN_BEATS)][:SHOWN_BEATS]:
            ax.plot(t_ms, beat, color="0.8", lw=0.5)
        ax.plot(t_ms, members.mean(axis=0), color="C3" if s["class"] != "N" else "C0", lw=1.6)
        others = ", ".join(f"{k} {v}" for k, v in s["labels"].items() if k != s["class"])
        ax.set_title(f"#{s['template']}: {s['count']} beats, class {s['class']}" + (f"\n({others})" if others else ""),
                     fontsize=9)
        ax.set_xlabel("ms from R", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("mV, 0.5-40 Hz", fontsize=8)
    for ax in list(axes.flat)[len(summary) :]:
        ax.axis("off")
    fig.suptitle(title or "beat templates", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())
    return out
