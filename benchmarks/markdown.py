"""Markdown tables for the benchmark report sections."""

from __future__ import annotations


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines: the header, its rule, then one line per row of already formatted cells."""
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]
