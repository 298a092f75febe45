"""Per-image membrane analysis: measurements, truth comparison and distribution figures."""
