"""Provenance: the pipeline as declared, the dependency guard, lineage, model cards, comparisons."""
