"""lessons: the library behind *Deep Learning for 3D Vision and Graphics*.

Import modules, not names, so a reader always sees where a thing lives::

    from lessons import geometry, render, data, viz
    R = geometry.euler_to_matrix(yaw, pitch, roll)

Importing ``lessons`` itself is cheap and has no side effects.
"""

__version__ = "0.1.0"
