"""porescope: trustworthy pore statistics from electron micrographs (see README)."""
