"""Segmentation networks: building, training, loading and tiled inference; object separation."""
