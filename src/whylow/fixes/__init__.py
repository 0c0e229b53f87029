"""Fixes whylow can apply to prove a cause: each is fitted on one split and re-measured on another.

One module per kind of fix (temperature scaling, thresholds, prior correction,
input re-normalisation, ...). Checks call them to fill ``Finding.verified``.
"""
