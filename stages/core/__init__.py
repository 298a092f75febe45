"""Pure, typed functions over numpy arrays and tables; no paths, no params files.

Conventions (as in scikit-image): images are ``(rows, cols)`` arrays, ``uint8`` grey unless
stated; masks are integer class ids (0 = background); coordinates are ``(x, y)`` = (column, row)
in pixels with the origin at the top-left pixel's centre; angles in degrees.
"""
