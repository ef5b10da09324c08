"""lessons: the library behind *Deep Learning for 3D Vision and Graphics*.

Import modules, not names, so a reader always sees where a thing lives::

    from lessons import geometry, render, data, viz
    R, t = geometry.camera_from_viewpoint(azimuth=0.5, elevation=0.3, inplane=0.0, distance=2.0)

Importing ``lessons`` itself is cheap and has no side effects.
"""

__version__ = "0.1.0"
