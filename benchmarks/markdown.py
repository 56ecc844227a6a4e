"""Markdown tables for the benchmark report sections."""

from __future__ import annotations


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines: the header, its rule, then one line per row of already formatted cells."""
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def values_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table of raw values: None as "-", small floats in exponent form, ints with separators."""

    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.2e}" if 0 < abs(v) < 0.01 else f"{v:.3f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    return "\n".join(table(header, [[cell(v) for v in row] for row in rows]))
