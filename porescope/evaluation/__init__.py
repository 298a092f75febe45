"""Scoring predicted masks against truth: pixel and object metrics and their figures."""
