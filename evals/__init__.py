"""Evals: reasoning tasks, metrics with honest statistics, comparisons, reports."""
