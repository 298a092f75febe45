"""Synthetic SEM micrographs of track-etched membranes with exact truth."""
