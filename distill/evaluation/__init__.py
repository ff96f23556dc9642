"""Scoring and timing: metrics against gold and teacher, samples/s, the side-by-side table and report."""
