"""The one base class of errors a user can fix.

Every error raised for bad input (a file that cannot be read, a parameter out of range, a model
file that is not a porescope model, an output folder that must not be replaced) derives from
:class:`PorescopeError`, and its message names the file or parameter and what is wrong. The DVC
stages and the ``porescope`` command print such an error as one line and exit non-zero;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PorescopeError(Exception):
    """Bad input the user can fix; the message names the file or parameter and the problem."""
