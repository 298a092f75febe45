"""Measuring objects on masks: ImageJ descriptors, pore counts, spatial statistics."""
