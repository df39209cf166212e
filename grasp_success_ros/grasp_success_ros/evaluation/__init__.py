"""Judging a model on labelled images and files: metrics, reports, plots."""
