"""The ``porescope`` command line."""
