"""Seeing in 3D: k3d viewers, matplotlib fallbacks, widgets, and library source in a notebook.

Every 3D result in the course can be turned in k3d. A viewer builds a :class:`Scene` (a k3d plot
and how to show it) and returns it, so a cell ending with ``viz.show_mesh(v, f)`` shows the mesh;
pass ``plot=scene`` to add to an existing scene::

    scene = viz.show_voxels(voxels[0, 0])                   # (D, H, W), D/H/W = z/y/x
    viz.show_mesh(vertices, faces, opacity=0.5, plot=scene)

All viewers follow ``book/notation.md``: world ``+y`` is up (the k3d camera's up vector is set to
``+y``; k3d's own default is ``+z``), a voxel grid of resolution ``R`` fills the cube
``[-1/2, 1/2]^3`` with voxel ``[k, j, i]`` centred at ``((i+1/2)/R - 1/2, (j+1/2)/R - 1/2,
(k+1/2)/R - 1/2)``, and cameras are OpenCV ``(R, t) = cam_from_world`` with centre ``-R^T t``.

**Two worlds.** In a kernel (Jupyter, JupyterLab, Colab) a scene displays as the live k3d
widget. While the book is built (``LESSONS_BOOK_BUILD=1``, which the kernel inherits) a live
widget could not render in the static page, so the scene displays instead as an offline k3d
*snapshot* in an ``<iframe srcdoc=...>``: the plot's data inline (tens of KB) and k3d's
``standalone.js`` and ``require.js`` loaded from files the book serves itself, by default at
``../_k3d/`` relative to the page (chapters live one level below the site root); the environment
variable ``LESSONS_K3D_JS_URL`` changes that prefix. :func:`k3d_assets` copies those files into
a folder that Sphinx's ``html_extra_path`` puts at the site root. In book mode the k3d widgets are
built without opening comms to the front end, so the notebook's saved widget state (which the
book embeds in every page) does not carry the 3D data a second time.

Matplotlib fallbacks (:func:`plot_voxels`, :func:`image_grid`, :func:`plot_curves`) return
figures; :func:`interact_figure` redraws a figure when sliders move and shows its initial state
as an ordinary output in the static book; :func:`show_source` shows a library function's code.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import math
import os
import re
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from .checks import ShapeError, check_floating, check_shape

__all__ = [
    "BOOK_ENV_VAR",
    "JS_URL_ENV_VAR",
    "DEFAULT_JS_URL",
    "book_mode",
    "Scene",
    "show_voxels",
    "show_mesh",
    "show_points",
    "show_skeleton",
    "show_cameras",
    "show_planes",
    "frustum_corners",
    "show",
    "snapshot",
    "k3d_assets",
    "plot_voxels",
    "image_grid",
    "plot_curves",
    "SourceCode",
    "show_source",
    "slider",
    "angle_slider",
    "Interactive",
    "interact_figure",
]

BOOK_ENV_VAR = "LESSONS_BOOK_BUILD"
JS_URL_ENV_VAR = "LESSONS_K3D_JS_URL"
DEFAULT_JS_URL = "../_k3d/"
# what k3d_assets copies from k3d/static/: the library, its AMD loader, the BVH worker that
# standalone.js fetches from next to itself, and their licence notes
_K3D_ASSETS = (
    "standalone.js",
    "standalone.js.LICENSE.txt",
    "require.js",
    "require.js.LICENSE.txt",
    "k3d-bvh-worker.js",
    "k3d-bvh-worker.js.LICENSE.txt",
)
_PLOT_HEIGHT = 420  # pixels
_VIEW = (math.radians(35.0), math.radians(25.0))  # default (azimuth, elevation) of the k3d camera

_VOXEL_COLOR = 0x4C8BC0
_MESH_COLOR = 0xB8C4D6
_POINT_COLOR = 0xE07B39
_BONE_COLOR = 0x3A6EA5
_JOINT_COLOR = 0xD1495B
_CAMERA_COLOR = 0x2E8B57
_PLANE_COLOR = 0x9B59B6


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def book_mode() -> bool:
    """True while the book is being built (``$LESSONS_BOOK_BUILD`` set to 1/true/yes/on)."""
    return os.environ.get(BOOK_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def _js_prefix() -> str:
    """The URL prefix under which the book serves ``standalone.js`` and ``require.js``.

    ``$LESSONS_K3D_JS_URL`` may name the folder (``../_k3d/``) or ``standalone.js`` itself.
    """
    url = os.environ.get(JS_URL_ENV_VAR, "").strip() or DEFAULT_JS_URL
    if url.endswith(".js"):
        url = url.rsplit("/", 1)[0] + "/" if "/" in url else ""
    elif not url.endswith("/"):
        url += "/"
    return url


@contextlib.contextmanager
def _offline_widgets(active: bool):
    """Build widgets whose comm talks to no front end (book mode).

    nbclient records the state of every widget whose comm opens and the book embeds it in the
    page; k3d objects would carry their arrays there for nothing, since the book shows a snapshot.
    """
    if not active:
        yield
        return
    import comm

    saved = comm.create_comm
    comm.create_comm = lambda *args, **kwargs: comm.DummyComm(*args, **kwargs)
    try:
        yield
    finally:
        comm.create_comm = saved


# --------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------


def _as_tensor(x, name: str) -> torch.Tensor:
    """A detached tensor from a tensor, numpy array or nested sequence."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (np.ndarray, list, tuple)):
        try:
            return torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise ShapeError(f"{name}: expected a numeric array, received {type(x).__name__}") from err
    raise ShapeError(f"{name}: expected a torch.Tensor or numpy array, received {type(x).__name__}")


def _numpy(x: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(dtype))


def _packed(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` floats in ``[0, 1]`` -> ``(...)`` uint32 ``0xRRGGBB`` (k3d's colour format)."""
    c = np.clip(np.round(np.asarray(rgb, dtype=np.float64) * 255.0), 0, 255).astype(np.uint32)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


def _color(c, name: str) -> int:
    """One colour as a packed int: an int ``0xRRGGBB``, an RGB triple in ``[0, 1]``, or a name."""
    if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
        if not 0 <= int(c) <= 0xFFFFFF:
            raise ValueError(f"{name}: expected a colour 0x000000..0xFFFFFF, received {c:#x}")
        return int(c)
    if isinstance(c, str):
        from matplotlib.colors import to_rgb

        try:
            return int(_packed(np.array(to_rgb(c))))
        except ValueError as err:
            raise ValueError(f"{name}: expected a colour name, received {c!r}") from err
    rgb = _as_tensor(c, name)
    check_shape(rgb, "3", name)
    return int(_packed(_numpy(rgb, np.float64)))


def _colors(c, n: int, name: str, default: int) -> np.ndarray:
    """Per-item colours ``(n,)`` uint32 from None, one colour, or an ``(n, 3)`` array in [0, 1]."""
    if c is None:
        return np.full(n, default, dtype=np.uint32)
    if isinstance(c, (int, np.integer, str)) or _ndim(c) == 1:
        return np.full(n, _color(c, name), dtype=np.uint32)
    rgb = _as_tensor(c, name)
    check_shape(rgb, f"{n} 3", name)
    return _packed(_numpy(rgb, np.float64)).astype(np.uint32)


def _ndim(x) -> int:
    return x.dim() if isinstance(x, torch.Tensor) else int(np.ndim(x))


def _points(x, name: str, spec: str = "N 3", dims: dict | None = None) -> tuple[np.ndarray, dict]:
    t = _as_tensor(x, name)
    dims = check_shape(t, spec, name, dims)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ShapeError(f"{name}: expected a real dtype, received {t.dtype}")
    a = _numpy(t, np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite coordinates, received NaN or inf")
    return a, dims


def _voxel_grid(occupancy) -> torch.Tensor:
    occ = _as_tensor(occupancy, "occupancy")
    shape = tuple(occ.shape)
    if occ.dim() == 4 and occ.shape[0] == 1:
        occ = occ[0]  # (D, H, W)
    if occ.dim() != 3 or min(occ.shape) == 0:
        raise ShapeError(f"occupancy: expected shape (D, H, W) or (1, D, H, W), received {shape}")
    return occ


# --------------------------------------------------------------------------------------------
# Scene: a k3d plot and how to show it
# --------------------------------------------------------------------------------------------


class Scene:
    """A k3d plot that displays live in a kernel and as an offline snapshot in the built book.

    ``scene.plot`` is the ``k3d.plot.Plot``; ``scene.objects`` its drawables. The camera looks at
    the centre of everything added so far from ``view = (azimuth, elevation)`` (radians, the
    viewpoint convention of ``book/notation.md``), with ``+y`` up.

    Args:
        plot: an existing ``k3d.plot.Plot`` to wrap, or None to make one.
        height: plot height in pixels.
        view: (azimuth, elevation) of the camera in radians.
        grid: whether to draw k3d's labelled grid box.

    Raises:
        ValueError: ``plot`` is neither None nor a k3d Plot.
    """

    def __init__(self, plot=None, height: int = _PLOT_HEIGHT, view=_VIEW, grid: bool = True):
        import k3d

        self._book = book_mode()
        self.view = (float(view[0]), float(view[1]))
        self._lo = np.full(3, np.inf)
        self._hi = np.full(3, -np.inf)
        if plot is None:
            with _offline_widgets(self._book):
                plot = k3d.plot(
                    height=int(height), grid_visible=grid, camera_auto_fit=False,
                    menu_visibility=not self._book, axes_helper=1.0, snapshot_type="inline",
                )
        elif not isinstance(plot, k3d.Plot):
            raise ValueError(f"plot: expected a viz.Scene, a k3d Plot or None, received {type(plot).__name__}")
        plot.camera_up_axis = "y"
        self.plot = plot

    @property
    def objects(self) -> list:
        """The k3d drawables in this scene, in the order they were added."""
        return list(self.plot.objects)

    def add(self, obj, extent: np.ndarray | None = None) -> Scene:
        """Add a k3d drawable; ``extent`` (M, 3) are points it covers, for framing the camera."""
        self.plot += obj
        if extent is not None:
            self.frame(extent)
        return self

    def frame(self, points: np.ndarray) -> Scene:
        """Grow the box the camera frames by ``points`` (M, 3) and re-aim the camera."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(points):
            self._lo = np.minimum(self._lo, points.min(0))
            self._hi = np.maximum(self._hi, points.max(0))
            self.fit()
        return self

    def fit(self) -> None:
        """Point the camera at what the scene holds, from ``self.view``, with ``+y`` up.

        The eye sits at ``c + d (cos(el) sin(az), sin(el), cos(el) cos(az))`` where ``c`` is the
        centre of the bounding box and ``d = r / sin(fov / 2)``, so that the box's bounding sphere
        (radius ``r``) just fits k3d's vertical field of view.
        """
        if not np.isfinite(self._lo).all():
            return
        c = (self._lo + self._hi) / 2
        r = max(float(np.linalg.norm(self._hi - self._lo)) / 2, 1e-3)
        d = r / math.sin(math.radians(self.plot.camera_fov) / 2)
        az, el = self.view
        eye = c + d * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        self.plot.camera = [float(v) for v in (*eye, *c, 0.0, 1.0, 0.0)]

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        if self._book:
            text = f"<k3d scene: {len(self.plot.objects)} objects; static snapshot>"
            return {"text/html": snapshot(self), "text/plain": text}
        _enable_colab_widgets()
        return self.plot._repr_mimebundle_(include=include, exclude=exclude, **kwargs)

    def __repr__(self) -> str:
        return f"Scene({len(self.plot.objects)} objects)"


def _enable_colab_widgets() -> None:
    """Colab shows third-party widgets only once its custom widget manager is on."""
    if "google.colab" in sys.modules:
        try:
            from google.colab import output

            output.enable_custom_widget_manager()
        except Exception:  # pragma: no cover - only in Colab
            pass


def _scene(plot) -> Scene:
    if isinstance(plot, Scene):
        return plot
    return Scene(plot)


# --------------------------------------------------------------------------------------------
# k3d viewers
# --------------------------------------------------------------------------------------------


def show_voxels(occupancy, threshold: float = 0.5, color=_VOXEL_COLOR, opacity: float = 1.0,
                outlines: bool = True, plot=None) -> Scene:
    """Show an occupancy grid as cubes, in the course's voxel convention.

    Voxel ``[k, j, i]`` (``D, H, W`` = ``z, y, x``) is drawn where ``occupancy > threshold``
    (or where it is True), as the cube centred at
    ``((i + 1/2)/W - 1/2, (j + 1/2)/H - 1/2, (k + 1/2)/D - 1/2)``: the grid fills
    ``[-1/2, 1/2]^3`` like the meshes of the same shape. k3d's voxels are indexed ``[z, y, x]``
    too, so the array goes in unchanged and the object's bounds are ``[-1/2, 1/2]^3``.

    Shapes:
        occupancy: ``(D, H, W)`` or ``(1, D, H, W)``, bool, integer or float.

    Raises:
        ValueError: ``occupancy`` has another shape.
    """
    import k3d

    occ = _voxel_grid(occupancy)
    filled = occ if occ.dtype == torch.bool else occ > threshold
    grid = _numpy(filled, np.uint8)
    scene = _scene(plot) if plot is not None else Scene()
    with _offline_widgets(scene._book):
        obj = k3d.voxels(grid, color_map=[_color(color, "color")], opacity=float(opacity),
                         outlines=outlines, bounds=[-0.5, 0.5, -0.5, 0.5, -0.5, 0.5],
                         compression_level=0, name="voxels")
    cube = np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]], dtype=np.float32)
    return scene.add(obj, cube)


def show_mesh(vertices, faces, colors=None, wireframe: bool = False, opacity: float = 1.0,
              flat_shading: bool = False, plot=None) -> Scene:
    """Show a triangle mesh; the vertices go to k3d unchanged (world coordinates).

    ``colors`` is None (one default colour), one colour (``0xRRGGBB``, an RGB triple in
    ``[0, 1]`` or a matplotlib name) or per-vertex RGB in ``[0, 1]``.

    Shapes:
        vertices: ``(V, 3)`` float.
        faces: ``(F, 3)`` integer indices into ``vertices``, counter-clockwise seen from outside.
        colors: ``(V, 3)`` or ``(3,)``.

    Raises:
        ValueError: a shape or dtype differs, or a face index is outside ``[0, V)``.
    """
    import k3d

    v, dims = _points(vertices, "vertices", "V 3")
    f = _as_tensor(faces, "faces")
    check_shape(f, "F 3", "faces")
    if f.is_floating_point() or f.dtype == torch.bool or f.is_complex():
        raise ShapeError(f"faces: expected an integer dtype, received {f.dtype}")
    f = _numpy(f, np.int64)
    if f.size and (f.min() < 0 or f.max() >= dims["V"]):
        raise ValueError(f"faces: expected indices in [0, {dims['V']}), received [{f.min()}, {f.max()}]")
    scene = _scene(plot) if plot is not None else Scene()
    kw = dict(wireframe=wireframe, opacity=float(opacity), flat_shading=flat_shading, side="double",
              name="mesh")
    if colors is not None and _ndim(colors) == 2:
        kw["colors"] = _colors(colors, dims["V"], "colors", _MESH_COLOR)
        kw["color"] = _MESH_COLOR
    else:
        kw["color"] = _MESH_COLOR if colors is None else _color(colors, "colors")
    with _offline_widgets(scene._book):
        obj = k3d.mesh(v, f.astype(np.uint32), **kw)
    return scene.add(obj, v)


def show_points(points, colors=None, point_size: float | None = None, shader: str = "3d",
                plot=None) -> Scene:
    """Show a point cloud as spheres; ``point_size`` defaults to 1 % of its bounding box diagonal.

    Shapes:
        points: ``(N, 3)`` float, world coordinates.
        colors: ``(N, 3)`` in ``[0, 1]``, or one colour.

    Raises:
        ValueError: a shape differs or ``point_size`` is not positive.
    """
    import k3d

    p, dims = _points(points, "points", "N 3")
    if point_size is None:
        diag = float(np.linalg.norm(p.max(0) - p.min(0))) if len(p) else 0.0
        point_size = 0.01 * diag if diag > 0 else 0.02
    if not point_size > 0:
        raise ValueError(f"point_size: expected a positive size, received {point_size}")
    scene = _scene(plot) if plot is not None else Scene()
    cols = _colors(colors, dims["N"], "colors", _POINT_COLOR)
    with _offline_widgets(scene._book):
        obj = k3d.points(p, colors=cols, point_size=float(point_size), shader=shader, name="points")
    return scene.add(obj, p)


def show_skeleton(joints, edges, labels=None, color=_BONE_COLOR, joint_color=_JOINT_COLOR,
                  width: float | None = None, plot=None) -> Scene:
    """Show a skeleton: bones as tubes between joints, joints as spheres, optional joint names.

    Shapes:
        joints: ``(K, 3)`` world coordinates (+y up).
        edges: ``(E, 2)`` pairs ``(i, j)`` of joint indices (a list of pairs or an array).
        labels: ``K`` strings or None.

    Raises:
        ValueError: a shape differs, an edge names a joint outside ``[0, K)``, or ``labels`` does
            not have ``K`` entries.
    """
    import k3d

    x, dims = _points(joints, "joints", "K 3")
    e = _as_tensor(edges, "edges")
    if e.numel() == 0:
        e = e.reshape(0, 2).long()  # (0, 2)
    check_shape(e, "E 2", "edges")
    if e.is_floating_point() or e.dtype == torch.bool:
        raise ShapeError(f"edges: expected an integer dtype, received {e.dtype}")
    e = _numpy(e, np.int64)
    K = dims["K"]
    if e.size and (e.min() < 0 or e.max() >= K):
        raise ValueError(f"edges: expected joint indices in [0, {K}), received [{e.min()}, {e.max()}]")
    if labels is not None and len(labels) != K:
        raise ValueError(f"labels: expected {K} names (one per joint), received {len(labels)}")
    diag = float(np.linalg.norm(x.max(0) - x.min(0))) if K else 1.0
    width = 0.01 * (diag or 1.0) if width is None else float(width)
    scene = _scene(plot) if plot is not None else Scene()
    with _offline_widgets(scene._book):
        if e.size:
            scene.add(k3d.lines(x, e.astype(np.uint32), indices_type="segment", color=_color(color, "color"),
                                width=width, shader="mesh", name="bones"))
        scene.add(k3d.points(x, color=_color(joint_color, "joint_color"), point_size=2.2 * width,
                             shader="3d", name="joints"))
        if labels is not None:
            # texture_text draws in WebGL, so it shows in a static snapshot as reliably as the
            # bones (k3d.text is an HTML overlay); one small object per joint name
            lift = np.array([0.0, 0.035 * (diag or 1.0), 0.0], dtype=np.float32)  # just above the joint
            for name, p in zip(labels, x):
                scene.add(k3d.texture_text(str(name), position=(p + lift).tolist(), size=0.16 * (diag or 1.0),
                                           font_size=64, font_face="sans-serif", color=0x222222,
                                           name=f"label {name}"))
    return scene.frame(x)


def frustum_corners(R: torch.Tensor, t: torch.Tensor, K: torch.Tensor | None = None,
                    image_size=None, depth=1.0) -> torch.Tensor:
    """World coordinates of the image corners unprojected to camera depth ``depth``.

    With ``(R, t)`` = cam_from_world and pixel corners ``p = (u, v, 1)`` in the order top-left
    ``(0, 0)``, top-right ``(W, 0)``, bottom-right ``(W, H)``, bottom-left ``(0, H)``:

        X_cam = depth K^{-1} p,        X = R^T (X_cam - t).

    Image ``(H, W)`` defaults to ``(2 c_y, 2 c_x)`` (a centred principal point); ``K`` defaults
    to a 53-degree camera ``[[W, 0, W/2], [0, W, H/2], [0, 0, 1]]`` with ``image_size`` (1, 1).
    ``R`` and ``t`` share one batch shape; ``K`` and ``depth`` broadcast against it (one camera
    and a vector of depths gives the planes of a plane sweep). Differentiable in all four.

    Shapes:
        R: ``(..., 3, 3)``; t: ``(..., 3)``; K: ``(..., 3, 3)`` or None;
        image_size: ``(H, W)`` or None; depth: a float or ``(...)``.
        returns: ``(..., 4, 3)``.

    Raises:
        ValueError: a shape differs, ``R`` is not floating point, or ``image_size`` is not (H, W).
    """
    check_floating(R, "R")
    dims = check_shape(R, "*B 3 3", "R")
    check_shape(t, "*B 3", "t", dims)
    if image_size is not None and len(image_size) != 2:
        raise ValueError(f"image_size: expected (H, W), received {image_size!r}")
    if K is None:
        H, W = (1.0, 1.0) if image_size is None else (float(image_size[0]), float(image_size[1]))
        K = R.new_tensor([[W, 0.0, W / 2], [0.0, W, H / 2], [0.0, 0.0, 1.0]])
    check_shape(K, "* 3 3", "K")
    K = K.to(R)
    if image_size is None:
        W, H = 2 * K[..., 0, 2], 2 * K[..., 1, 2]  # (...)
    else:
        W = K.new_tensor(float(image_size[1])).expand(K.shape[:-2])
        H = K.new_tensor(float(image_size[0])).expand(K.shape[:-2])
    zero = torch.zeros_like(W)
    u = torch.stack([zero, W, W, zero], -1)  # (..., 4)
    v = torch.stack([zero, zero, H, H], -1)
    p = torch.stack([u, v, torch.ones_like(u)], -1)  # (..., 4, 3)
    rays = torch.linalg.solve(K.unsqueeze(-3), p.unsqueeze(-1)).squeeze(-1)  # K^{-1} p, (..., 4, 3)
    depth = torch.as_tensor(depth).to(R)
    X_cam = depth[..., None, None] * rays
    # R^T (X_cam - t) for row vectors is (X_cam - t) R
    return (X_cam - t.unsqueeze(-2)) @ R


def show_cameras(R, t, K=None, image_size=None, size: float = 0.2, colors=None, width: float | None = None,
                 plot=None) -> Scene:
    """Show cameras as frustum wireframes in the world (OpenCV convention, ``book/notation.md``).

    Each camera draws its centre ``C = -R^T t``, the four edges from ``C`` to the image corners
    unprojected at depth ``size`` (see :func:`frustum_corners`), the image rectangle, and a small
    triangle on the rectangle's top edge (the side of image row 0: ``v`` grows down) that marks
    "up in the image".

    Shapes:
        R: ``(N, 3, 3)`` or ``(3, 3)``; t: ``(N, 3)`` or ``(3,)``; K: ``(N, 3, 3)``, ``(3, 3)``
        or None; image_size: ``(H, W)`` or None; colors: ``(N, 3)`` in ``[0, 1]`` or one colour.

    Raises:
        ValueError: a shape differs.
    """
    import k3d

    R = _as_tensor(R, "R").to(torch.float64)
    t = _as_tensor(t, "t").to(torch.float64)
    if R.dim() == 2:
        R = R[None]  # (1, 3, 3)
        if t.dim() == 1:
            t = t[None]  # (1, 3)
    dims = check_shape(R, "N 3 3", "R")
    check_shape(t, "N 3", "t", dims)
    N = dims["N"]
    if K is not None:
        K = _as_tensor(K, "K").to(torch.float64)
        if K.dim() == 2:
            K = K.expand(N, 3, 3)
        check_shape(K, "N 3 3", "K", dims)
    corners = frustum_corners(R, t, K, image_size, size)  # (N, 4, 3)
    centre = -(R.transpose(-1, -2) @ t.unsqueeze(-1)).squeeze(-1)  # (N, 3)
    # the tip of the "up" triangle: above the top edge, at v = -H/4 (image y points down)
    top_mid = (corners[:, 0] + corners[:, 1]) / 2
    down = (corners[:, 3] - corners[:, 0]) / 2  # half the image height, along +v
    tip = top_mid - down / 2
    verts = torch.cat([centre[:, None], corners, tip[:, None]], 1)  # (N, 6, 3)
    seg = torch.tensor([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1], [1, 5], [5, 2]])
    idx = (seg[None] + 6 * torch.arange(N)[:, None, None]).reshape(-1, 2)  # (10 N, 2)
    pts = _numpy(verts.reshape(-1, 3), np.float32)
    cols = np.repeat(_colors(colors, N, "colors", _CAMERA_COLOR), 6)
    diag = float(np.linalg.norm(pts.max(0) - pts.min(0))) or 1.0
    width = 0.004 * diag if width is None else float(width)
    scene = _scene(plot) if plot is not None else Scene()
    with _offline_widgets(scene._book):
        obj = k3d.lines(pts, _numpy(idx, np.uint32), indices_type="segment", colors=cols, width=width,
                        shader="mesh", name="cameras")
    return scene.add(obj, pts)


def show_planes(corners, colors=None, opacity: float = 0.35, outline: bool = True, plot=None) -> Scene:
    """Show a family of quadrilaterals, e.g. the depth planes of a plane sweep.

    Build the corners with :func:`frustum_corners` (one camera, ``depth`` a vector of plane
    depths) to draw the fronto-parallel planes a plane-sweep volume samples.

    Shapes:
        corners: ``(P, 4, 3)`` world coordinates, in order around each quadrilateral.
        colors: ``(P, 3)`` in ``[0, 1]`` or one colour.

    Raises:
        ValueError: a shape differs.
    """
    import k3d

    c, dims = _points(corners, "corners", "P 4 3")
    P = dims["P"]
    cols = _colors(colors, P, "colors", _PLANE_COLOR)
    tri = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32)
    faces = (tri[None] + 4 * np.arange(P, dtype=np.uint32)[:, None, None]).reshape(-1, 3)  # (2 P, 3)
    verts = c.reshape(-1, 3)
    vcols = np.repeat(cols, 4)
    scene = _scene(plot) if plot is not None else Scene()
    with _offline_widgets(scene._book):
        scene.add(k3d.mesh(verts, faces, colors=vcols, opacity=float(opacity), side="double",
                           flat_shading=True, name="planes"))
        if outline:
            seg = np.array([[0, 1], [1, 2], [2, 3], [3, 0]], dtype=np.uint32)
            idx = (seg[None] + 4 * np.arange(P, dtype=np.uint32)[:, None, None]).reshape(-1, 2)
            diag = float(np.linalg.norm(verts.max(0) - verts.min(0))) or 1.0
            scene.add(k3d.lines(verts, idx, indices_type="segment", colors=vcols, width=0.003 * diag,
                                shader="mesh", name="plane outlines"))
    return scene.frame(verts)


# --------------------------------------------------------------------------------------------
# Display: live widget or offline snapshot
# --------------------------------------------------------------------------------------------


def show(scene, height: int | None = None, mode: str = "auto") -> None:
    """Display a scene: the live k3d widget in a kernel, a snapshot while the book is built.

    ``mode`` is ``"auto"`` (``$LESSONS_BOOK_BUILD`` decides), ``"live"`` or ``"snapshot"``.
    Without a front end (nbval, a script) nothing is raised.

    Raises:
        ValueError: ``mode`` is unknown or ``scene`` is not a Scene or a k3d Plot.
    """
    from IPython.display import display

    if mode not in ("auto", "live", "snapshot"):
        raise ValueError(f"mode: expected 'auto', 'live' or 'snapshot', received {mode!r}")
    scene = _as_scene(scene)
    if height is not None:
        scene.plot.height = int(height)
    if mode == "auto":
        display(scene)
    elif mode == "snapshot":
        snip = snapshot(scene, kind="inline" if book_mode() else "full")
        display({"text/html": snip, "text/plain": repr(scene)}, raw=True)
    else:
        _enable_colab_widgets()
        display(scene.plot)


def _as_scene(scene) -> Scene:
    import k3d

    if isinstance(scene, Scene):
        return scene
    if isinstance(scene, k3d.Plot):
        return Scene(scene)
    raise ValueError(f"scene: expected a viz.Scene or a k3d Plot, received {type(scene).__name__}")


def snapshot(scene, height: int | None = None, kind: str = "inline") -> str:
    """The scene as an HTML ``<iframe srcdoc=...>`` that renders with no kernel.

    ``kind="inline"`` (the book): the plot's data inline, ``require.js`` and ``standalone.js``
    loaded from ``$LESSONS_K3D_JS_URL`` (default ``../_k3d/``, relative to the page; a srcdoc
    iframe resolves relative URLs against its parent page) -- never from a CDN.
    ``kind="full"``: self-contained (k3d's library inline, about 1.2 MB), for a page that does
    not serve the k3d files, e.g. a notebook exported to HTML.

    Raises:
        ValueError: ``kind`` is unknown or ``scene`` is not a Scene or a k3d Plot.
        RuntimeError: k3d's snapshot template changed so that it would still load from a CDN.
    """
    if kind not in ("inline", "full"):
        raise ValueError(f"kind: expected 'inline' or 'full', received {kind!r}")
    scene = _as_scene(scene)
    plot = scene.plot
    h = int(height if height is not None else plot.height)
    old = (plot.snapshot_type, plot.height)
    with plot.hold_sync():
        plot.snapshot_type, plot.height = kind, h
        try:
            body = plot.get_snapshot(compression_level=9)
        finally:
            plot.snapshot_type, plot.height = old
    if kind == "inline":
        prefix = _js_prefix()
        cdn = re.findall(r"https?://[^'\"\s]*", body)
        body = re.sub(r"https?://[^'\"\s]*/standalone\.js(?=['\"])", prefix + "standalone.js", body)
        body = re.sub(r"https?://[^'\"\s]*/require(\.min)?\.js(?=['\"])", prefix + "require.js", body)
        left = [u for u in cdn if u in body]
        if left:
            raise RuntimeError(f"k3d's inline snapshot template loads {left}, which viz.snapshot does not redirect")
        style = "html,body{margin:0;padding:0;overflow:hidden;background:#fff}"
        doc = (f'<!doctype html><html><head><meta charset="utf-8"><style>{style}</style>'
               f'<script src="{prefix}require.js"></script>'
               f'<script src="{prefix}standalone.js"></script></head><body>{body}</body></html>')
    else:
        doc = body
    return (f'<iframe class="k3d-snapshot" srcdoc="{html.escape(doc, quote=True)}" '
            f'style="width:100%;height:{h + 6}px;border:0;display:block" scrolling="no" loading="lazy" '
            f'title="3D view (k3d): drag to rotate, scroll to zoom"></iframe>')


def k3d_assets(dest_dir) -> Path:
    """Copy k3d's ``standalone.js``, ``require.js`` and helpers into ``dest_dir/_k3d/``.

    With ``html_extra_path: ['<dest_dir>']`` in the book's Sphinx config they land at
    ``<site root>/_k3d/``, where book-mode snapshots load them. Returns the ``_k3d`` folder.

    Raises:
        FileNotFoundError: the installed k3d has no ``static/standalone.js``.
    """
    import k3d

    src = Path(k3d.__file__).parent / "static"
    out = Path(dest_dir) / "_k3d"
    out.mkdir(parents=True, exist_ok=True)
    if not (src / "standalone.js").is_file():
        raise FileNotFoundError(f"k3d {k3d.__version__}: no standalone.js in {src}")
    for name in _K3D_ASSETS:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    return out


# --------------------------------------------------------------------------------------------
# Matplotlib fallbacks
# --------------------------------------------------------------------------------------------


def plot_voxels(occupancy, ax=None, color="tab:blue", threshold: float = 0.5, edgecolor="k",
                alpha: float = 1.0):
    """Draw an occupancy grid with mplot3d, ``+y`` up on screen; returns the Figure.

    mplot3d draws its third axis up, so the plot's axes are world ``(x, z, y)``; the plot's
    second axis (world ``z``) is inverted, which keeps the picture right-handed (not mirrored).
    Voxel ``[k, j, i]`` fills ``[i/W - 1/2, (i+1)/W - 1/2] x ...`` as in ``book/notation.md``.

    Shapes:
        occupancy: ``(D, H, W)`` or ``(1, D, H, W)``.

    Raises:
        ValueError: ``occupancy`` has another shape, or ``ax`` is not a 3D axes.
    """
    import matplotlib.pyplot as plt

    occ = _voxel_grid(occupancy)
    filled = _numpy(occ if occ.dtype == torch.bool else occ > threshold, bool)
    D, H, W = filled.shape
    if ax is None:
        fig = plt.figure(figsize=(4.5, 4.5))
        ax = fig.add_subplot(projection="3d")
    elif getattr(ax, "name", "") != "3d":
        raise ValueError(f"ax: expected a 3D axes (projection='3d'), received {type(ax).__name__}")
    # corner coordinates of the grid, indexed [x, z, y] for mplot3d's (X, Y, Z) = world (x, z, y)
    xs, ys, zs = (np.linspace(-0.5, 0.5, n + 1) for n in (W, H, D))
    X, Z, Y = np.meshgrid(xs, zs, ys, indexing="ij")  # (W+1, D+1, H+1)
    ax.voxels(X, Z, Y, filled.transpose(2, 0, 1), facecolors=color, edgecolor=edgecolor,
              linewidth=0.2, alpha=alpha)
    ax.set_xlim(-0.5, 0.5)
    ax.set_ylim(0.5, -0.5)  # world z inverted: right-handed picture
    ax.set_zlim(-0.5, 0.5)
    ax.set_xlabel("x")
    ax.set_ylabel("z")
    ax.set_zlabel("y (up)")
    ax.set_box_aspect((1, 1, 1))
    return ax.figure


def _image_hwc(img, name: str) -> np.ndarray:
    x = _as_tensor(img, name)
    if x.dim() == 2:
        x = x[None]  # (1, H, W)
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
        raise ShapeError(f"{name}: expected shape (C, H, W) with C in (1, 3, 4), or (H, W), received {tuple(x.shape)}")
    return _numpy(x.permute(1, 2, 0).float(), np.float32)


def image_grid(images, titles=None, ncols: int = 8, figsize=None, cmap: str = "gray"):
    """Lay out images in a grid, one axes per image; returns the Figure.

    RGB images are clipped to ``[0, 1]``; one-channel images in ``[0, 1]`` are shown on that
    range with ``cmap``, others (depth) are scaled per image.

    Shapes:
        images: ``(B, C, H, W)`` with ``C`` in (1, 3, 4), or a list of ``(C, H, W)`` or ``(H, W)``.
        titles: ``B`` strings or None.

    Raises:
        ValueError: a shape differs, ``titles`` has the wrong length, or there are no images.
    """
    import matplotlib.pyplot as plt

    if isinstance(images, (torch.Tensor, np.ndarray)):
        t = _as_tensor(images, "images")
        if t.dim() != 4:
            raise ShapeError(f"images: expected shape (B, C, H, W), received {tuple(t.shape)}")
        images = list(t)
    imgs = [_image_hwc(im, f"images[{b}]") for b, im in enumerate(images)]
    B = len(imgs)
    if B == 0:
        raise ValueError("images: expected at least one image, received 0")
    if titles is not None and len(titles) != B:
        raise ValueError(f"titles: expected {B} titles, received {len(titles)}")
    ncols = max(1, min(int(ncols), B))
    nrows = math.ceil(B / ncols)
    if figsize is None:
        figsize = (1.8 * ncols, 1.8 * nrows + (0.3 * nrows if titles else 0))
    fig = plt.figure(figsize=figsize)
    for b, im in enumerate(imgs):
        ax = fig.add_subplot(nrows, ncols, b + 1)
        if im.shape[-1] == 1:
            lo, hi = float(im.min()), float(im.max())
            rng = dict(vmin=0.0, vmax=1.0) if lo >= 0 and hi <= 1 else {}
            ax.imshow(im[..., 0], cmap=cmap, interpolation="nearest", **rng)
        else:
            ax.imshow(np.clip(im, 0, 1), interpolation="nearest")
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(str(titles[b]), fontsize=9)
    fig.tight_layout()
    return fig


def plot_curves(history, keys=None, logy: bool = False, ax=None, x: str = "step"):
    """Plot training curves, one line per metric, on one axes; returns the Figure.

    ``history`` is a dict of lists (``{"loss": [...], "iou": [...]}``) or a list of per-step
    dicts (``[{"step": 0, "loss": 1.2}, ...]``). A key named ``x`` (default ``"step"``) is used
    as the horizontal axis, else the index. Missing or non-finite values are skipped.

    Raises:
        ValueError: ``history`` is neither form, or a key in ``keys`` is missing.
    """
    import matplotlib.pyplot as plt

    if isinstance(history, (list, tuple)):
        if not all(isinstance(r, dict) for r in history):
            raise ValueError("history: expected a dict of lists or a list of dicts, received a list of "
                             f"{sorted({type(r).__name__ for r in history})}")
        names = list(dict.fromkeys(k for r in history for k in r))
        table = {k: [r.get(k) for r in history] for k in names}
    elif isinstance(history, dict):
        table = {k: list(v) for k, v in history.items()}
    else:
        raise ValueError(f"history: expected a dict of lists or a list of dicts, received {type(history).__name__}")
    keys = [k for k in table if k != x] if keys is None else list(keys)
    missing = [k for k in keys if k not in table]
    if missing:
        raise ValueError(f"keys: expected names from {sorted(table)}, received unknown {missing}")

    def num(v):
        try:
            v = float(v.item() if isinstance(v, torch.Tensor) else v)
        except (TypeError, ValueError):
            return float("nan")
        return v

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    for k in keys:
        ys = np.array([num(v) for v in table[k]])
        xs = np.array([num(v) for v in table[x]]) if x in table and len(table[x]) == len(ys) else np.arange(len(ys))
        ok = np.isfinite(ys) & np.isfinite(xs) & ((ys > 0) if logy else True)
        ax.plot(xs[ok], ys[ok], label=str(k))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x if x in table else "step")
    if len(keys) > 1:
        ax.legend()
    elif keys:
        ax.set_ylabel(str(keys[0]))
    ax.grid(alpha=0.3)
    return ax.figure


# --------------------------------------------------------------------------------------------
# Library source in a notebook
# --------------------------------------------------------------------------------------------


class SourceCode:
    """The source of a function, class or module, displayed with syntax highlighting.

    In a kernel it displays as IPython's highlighted ``Code``; while the book is built it
    displays as a Markdown ``python`` code block, which the book highlights with its own theme.
    ``.text`` is the source, headed by a comment naming where it lives.

    Raises:
        ValueError: ``obj`` has no retrievable Python source.
    """

    def __init__(self, obj):
        try:
            src = inspect.getsource(obj)
            path = inspect.getsourcefile(obj) or "?"
            _, line = inspect.getsourcelines(obj)
        except (TypeError, OSError) as err:
            raise ValueError(f"obj: expected a Python function, class or module, received {obj!r}") from err
        parts = Path(path).parts
        where = "/".join(parts[parts.index("lessons"):]) if "lessons" in parts else Path(path).name
        self.text = f"# {where}, line {max(line, 1)}\n" + textwrap.dedent(src).rstrip() + "\n"

    def markdown(self) -> str:
        """The source as a fenced Markdown code block."""
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", self.text)), default=0))
        return f"{fence}python\n{self.text}{fence}\n"

    def _repr_mimebundle_(self, include=None, exclude=None):
        if book_mode():
            return {"text/markdown": self.markdown(), "text/plain": self.text}
        from IPython.display import Code

        return {"text/html": Code(self.text, language="python")._repr_html_(), "text/plain": self.text}

    def __repr__(self) -> str:
        return self.text


def show_source(obj) -> None:
    """Display the source of a library function, class or module, highlighted (see SourceCode).

    Raises:
        ValueError: ``obj`` has no retrievable Python source.
    """
    from IPython.display import display

    display(SourceCode(obj))


# --------------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------------


def slider(description: str, min, max, value=None, step=None, readout_format: str | None = None):
    """A slider: an ``IntSlider`` when all of min, max, value and step are ints, else a FloatSlider.

    ``value`` defaults to the middle, ``step`` to 1 (ints) or 1/100 of the range (floats). The
    slider reports on release (``continuous_update=False``), so a slow figure redraws once.

    Raises:
        ValueError: ``min >= max`` or ``value`` lies outside ``[min, max]``.
    """
    import ipywidgets as widgets

    if not min < max:
        raise ValueError(f"{description}: expected min < max, received min={min}, max={max}")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (min, max, value, step) if v is not None)
    if value is None:
        value = (min + max) // 2 if ints else (min + max) / 2
    if not min <= value <= max:
        raise ValueError(f"{description}: expected value in [{min}, {max}], received {value}")
    style = {"description_width": "initial"}
    if ints:
        return widgets.IntSlider(value=value, min=min, max=max, step=step or 1, description=description,
                                 continuous_update=False, style=style)
    step = (max - min) / 100 if step is None else step
    kw = {} if readout_format is None else {"readout_format": readout_format}
    return widgets.FloatSlider(value=float(value), min=float(min), max=float(max), step=float(step),
                               description=description, continuous_update=False, style=style, **kw)


def angle_slider(description: str, value: float = 0.0, min: float = -180.0, max: float = 180.0,
                 step: float = 1.0):
    """A slider for an angle **in degrees** (convert with ``torch.deg2rad`` before the library).

    Raises:
        ValueError: ``min >= max`` or ``value`` lies outside ``[min, max]``.
    """
    return slider(f"{description} (°)", float(min), float(max), float(value), float(step), readout_format=".0f")


class Interactive:
    """Sliders that redraw a matplotlib figure; made by :func:`interact_figure`.

    In a kernel it displays the controls above an ``Output`` widget that
    ``ipywidgets.interactive_output`` redraws on every change. While the book is built it
    displays the controls (their saved widget state) and the figure for the initial values as an
    ordinary image output, which the static page shows without any widget manager.
    """

    def __init__(self, fn, controls: dict):
        self.fn = fn
        self.controls = dict(controls)
        self.output = None

    @property
    def values(self) -> dict:
        """The current value of every control, by keyword."""
        return {k: w.value for k, w in self.controls.items()}

    def figure(self, **values):
        """Call ``fn`` with the current values (overridden by ``values``); return its Figure."""
        import matplotlib.pyplot as plt

        kwargs = {**self.values, **values}
        fig = self.fn(**kwargs)
        if fig is None:
            fig = plt.gcf()
        if not hasattr(fig, "savefig"):
            raise ValueError(f"fn: expected to return a matplotlib Figure or None, received {type(fig).__name__}")
        return fig

    def _draw(self, **values) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self.figure(**values)
        display(fig)
        plt.close(fig)  # or the inline backend shows it a second time at the end of the cell

    def widget(self):
        """The live ``VBox(controls, output)``, wired on first use."""
        import ipywidgets as widgets

        if self.output is None:
            self.output = widgets.interactive_output(self._draw, self.controls)
        return widgets.VBox([widgets.VBox(list(self.controls.values())), self.output])

    def _ipython_display_(self) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        if book_mode():
            display(widgets.VBox(list(self.controls.values())))
            self._draw()
        else:
            display(self.widget())


def interact_figure(fn, **controls) -> Interactive:
    """Redraw the figure ``fn(**values)`` whenever one of the ``controls`` moves.

    ``fn`` takes one keyword per control, draws a new figure and returns it (or leaves it as
    pyplot's current figure). A cell ending with ``viz.interact_figure(...)`` shows the sliders
    and the figure live in a kernel, and the initial figure (plus the sliders' saved state) in
    the static book. Nothing is raised without a front end (nbval).

    Raises:
        ValueError: a control is not an ipywidgets value widget, or there are none.
    """
    import ipywidgets as widgets

    if not controls:
        raise ValueError("controls: expected at least one keyword=widget, received none")
    bad = {k: type(w).__name__ for k, w in controls.items() if not isinstance(w, widgets.ValueWidget)}
    if bad:
        raise ValueError(f"controls: expected ipywidgets value widgets (e.g. viz.slider), received {bad}")
    return Interactive(fn, controls)
