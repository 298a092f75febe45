"""porescope: a DVC pipeline that turns electron micrographs into certified pore statistics.

Each module directly under ``stages`` is one DVC stage (``python -m stages.<name>``): it reads
its group of ``params.yaml``, calls pure functions from :mod:`porescope` and writes its outputs
atomically. Paths come only from ``dvc.yaml`` / ``params.yaml`` (command-line arguments).
"""
