"""Evaluation of the runtime on real recordings: cross-patient tables, EC57 beat classes, the field table.

It sits above ``runtime`` and ``training`` and is imported by neither: it measures what they build.
"""
