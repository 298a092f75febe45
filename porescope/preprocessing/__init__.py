"""Preparing training data: tiles, leak-proof splits, offline augmentation."""
