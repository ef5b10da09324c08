"""Rendering in pure PyTorch: triangle meshes, voxel grids, compositing and the PTN projector.

Everything here is batched tensor code (no loop over pixels, triangles or voxels), runs on any
device and in float32 or float64, and follows the course conventions (``book/notation.md``):
``x = K (R X + t)`` with ``(R, t)`` = ``cam_from_world``, OpenCV axes, the pixel in row ``i`` and
column ``j`` has its centre at ``(j + 1/2, i + 1/2)``, voxel grids fill :math:`[-\\tfrac12, \\tfrac12]^3`.

1. Rasterization (:func:`rasterize`)
------------------------------------
Each vertex is projected, :math:`\\lambda (u, v, 1)^\\top = K (R X + t)`, :math:`z = \\lambda`.
A pixel centre :math:`\\mathbf{p}` lies in the screen triangle :math:`(\\mathbf{p}_0, \\mathbf{p}_1, \\mathbf{p}_2)`
when its three **edge functions** have the sign of the triangle's area,

.. math::

    E(\\mathbf{a}, \\mathbf{b}, \\mathbf{p}) = (b_u - a_u)(p_v - a_v) - (b_v - a_v)(p_u - a_u),
    \\qquad
    \\beta_0 = \\frac{E(\\mathbf{p}_1, \\mathbf{p}_2, \\mathbf{p})}{E(\\mathbf{p}_0, \\mathbf{p}_1, \\mathbf{p}_2)},\\ \\dots

i.e. when all screen-space barycentrics :math:`\\beta_i \\ge 0`. Dividing by the signed area
makes the test the same for both windings, so **both sides of a triangle are drawn** (no
culling unless ``cull_backfaces=True``); for shading the normal is flipped towards the camera.
With OpenCV axes (``y`` down) a triangle wound counter-clockwise seen from the camera has a
*negative* screen area: that is a front face.

Screen-space barycentrics are not the barycentrics of the 3D point: projection divides by
:math:`z`. What *is* linear on the screen is :math:`1/z`, so the depth and the
**perspective-correct** barycentrics are

.. math::

    \\frac1z = \\sum_i \\frac{\\beta_i}{z_i}, \\qquad b_i = z\\,\\frac{\\beta_i}{z_i}.

Which pixels to test: every triangle tests the pixel centres of a tile covering its screen
bounding box. Triangles are grouped by tile size (the box rounded up to powers of two), so each
group is one dense ``(triangles, tile pixels)`` tensor computed by broadcasting, split into
chunks of a bounded number of candidates so memory stays bounded for any image size; the only
Python loop runs over the few tile sizes and chunks. Visibility is a **z-buffer** done by
``scatter_reduce(amin)``: each covering candidate writes the key
``(float32 bits of z) << 32 | face``, and since positive floats order like their bit
patterns, the smallest key per pixel is the nearest face (ties go to the lower face index).
Triangles with a vertex at depth ``<= near`` are dropped whole (no clipping).

Which face covers a pixel is a discrete choice and has no gradient; the barycentrics and the
depth of the winning face are recomputed differentiably, so ``depth``, ``normals`` and colours
carry gradients to the vertices, ``K``, ``R`` and ``t`` (as in a classic rasterizer: the
silhouette's edges do not move under gradient descent).

2. Shading (:func:`shade_lambertian`)
-------------------------------------
Lambert's law with an ambient term and point lights:

.. math::

    I = \\rho \\odot \\Big(\\mathbf{a} + \\sum_l \\max(0, \\mathbf{n}\\cdot\\hat{\\mathbf{l}}_l)\\,\\mathbf{c}_l\\Big),
    \\qquad \\hat{\\mathbf{l}}_l = \\frac{\\mathbf{P}_l - \\mathbf{X}}{\\lVert\\mathbf{P}_l - \\mathbf{X}\\rVert},

with albedo :math:`\\rho`, ambient colour :math:`\\mathbf{a}`, light positions :math:`\\mathbf{P}_l`
and colours :math:`\\mathbf{c}_l`. The lights have **no** :math:`1/r^2` fall-off: a colour is the
irradiance a surface facing the light receives, wherever it is (the Render for CNN recipe
draws such lights). Flat shading: one normal per face.

3. Anti-aliasing and compositing (:func:`render_mesh`, :func:`composite`)
--------------------------------------------------------------------------
``antialias = s`` renders at ``sH x sW`` with :math:`K' = \\operatorname{diag}(s, s, 1)K` (the
sub-pixel centres then sit evenly inside each pixel) and averages each ``s x s`` block: alpha
becomes the covered fraction, so edges get fractional alpha. The returned ``rgb`` is the
*straight* (not premultiplied) colour, the average over the covered samples, so an image is
put on a background by the compositing equation

.. math:: I = \\alpha\\, I_{fg} + (1 - \\alpha)\\, I_{bg}.

``depth``, ``normals`` and ``face_index`` are not averaged (a mean of two depths is no
surface): they come from sample ``(s//2, s//2)`` of each block, the pixel centre for odd ``s``.

4. Voxels (:func:`render_voxels`)
---------------------------------
The exposed faces of the occupied voxels become a padded batch of meshes
(:func:`lessons.mesh.voxels_to_padded_meshes`), rendered by :func:`render_mesh`: crisp,
exact cubes.

5. The PTN perspective projector (:func:`ptn_sampling_grid`, :func:`ptn_project`)
----------------------------------------------------------------------------------
Perspective Transformer Nets (Yan et al., NIPS 2016) render a volume differentiably by
resampling it into the camera frustum. For every pixel centre :math:`(u, v)` and every depth
:math:`z_s` of ``S`` depths spaced evenly in ``[near, far]`` (``linspace``, both ends included):

.. math::

    \\mathbf{X}_s = R^\\top\\big(z_s K^{-1} (u, v, 1)^\\top - \\mathbf{t}\\big),
    \\qquad \\text{grid} = 2\\mathbf{X}_s \\ \\ (x, y, z \\text{ order}),

then ``grid_sample`` (trilinear, ``align_corners=False``, zeros outside) gives the frustum volume
:math:`V'(s, v, u)`, and the silhouette is its maximum along the ray,
:math:`P(u, v) = \\max_s V'(s, v, u)` (``reduce="max"``, the PTN projection). The alternative
``reduce="ray"`` is the ray-marched opacity :math:`P = 1 - \\prod_s (1 - V'_s)` (the probability
that some sample is occupied, as in Tulsiani et al. 2017); unlike the max, it grows with the
number of samples. Both are differentiable in the volume (only voxels next to a sample get a
gradient) and, through the grid, in ``K``, ``R`` and ``t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lessons import geometry, mesh
from lessons.checks import ShapeError, check_dtype, check_floating, check_same_device, check_shape

__all__ = [
    "Fragments",
    "RenderOutput",
    "PointLights",
    "default_lights",
    "rasterize",
    "shade_lambertian",
    "render_mesh",
    "render_voxels",
    "composite",
    "ptn_sampling_grid",
    "ptn_project",
]

DEFAULT_GREY = 0.7  # albedo when no colours are given
_KEY_EMPTY = torch.iinfo(torch.int64).max  # z-buffer key of a pixel nothing covers
_CHUNK_CPU = 1 << 19  # (triangle, pixel) candidates per chunk on the CPU (cache-sized)
_CHUNK_CUDA = 1 << 23  # ... and on a GPU


class Fragments(NamedTuple):
    """What the rasterizer knows about each pixel.

    Shapes:
        face_index: (B, H, W) int64, the nearest face, ``-1`` where empty
        bary: (B, H, W, 3) perspective-correct barycentrics of that face, 0 where empty
        depth: (B, H, W) camera ``z``, 0 where empty
    """

    face_index: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor


class RenderOutput(NamedTuple):
    """A rendered batch.

    Shapes:
        rgb: (B, 3, H, W) straight (not premultiplied) colour, 0 where empty
        alpha: (B, 1, H, W) coverage in [0, 1]
        depth: (B, 1, H, W) camera ``z``, 0 where empty
        normals: (B, 3, H, W) world-frame unit normals turned towards the camera, 0 where empty
        face_index: (B, 1, H, W) int64, ``-1`` where empty
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    face_index: torch.Tensor


@dataclass
class PointLights:
    """Point lights and an ambient term, one set per batch element (``L`` may be 0).

    Shapes:
        positions: (B, L, 3) light positions, world frame
        colors: (B, L, 3) RGB intensity of each light (no 1/r^2 fall-off)
        ambient: (B, 3) ambient RGB intensity

    Raises:
        ValueError: the shapes disagree or are not floating-point.
    """

    positions: torch.Tensor
    colors: torch.Tensor
    ambient: torch.Tensor

    def __post_init__(self):
        dims = check_shape(self.positions, "B L 3", "positions")
        check_shape(self.colors, "B L 3", "colors", dims)
        check_shape(self.ambient, "B 3", "ambient", dims)
        for name in ("positions", "colors", "ambient"):
            check_floating(getattr(self, name), name)

    def to(self, device=None, dtype=None) -> "PointLights":
        """The same lights on another device and/or dtype."""
        return PointLights(*(x.to(device=device, dtype=dtype) for x in (self.positions, self.colors, self.ambient)))

    def __len__(self) -> int:
        return self.positions.shape[0]


def default_lights(batch_size: int, device=None, dtype=None, position=None, color: float = 0.7, ambient: float = 0.3) -> PointLights:
    """One white point light plus white ambient light, for a batch of ``batch_size``.

    ``position`` (world) defaults to :math:`(0, 0, 2)`, the centre of the camera at azimuth 0,
    elevation 0 and distance 2; :func:`render_mesh` with ``lights=None`` puts it at each
    camera's centre (a head light). A surface facing that light gets
    ``ambient + color = 1`` times its albedo.

    Shapes:
        position: (3,) or (B, 3) -> PointLights with positions (B, 1, 3), colors (B, 1, 3),
        ambient (B, 3)

    Raises:
        ValueError: ``batch_size < 1`` or ``position`` of the wrong shape.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected a positive int, received {batch_size}")
    if position is None:
        dtype = dtype or torch.get_default_dtype()
        position = torch.tensor([0.0, 0.0, 2.0], dtype=dtype, device=device)
    else:
        check_shape(position, "* 3", "position")
        dtype = dtype or position.dtype
        device = device or position.device
        position = position.to(device=device, dtype=dtype)
        if position.dim() == 2:
            check_shape(position, f"{batch_size} 3", "position")
        elif position.dim() != 1:
            raise ShapeError(f"position: expected shape (3,) or ({batch_size}, 3), received {tuple(position.shape)}")
    B = int(batch_size)
    positions = position.expand(B, 3).reshape(B, 1, 3).clone()
    colors = torch.full((B, 1, 3), float(color), dtype=dtype, device=device)
    amb = torch.full((B, 3), float(ambient), dtype=dtype, device=device)
    return PointLights(positions, colors, amb)


# --------------------------------------------------------------------------------------------
# checks shared by the renderers
# --------------------------------------------------------------------------------------------


def _check_camera(K, R, t, dims: dict) -> None:
    check_shape(K, "B 3 3", "K", dims)
    check_shape(R, "B 3 3", "R", dims)
    check_shape(t, "B 3", "t", dims)
    for x, n in ((K, "K"), (R, "R"), (t, "t")):
        check_floating(x, n)


def _check_size(height, width) -> None:
    for v, n in ((height, "height"), (width, "width")):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{n}: expected a positive int, received {v!r}")


def _check_mesh_batch(vertices, faces) -> dict:
    dims = check_shape(vertices, "B V 3", "vertices")
    check_floating(vertices, "vertices")
    check_dtype(faces, (torch.int64, torch.int32), "faces")
    if faces.dim() == 2:
        check_shape(faces, "F 3", "faces")
    else:
        check_shape(faces, "B F 3", "faces", dims)
    dims["F"] = faces.shape[-2]
    return dims


def _batched_faces(faces: torch.Tensor, B: int) -> torch.Tensor:
    return (faces if faces.dim() == 3 else faces.unsqueeze(0).expand(B, -1, -1)).long()


# --------------------------------------------------------------------------------------------
# rasterization
# --------------------------------------------------------------------------------------------


def _triangle_setup(pixels, z, faces, height, width, near, cull_backfaces):
    """Per-triangle screen data: which triangles take part, their pixel boxes and edge equations.

    With :math:`\\mathbf{d} = \\mathbf{p} - \\mathbf{p}_0`, the screen barycentrics are linear:
    :math:`\\beta_1 = A_1 d_u + B_1 d_v`, :math:`\\beta_2 = A_2 d_u + B_2 d_v`,
    :math:`\\beta_0 = 1 - \\beta_1 - \\beta_2`, and so is
    :math:`1/z = 1/z_0 + A_z d_u + B_z d_v`.

    Shapes:
        pixels: (B, V, 2), z: (B, V), faces: (B, F, 3) ->
        coef (B, F, 9) = (u0, v0, A1, B1, A2, B2, 1/z0, Az, Bz), valid (B, F),
        box (B, F, 4) int64 = (x_lo, y_lo, x_hi, y_hi) inclusive pixel indices
    """
    B, F_ = faces.shape[:2]
    idx = faces.clamp_min(0)
    p = torch.gather(pixels, 1, idx.reshape(B, -1, 1).expand(-1, -1, 2)).reshape(B, F_, 3, 2)
    zf = torch.gather(z, 1, idx.reshape(B, -1)).reshape(B, F_, 3)
    e1 = p[:, :, 1] - p[:, :, 0]  # (B, F, 2)
    e2 = p[:, :, 2] - p[:, :, 0]
    # signed area (times 2): E(p0, p1, p2)
    area = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    valid = (faces >= 0).all(-1) & (zf > near).all(-1) & (area.abs() > 1e-12) & torch.isfinite(area)
    if cull_backfaces:
        valid = valid & (area < 0)
    area_safe = torch.where(valid, area, torch.ones_like(area))
    # d = p - p0 = beta_1 e1 + beta_2 e2, by Cramer's rule: beta_1 = (d x e2) / area, beta_2 = (e1 x d) / area
    A1, B1 = e2[..., 1] / area_safe, -e2[..., 0] / area_safe
    A2, B2 = -e1[..., 1] / area_safe, e1[..., 0] / area_safe
    inv_z = 1.0 / torch.where(valid.unsqueeze(-1), zf, torch.ones_like(zf))
    Az = A1 * (inv_z[..., 1] - inv_z[..., 0]) + A2 * (inv_z[..., 2] - inv_z[..., 0])
    Bz = B1 * (inv_z[..., 1] - inv_z[..., 0]) + B2 * (inv_z[..., 2] - inv_z[..., 0])
    coef = torch.stack([p[..., 0, 0], p[..., 0, 1], A1, B1, A2, B2, inv_z[..., 0], Az, Bz], dim=-1)
    # pixel j is a candidate when its centre j + 1/2 lies in [min u, max u]
    lo = p.amin(dim=2).detach()
    hi = p.amax(dim=2).detach()
    size = torch.tensor([width, height], dtype=lo.dtype, device=lo.device)
    lo = torch.ceil(torch.minimum((lo - 0.5).clamp_min(-1), size)).long().clamp_min(0)  # (B, F, 2)
    hi = torch.floor(torch.minimum((hi - 0.5).clamp_min(-1), size)).long().minimum(size.long() - 1)
    box = torch.cat([lo, hi], dim=-1)  # (B, F, 4)
    valid = valid & (hi >= lo).all(-1)
    return coef, valid, box


def _zbuffer(coef, valid, box, height, width, chunk):
    """Nearest face per pixel: tiles of candidate pixels per triangle, one ``scatter_reduce(amin)``.

    Triangles are grouped by their pixel box rounded up to powers of two (``tw x th``, capped at
    the image size), so each group is one dense ``(triangles, tw * th)`` tensor computed by
    broadcasting; a group larger than ``chunk`` candidates is split. Each covering candidate
    writes ``(float32 bits of z) << 32 | face``, whose minimum per pixel is the nearest face.

    Shapes:
        coef (B, F, 9), valid (B, F), box (B, F, 4) -> face_index (B, H, W) int64 (-1 empty)
    """
    B, F_ = valid.shape
    device, dtype = coef.device, coef.dtype
    HW = height * width
    keys = torch.full((B * HW,), _KEY_EMPTY, dtype=torch.int64, device=device)
    active = valid.reshape(-1).nonzero().squeeze(1)  # flat (b * F + f) of drawable triangles
    if active.numel() == 0:
        return torch.full((B, height, width), -1, dtype=torch.int64, device=device)
    box = box.reshape(-1, 4)[active]
    coef = coef.reshape(-1, 9)[active]
    # tile size: the box rounded up to a power of two, at most the image
    size = torch.stack([box[:, 2] - box[:, 0] + 1, box[:, 3] - box[:, 1] + 1], dim=-1)  # (T, 2)
    tile = (2 ** torch.ceil(torch.log2(size.to(torch.float32)))).long()
    tile = torch.minimum(tile, torch.tensor([width, height], device=device))
    origin = torch.minimum(box[:, :2], torch.tensor([width, height], device=device) - tile)  # tile inside the image
    batch = torch.div(active, F_, rounding_mode="floor")
    face = active - batch * F_
    base = batch * HW + origin[:, 1] * width + origin[:, 0]  # flat index of the tile's first pixel
    # per triangle, as rows: vertex 0 relative to the tile's first pixel centre, then the edge
    # equations and the depth plane
    rows = torch.cat([(coef[:, :2] - origin - 0.5), coef[:, 2:]], dim=-1).t().contiguous()  # (9, T)
    group = tile[:, 0] * (height + 1) + tile[:, 1]
    order = torch.argsort(group)
    sizes, counts = torch.unique_consecutive(group[order], return_counts=True)
    eps = 32 * torch.finfo(dtype).eps
    first = 0
    for g, n in zip(sizes.tolist(), counts.tolist()):  # a loop over tile sizes (<= log2 W * log2 H)
        tw, th = divmod(g, height + 1)
        members = order[first : first + n]
        first += n
        row = torch.arange(th, device=device).repeat_interleave(tw)  # (P,) pixel offsets in the tile
        col = torch.arange(tw, device=device).repeat(th)
        row_f, col_f, offset = row.to(dtype), col.to(dtype), row * width + col
        step = max(1, chunk // (tw * th))
        for s in range(0, n, step):  # chunks of a bounded number of candidates
            tri = members[s : s + step]
            ox, oy, A1, B1, A2, B2, iz0, Az, Bz = rows[:, tri].unsqueeze(-1)  # 9 x (T, 1)
            du = col_f - ox  # (T, P) pixel centre minus vertex 0
            dv = row_f - oy
            beta1 = A1 * du + B1 * dv
            beta2 = A2 * du + B2 * dv
            inside = (beta1 >= -eps) & (beta2 >= -eps) & (beta1 + beta2 <= 1 + eps)
            t_i, p_i = inside.nonzero(as_tuple=True)
            # 1/z is linear on the screen
            inv_z = (iz0[t_i, 0] + Az[t_i, 0] * du[t_i, p_i] + Bz[t_i, 0] * dv[t_i, p_i]).clamp_min(1e-30)
            z_bits = (1.0 / inv_z).to(torch.float32).view(torch.int32).to(torch.int64)
            key = (z_bits << 32) | face[tri][t_i]
            pix = base[tri][t_i] + offset[p_i]
            keys.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)
    face_index = torch.where(keys == _KEY_EMPTY, -1, keys & 0xFFFFFFFF)
    return face_index.reshape(B, height, width)


def _gather_faces(x: torch.Tensor, face_index: torch.Tensor) -> torch.Tensor:
    """Rows of x (B, F, C) at face_index (B, N) (-1 reads row 0) -> (B, N, C)."""
    B, F_, C = x.shape
    flat = face_index.clamp_min(0) + F_ * torch.arange(B, device=x.device).unsqueeze(1)  # (B, N)
    return x.reshape(B * F_, C).index_select(0, flat.reshape(-1)).reshape(B, -1, C)


def _interpolate(bary: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """sum_i b_i x_i: bary (B, N, 3), corners (B, N, 3, C) -> (B, N, C)."""
    b = bary.unsqueeze(-1)
    return b[..., 0, :] * corners[..., 0, :] + b[..., 1, :] * corners[..., 1, :] + b[..., 2, :] * corners[..., 2, :]


def rasterize(vertices, faces, K, R, t, height: int, width: int, near: float = 1e-2, cull_backfaces: bool = False) -> Fragments:
    """Nearest triangle, perspective-correct barycentrics and depth at every pixel centre.

    Pixel ``(i, j)`` is tested at its centre :math:`(j + \\tfrac12, i + \\tfrac12)` against the
    projected triangles :math:`\\lambda (u, v, 1)^\\top = K (R X + t)` with edge functions; a
    z-buffer (``scatter_reduce(amin)`` on a packed (depth, face) key) keeps the nearest.
    Perspective-correct barycentrics :math:`b_i = z \\beta_i / z_i` with
    :math:`1/z = \\sum_i \\beta_i / z_i` (see the module docstring). Both sides are drawn unless
    ``cull_backfaces`` (then only front faces: those that look counter-clockwise from the camera,
    i.e. whose outward side faces it);
    triangles with a vertex at depth ``<= near`` are dropped; face rows with a ``-1`` are
    padding and ignored. ``bary`` and ``depth`` are differentiable in the vertices and the
    camera; which face wins is not.

    Shapes:
        vertices: (B, V, 3) world; faces: (F, 3) or (B, F, 3) int64, ``-1`` rows = padding
        K, R: (B, 3, 3); t: (B, 3)
        returns Fragments(face_index (B, H, W) int64, bary (B, H, W, 3), depth (B, H, W))

    Raises:
        ValueError: wrong shapes or dtypes, or a non-positive ``height``/``width``.
    """
    dims = _check_mesh_batch(vertices, faces)
    _check_camera(K, R, t, dims)
    _check_size(height, width)
    check_same_device(vertices=vertices, faces=faces, K=K, R=R, t=t)
    B = vertices.shape[0]
    faces = _batched_faces(faces, B)
    if faces.shape[1] == 0:  # no faces at all: one padding row keeps the gathers below valid
        faces = torch.full((B, 1, 3), -1, dtype=torch.int64, device=faces.device)
    if vertices.shape[1] == 0:
        vertices = vertices.new_zeros(B, 1, 3)
    K, R, t = (x.to(vertices.dtype) for x in (K, R, t))
    pixels, z = geometry.project(vertices, K, R, t)  # (B, V, 2), (B, V)
    coef, valid, box = _triangle_setup(pixels, z, faces, height, width, near, cull_backfaces)
    chunk = _CHUNK_CUDA if vertices.is_cuda else _CHUNK_CPU
    with torch.no_grad():
        face_index = _zbuffer(coef.detach(), valid, box, height, width, chunk)  # (B, H, W)
    # differentiable pass at the winners only: beta from the edge equations, then 1/z
    hit = face_index >= 0
    C = _gather_faces(coef, face_index.reshape(B, -1))  # (B, HW, 9)
    centres = geometry.pixel_grid(height, width, device=vertices.device, dtype=vertices.dtype).reshape(1, -1, 2)
    du = centres[..., 0] - C[..., 0]
    dv = centres[..., 1] - C[..., 1]
    beta1 = C[..., 2] * du + C[..., 3] * dv
    beta2 = C[..., 4] * du + C[..., 5] * dv
    beta = torch.stack([1 - beta1 - beta2, beta1, beta2], dim=-1)  # (B, HW, 3)
    inv_z = C[..., 6] + C[..., 7] * du + C[..., 8] * dv
    mask = hit.reshape(B, -1)
    inv_z = torch.where(mask, inv_z, torch.ones_like(inv_z))
    depth = torch.where(mask, 1.0 / inv_z, torch.zeros_like(inv_z))
    # b_i = z beta_i / z_i, with 1/z_i read off the per-face vertex depths
    zf = torch.gather(z, 1, faces.clamp_min(0).reshape(B, -1)).reshape(B, -1, 3)
    zf = _gather_faces(zf, face_index.reshape(B, -1))  # (B, HW, 3)
    zf = torch.where(mask.unsqueeze(-1), zf, torch.ones_like(zf))
    bary = beta / zf * depth.unsqueeze(-1)
    return Fragments(face_index, bary.reshape(B, height, width, 3), depth.reshape(B, height, width))


# --------------------------------------------------------------------------------------------
# shading and compositing
# --------------------------------------------------------------------------------------------


def shade_lambertian(normals, points, albedo, lights: PointLights) -> torch.Tensor:
    """Lambertian shading with ambient and point lights (no 1/r^2 fall-off).

    :math:`I = \\rho \\odot (\\mathbf{a} + \\sum_l \\max(0, \\mathbf{n}\\cdot\\hat{\\mathbf{l}}_l)\\,\\mathbf{c}_l)`,
    :math:`\\hat{\\mathbf{l}}_l = (\\mathbf{P}_l - \\mathbf{X}) / \\lVert \\mathbf{P}_l - \\mathbf{X} \\rVert`.
    The result is not clipped to [0, 1] (:func:`render_mesh` clips).

    Shapes:
        normals, points, albedo: (B, ..., 3) channels last (unit normals, world frame)
        lights: PointLights with B sets (or 1, shared) -> (B, ..., 3)

    Raises:
        ValueError: the shapes disagree, or ``lights`` has a different batch size.
    """
    if not isinstance(lights, PointLights):
        raise ValueError(f"lights: expected a PointLights, received {type(lights).__name__}")
    dims = check_shape(normals, "*rest 3", "normals")
    check_shape(points, "*rest 3", "points", dims)
    check_shape(albedo, "*rest 3", "albedo", dims)
    for x, n in ((normals, "normals"), (points, "points"), (albedo, "albedo")):
        check_floating(x, n)
    if normals.dim() < 2:
        raise ShapeError(f"normals: expected shape (B, ..., 3), received {tuple(normals.shape)}")
    B = normals.shape[0]
    if len(lights) not in (1, B):
        raise ShapeError(f"lights: expected 1 or {B} light sets to match normals (B, ..., 3), received {len(lights)}")
    lights = lights.to(normals.device, normals.dtype)
    if len(lights) != B:  # one set shared by the whole batch
        lights = PointLights(*(x.expand(B, *x.shape[1:]) for x in (lights.positions, lights.colors, lights.ambient)))
    extra = normals.dim() - 2  # the ... dims
    view = (B,) + (1,) * extra
    shade = lights.ambient.reshape(*view, 3).expand_as(normals)
    L = lights.positions.shape[1]
    if L > 0:
        P = lights.positions.reshape(B, *((1,) * extra), L, 3)
        c = lights.colors.reshape(B, *((1,) * extra), L, 3)
        l_hat = F.normalize(P - points.unsqueeze(-2), dim=-1, eps=1e-12)  # (B, ..., L, 3)
        cos = (l_hat * normals.unsqueeze(-2)).sum(-1, keepdim=True).clamp_min(0)  # (B, ..., L, 1)
        shade = shade + (cos * c).sum(-2)
    return albedo * shade


def composite(foreground, alpha, background) -> torch.Tensor:
    """Put a foreground on a background with its alpha: :math:`I = \\alpha I_{fg} + (1 - \\alpha) I_{bg}`.

    ``foreground`` is a straight (not premultiplied) colour, as :func:`render_mesh` returns.

    Shapes:
        foreground: (B, C, H, W); alpha: (B, 1, H, W); background: (B, C, H, W) or (C,)
        -> (B, C, H, W)

    Raises:
        ValueError: the shapes disagree.
    """
    dims = check_shape(foreground, "B C H W", "foreground")
    check_shape(alpha, "B 1 H W", "alpha", dims)
    for x, n in ((foreground, "foreground"), (alpha, "alpha")):
        check_floating(x, n)
    if isinstance(background, torch.Tensor) and background.dim() == 1:
        check_shape(background, "C", "background", dims)
        background = background.reshape(1, -1, 1, 1)
    else:
        check_shape(background, "B C H W", "background", dims)
    background = background.to(foreground)
    return alpha * foreground + (1 - alpha) * background


# --------------------------------------------------------------------------------------------
# mesh and voxel rendering
# --------------------------------------------------------------------------------------------




def render_mesh(
    vertices,
    faces,
    K,
    R,
    t,
    height: int,
    width: int,
    vertex_colors=None,
    face_colors=None,
    lights: PointLights | None = None,
    antialias: int = 1,
    near: float = 1e-2,
    cull_backfaces: bool = False,
) -> RenderOutput:
    """Render a batch of triangle meshes: colour, alpha, depth, normals and face ids.

    Rasterize (:func:`rasterize`) at ``antialias`` times the resolution, shade each covered
    sample with :func:`shade_lambertian` (flat: the face normal, turned towards the camera),
    clip to [0, 1], then average ``s x s`` blocks: ``alpha`` is the covered fraction and ``rgb``
    the mean colour of the covered samples (straight colour; put it on a background with
    :func:`composite`). ``depth``, ``normals`` and ``face_index`` come from sample
    ``(s//2, s//2)`` of each block (the pixel centre for odd ``s``). Albedo: ``vertex_colors``
    interpolated with perspective-correct barycentrics, else ``face_colors``, else grey 0.7.
    ``lights=None``: :func:`default_lights` with the light at each camera's centre.

    Shapes:
        vertices: (B, V, 3); faces: (F, 3) or (B, F, 3) int64 with ``-1`` padding rows
        K, R: (B, 3, 3); t: (B, 3); vertex_colors: (B, V, 3); face_colors: (B, F, 3)
        returns RenderOutput(rgb (B, 3, H, W), alpha (B, 1, H, W), depth (B, 1, H, W),
        normals (B, 3, H, W), face_index (B, 1, H, W) int64)

    Raises:
        ValueError: wrong shapes or dtypes, both colour kinds given, or ``antialias < 1``.
    """
    dims = _check_mesh_batch(vertices, faces)
    _check_camera(K, R, t, dims)
    _check_size(height, width)
    if not isinstance(antialias, int) or antialias < 1:
        raise ValueError(f"antialias: expected a positive int, received {antialias!r}")
    if vertex_colors is not None and face_colors is not None:
        raise ValueError("vertex_colors, face_colors: expected at most one of them, received both")
    if vertex_colors is not None:
        check_shape(vertex_colors, "B V 3", "vertex_colors", dims)
        check_floating(vertex_colors, "vertex_colors")
    if face_colors is not None:
        check_shape(face_colors, "B F 3", "face_colors", dims)
        check_floating(face_colors, "face_colors")
    B, dtype, device = vertices.shape[0], vertices.dtype, vertices.device
    faces = _batched_faces(faces, B)
    if faces.shape[1] == 0:  # nothing to draw: one padding row keeps the gathers below valid
        faces = torch.full((B, 1, 3), -1, dtype=torch.int64, device=device)
        face_colors = None if face_colors is None else face_colors.new_zeros(B, 1, 3)
    if vertices.shape[1] == 0:
        vertices = vertices.new_zeros(B, 1, 3)
        vertex_colors = None if vertex_colors is None else vertex_colors.new_zeros(B, 1, 3)
    K, R, t = (x.to(dtype) for x in (K, R, t))
    s = antialias
    Hs, Ws = s * height, s * width
    # sub-pixel centres (j' + 1/2)/s sit evenly inside each pixel when K' = diag(s, s, 1) K
    scale = torch.tensor([s, s, 1.0], dtype=dtype, device=device)
    frags = rasterize(vertices, faces, scale[:, None] * K, R, t, Hs, Ws, near=near, cull_backfaces=cull_backfaces)
    fi = frags.face_index.reshape(B, -1)  # (B, N) with N = Hs * Ws
    hit = (fi >= 0).unsqueeze(-1).to(dtype)  # (B, N, 1)
    bary = frags.bary.reshape(B, -1, 3)
    tri = mesh.face_vertices(vertices, faces)  # (B, F, 3, 3)
    tri_px = _gather_faces(tri.reshape(B, -1, 9), fi).reshape(B, -1, 3, 3)  # (B, N, 3, 3)
    points = _interpolate(bary, tri_px)  # (B, N, 3) world point of each sample
    n = _gather_faces(mesh.face_normals(vertices, faces), fi)  # (B, N, 3)
    centre = geometry.camera_center(R, t)  # (B, 3)
    facing = ((centre.unsqueeze(1) - points) * n).sum(-1, keepdim=True)
    n = torch.where(facing < 0, -n, n) * hit
    if vertex_colors is not None:
        vc = mesh.face_vertices(vertex_colors.to(dtype), faces).reshape(B, -1, 9)  # (B, F, 9)
        albedo = _interpolate(bary, _gather_faces(vc, fi).reshape(B, -1, 3, 3))
    elif face_colors is not None:
        albedo = _gather_faces(face_colors.to(dtype), fi)
    else:
        albedo = torch.full_like(points, DEFAULT_GREY)
    if lights is None:
        lights = default_lights(B, device=device, dtype=dtype, position=centre.detach())
    rgb = shade_lambertian(n, points, albedo, lights).clamp(0, 1) * hit  # (B, N, 3)
    rgb = rgb.transpose(1, 2).reshape(B, 3, Hs, Ws)
    alpha = hit.transpose(1, 2).reshape(B, 1, Hs, Ws)
    normals = n.transpose(1, 2).reshape(B, 3, Hs, Ws)
    depth = frags.depth.reshape(B, 1, Hs, Ws)
    face_index = frags.face_index.reshape(B, 1, Hs, Ws)
    if s > 1:
        alpha = F.avg_pool2d(alpha, s)  # (B, 1, H, W)
        premultiplied = F.avg_pool2d(rgb, s)  # (B, 3, H, W)
        rgb = torch.where(alpha > 0, premultiplied / alpha.clamp_min(1e-12), torch.zeros_like(premultiplied))
        c = s // 2
        depth, normals, face_index = (x[:, :, c::s, c::s] for x in (depth, normals, face_index))
    return RenderOutput(rgb, alpha, depth, normals, face_index)


def render_voxels(
    occupancy,
    K,
    R,
    t,
    height: int,
    width: int,
    colors=None,
    lights: PointLights | None = None,
    threshold: float = 0.5,
    antialias: int = 1,
) -> RenderOutput:
    """Render voxel grids as crisp cubes (their exposed faces as meshes, :func:`render_mesh`).

    A voxel is occupied when ``occupancy > threshold``; the grid fills
    :math:`[-\\tfrac12, \\tfrac12]^3` with ``D, H, W`` along ``z, y, x``. Each face takes the colour
    of its voxel. ``face_index`` indexes the padded faces of
    :func:`lessons.mesh.voxels_to_padded_meshes`, two per exposed voxel face.

    Shapes:
        occupancy: (B, 1, D, H, W) or (B, D, H, W), bool or float
        K, R: (B, 3, 3); t: (B, 3); colors: (B, 3, D, H, W) or (3,)
        returns RenderOutput as :func:`render_mesh`

    Raises:
        ValueError: wrong shapes.
    """
    if isinstance(occupancy, torch.Tensor) and occupancy.dim() == 5:
        check_shape(occupancy, "B 1 D H W", "occupancy")
        occupancy = occupancy[:, 0]
    dims = check_shape(occupancy, "B D H W", "occupancy")
    _check_camera(K, R, t, dims)
    dtype = K.dtype
    vertices, faces, voxel_index = mesh.voxels_to_padded_meshes(occupancy, threshold=threshold, dtype=dtype)
    B = vertices.shape[0]
    if colors is None:
        face_colors = None
    elif colors.dim() == 1:
        check_shape(colors, "3", "colors")
        face_colors = colors.to(dtype).expand(B, faces.shape[1], 3)
    else:
        check_shape(colors, "B 3 D H W", "colors", dims)
        flat = colors.to(dtype).flatten(2).transpose(1, 2)  # (B, D*H*W, 3)
        face_colors = _gather_faces(flat, voxel_index)  # (B, F, 3)
    return render_mesh(vertices, faces, K, R, t, height, width, face_colors=face_colors, lights=lights, antialias=antialias)


# --------------------------------------------------------------------------------------------
# the PTN perspective projector
# --------------------------------------------------------------------------------------------


def _near_far(R, t, near, far):
    """Per-batch near/far depths; default: the cube's bounding sphere around the origin."""
    B = R.shape[0]
    dist = torch.linalg.vector_norm(geometry.camera_center(R, t), dim=-1)  # (B,)
    half_diagonal = math.sqrt(3) / 2
    if near is None:
        near = (dist - half_diagonal).clamp_min(1e-3)
    if far is None:
        far = dist + half_diagonal
    near = torch.as_tensor(near, dtype=R.dtype, device=R.device).expand(B)
    far = torch.as_tensor(far, dtype=R.dtype, device=R.device).expand(B)
    return near, far


def ptn_sampling_grid(K, R, t, height: int, width: int, depth_samples: int, near=None, far=None) -> torch.Tensor:
    """The PTN frustum grid: world points of every pixel at ``S`` depths, as ``grid_sample`` coordinates.

    :math:`\\mathbf{X}_s = R^\\top(z_s K^{-1}(u, v, 1)^\\top - \\mathbf{t})` at pixel centres
    :math:`(u, v)` and :math:`z_s` = ``linspace(near, far, S)``; returned as :math:`2\\mathbf{X}_s`
    in (x, y, z) order (the voxel grid fills :math:`[-\\tfrac12, \\tfrac12]^3`). ``near``/``far``:
    floats or (B,) tensors; ``None`` takes the sphere around the unit cube,
    :math:`\\lVert\\mathbf{C}\\rVert \\mp \\sqrt3/2`.

    Shapes:
        K, R: (B, 3, 3); t: (B, 3) -> (B, S, H, W, 3)

    Raises:
        ValueError: wrong shapes, non-positive sizes, or ``depth_samples < 1``.
    """
    dims = check_shape(K, "B 3 3", "K")
    _check_camera(K, R, t, dims)
    _check_size(height, width)
    if not isinstance(depth_samples, int) or depth_samples < 1:
        raise ValueError(f"depth_samples: expected a positive int, received {depth_samples!r}")
    B, S = K.shape[0], depth_samples
    R, t = R.to(K.dtype), t.to(K.dtype)
    near, far = _near_far(R, t, near, far)
    steps = torch.linspace(0, 1, S, dtype=K.dtype, device=K.device)
    z = near[:, None] + (far - near)[:, None] * steps  # (B, S)
    pixels = geometry.pixel_grid(height, width, device=K.device, dtype=K.dtype).reshape(1, 1, -1, 2)
    pixels = pixels.expand(B, S, -1, -1).reshape(B, -1, 2)  # (B, S*H*W, 2)
    depth = z[:, :, None].expand(-1, -1, height * width).reshape(B, -1)  # (B, S*H*W)
    X = geometry.unproject(pixels, depth, K, R, t)  # (B, S*H*W, 3)
    return 2 * X.reshape(B, S, height, width, 3)


def ptn_project(volume, K, R, t, height: int, width: int, depth_samples: int | None = None, near=None, far=None, reduce: str = "max") -> torch.Tensor:
    """The PTN projection of a volume: trilinear samples along each pixel's ray, reduced over depth.

    ``reduce="max"``: :math:`P(u, v) = \\max_s V(\\mathbf{X}_s)` (Yan et al. 2016);
    ``reduce="ray"``: :math:`P(u, v) = 1 - \\prod_s (1 - V(\\mathbf{X}_s))`. ``grid_sample``
    with ``align_corners=False`` and zero padding on :func:`ptn_sampling_grid`
    (``depth_samples`` defaults to ``D``). Differentiable in ``volume``, ``K``, ``R``, ``t``.

    Shapes:
        volume: (B, C, D, H, W) with values in [0, 1]; K, R: (B, 3, 3); t: (B, 3)
        -> (B, C, height, width)

    Raises:
        ValueError: wrong shapes, or an unknown ``reduce``.
    """
    dims = check_shape(volume, "B C D H W", "volume")
    check_floating(volume, "volume")
    _check_camera(K, R, t, dims)
    if reduce not in ("max", "ray"):
        raise ValueError(f"reduce: expected 'max' or 'ray', received {reduce!r}")
    S = volume.shape[2] if depth_samples is None else depth_samples
    grid = ptn_sampling_grid(K.to(volume.dtype), R.to(volume.dtype), t.to(volume.dtype), height, width, S, near, far)
    samples = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, C, S, H, W)
    if reduce == "max":
        return samples.amax(dim=2)
    return 1 - torch.prod(1 - samples, dim=2)
