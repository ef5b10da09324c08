"""Triangle meshes: normals, areas, surface samples, primitives and voxel surfaces.

A mesh is a pair ``vertices (V, 3)`` float and ``faces (F, 3)`` int64. Faces are wound
**counter-clockwise seen from outside**, so the right-hand rule gives the outward normal

.. math::

    \\mathbf{n} = \\frac{(\\mathbf{v}_1 - \\mathbf{v}_0) \\times (\\mathbf{v}_2 - \\mathbf{v}_0)}
                       {\\lVert (\\mathbf{v}_1 - \\mathbf{v}_0) \\times (\\mathbf{v}_2 - \\mathbf{v}_0) \\rVert},
    \\qquad
    A = \\tfrac12 \\lVert (\\mathbf{v}_1 - \\mathbf{v}_0) \\times (\\mathbf{v}_2 - \\mathbf{v}_0) \\rVert .

Meshes of different sizes travel in one batch as ``vertices (B, Vmax, 3)`` and
``faces (B, Fmax, 3)`` whose padding rows are ``-1`` (:func:`pad_meshes`). Every function
here that reads faces treats a row with a negative index as absent: zero normal, zero area.

The enclosed volume of a closed, outward-wound mesh follows from the divergence theorem,
:math:`V = \\tfrac16 \\sum_f \\mathbf{v}_0 \\cdot (\\mathbf{v}_1 \\times \\mathbf{v}_2)`
(:func:`mesh_volume`); the tests use it to check that :func:`voxels_to_mesh` and the
primitives are closed and wound outward.

Voxel grids follow the course convention: a grid ``(D, H, W)`` (``z, y, x``) fills the cube
:math:`[-\\tfrac12, \\tfrac12]^3`, voxel ``[k, j, i]`` spans
:math:`x \\in [i/W - \\tfrac12, (i+1)/W - \\tfrac12]` and likewise in ``y`` (``j, H``) and
``z`` (``k, D``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from lessons.checks import ShapeError, check_dtype, check_floating, check_shape

__all__ = [
    "face_vertices",
    "face_normals",
    "face_areas",
    "vertex_normals",
    "mesh_volume",
    "sample_points",
    "box",
    "cylinder",
    "merge",
    "pad_meshes",
    "voxels_to_mesh",
    "voxels_to_padded_meshes",
]

_INT_DTYPES = (torch.int64, torch.int32)


def _check_mesh(vertices, faces, batched_faces_ok: bool = True) -> None:
    check_shape(vertices, "* V 3", "vertices")
    check_floating(vertices, "vertices")
    check_dtype(faces, _INT_DTYPES, "faces")
    if faces.dim() == 2 or not batched_faces_ok:
        check_shape(faces, "F 3", "faces")
    else:
        check_shape(faces, "* F 3", "faces")
        lead_v, lead_f = tuple(vertices.shape[:-2]), tuple(faces.shape[:-2])
        if lead_f != lead_v:
            raise ShapeError(
                f"faces: expected shape (F, 3) or {lead_v + ('F', 3)} to match vertices, "
                f"received {tuple(faces.shape)}"
            )


def _face_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    idx = faces.long().clamp_min(0)
    if idx.dim() == 2:
        return vertices[..., idx, :]  # (..., F, 3, C)
    lead, V, C = vertices.shape[:-2], vertices.shape[-2], vertices.shape[-1]
    flat_v = vertices.reshape(-1, V, C)
    flat_i = idx.reshape(flat_v.shape[0], -1)  # (N, F*3)
    flat = flat_i + V * torch.arange(flat_v.shape[0], device=idx.device).unsqueeze(1)
    out = flat_v.reshape(-1, C).index_select(0, flat.reshape(-1))  # (N*F*3, C)
    return out.reshape(*lead, faces.shape[-2], 3, C)


def face_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """The three corners of every face (also works for per-vertex attributes such as colours).

    Padded face rows (``-1``) read vertex 0; mask them with ``(faces >= 0).all(-1)``.

    Shapes:
        vertices: (..., V, C); faces: (F, 3) or (..., F, 3) -> (..., F, 3, C) (face, corner, value)

    Raises:
        ValueError: wrong shapes or a non-integer ``faces``.
    """
    check_shape(vertices, "* V C", "vertices")
    check_dtype(faces, _INT_DTYPES, "faces")
    if faces.dim() != 2:
        check_shape(faces, "* F 3", "faces")
        if tuple(faces.shape[:-2]) != tuple(vertices.shape[:-2]):
            raise ShapeError(
                f"faces: expected shape (F, 3) or {tuple(vertices.shape[:-2]) + ('F', 3)} to match vertices, "
                f"received {tuple(faces.shape)}"
            )
    else:
        check_shape(faces, "F 3", "faces")
    return _face_vertices(vertices, faces)


def _valid(faces: torch.Tensor) -> torch.Tensor:
    """True for face rows with no negative (padding) index. Shapes: (..., F, 3) -> (..., F)."""
    return (faces >= 0).all(dim=-1)


def _cross_products(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(v1 - v0) x (v2 - v0) per face, zero on padded rows. Shapes: -> (..., F, 3)."""
    tri = _face_vertices(vertices, faces)
    n = torch.linalg.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :], dim=-1)
    return n * _valid(faces).unsqueeze(-1).to(n.dtype)


def _safe_normalize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """v / |v|, and 0 (with finite gradients) where |v| = 0."""
    sq = (v * v).sum(dim=-1, keepdim=True)
    return v * torch.rsqrt(sq.clamp_min(eps * eps)) * (sq > 0).to(v.dtype)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normal of every face, pointing outward for counter-clockwise faces.

    :math:`\\mathbf{n} = \\widehat{(\\mathbf{v}_1-\\mathbf{v}_0)\\times(\\mathbf{v}_2-\\mathbf{v}_0)}`;
    degenerate and padded (``-1``) faces get the zero vector (with finite gradients).

    Shapes:
        vertices: (..., V, 3)
        faces: (F, 3) or (..., F, 3) int64, ``-1`` rows are padding
        returns: (..., F, 3)

    Raises:
        ValueError: wrong shapes, a non-float ``vertices`` or a non-integer ``faces``.
    """
    _check_mesh(vertices, faces)
    return _safe_normalize(_cross_products(vertices, faces))


def face_areas(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area of every face, :math:`A = \\tfrac12\\lVert(\\mathbf{v}_1-\\mathbf{v}_0)\\times(\\mathbf{v}_2-\\mathbf{v}_0)\\rVert`.

    Padded (``-1``) faces have area 0.

    Shapes:
        vertices: (..., V, 3); faces: (F, 3) or (..., F, 3) -> (..., F)

    Raises:
        ValueError: wrong shapes or dtypes.
    """
    _check_mesh(vertices, faces)
    n = _cross_products(vertices, faces)
    sq = (n * n).sum(dim=-1)
    # sqrt with a finite gradient at zero area
    return 0.5 * torch.sqrt(sq.clamp_min(1e-30)) * (sq > 0).to(n.dtype)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals: the normalised sum of the adjacent faces' cross products.

    :math:`\\mathbf{n}_v = \\widehat{\\sum_{f \\ni v} 2 A_f \\mathbf{n}_f}` (the cross product has
    length :math:`2A_f`, so summing it weighs each face by its area). Vertices in no face get 0.

    Shapes:
        vertices: (..., V, 3); faces: (F, 3) or (..., F, 3) -> (..., V, 3)

    Raises:
        ValueError: wrong shapes or dtypes.
    """
    _check_mesh(vertices, faces)
    n = _cross_products(vertices, faces)  # (..., F, 3)
    lead, V, F = vertices.shape[:-2], vertices.shape[-2], faces.shape[-2]
    flat_n = n.reshape(-1, F, 1, 3).expand(-1, F, 3, 3).reshape(-1, F * 3, 3)  # (N, F*3, 3)
    idx = faces.long().clamp_min(0).expand(*lead, F, 3).reshape(-1, F * 3, 1).expand(-1, -1, 3)
    acc = torch.zeros(flat_n.shape[0], V, 3, dtype=n.dtype, device=n.device)
    acc = acc.scatter_add(1, idx, flat_n)  # padded rows add zeros to vertex 0
    return _safe_normalize(acc.reshape(*lead, V, 3))


def mesh_volume(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Signed volume enclosed by a closed mesh (divergence theorem); positive when wound outward.

    :math:`V = \\tfrac16 \\sum_f \\mathbf{v}_{f,0} \\cdot (\\mathbf{v}_{f,1} \\times \\mathbf{v}_{f,2})`.

    Shapes:
        vertices: (..., V, 3); faces: (F, 3) or (..., F, 3) -> (...)

    Raises:
        ValueError: wrong shapes or dtypes.
    """
    _check_mesh(vertices, faces)
    tri = _face_vertices(vertices, faces)
    det = (tri[..., 0, :] * torch.linalg.cross(tri[..., 1, :], tri[..., 2, :], dim=-1)).sum(-1)
    return (det * _valid(faces).to(det.dtype)).sum(-1) / 6.0


def sample_points(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    n: int,
    generator: torch.Generator | None = None,
    return_normals: bool = False,
    return_face_index: bool = False,
):
    """Draw ``n`` points uniformly on the surface (area-weighted faces, the square-root trick).

    A face is drawn with probability :math:`A_f / \\sum A`; inside it, with
    :math:`r_1, r_2 \\sim U(0, 1)` and :math:`s = \\sqrt{r_1}`,

    .. math:: \\mathbf{p} = (1 - s)\\,\\mathbf{v}_0 + s(1 - r_2)\\,\\mathbf{v}_1 + s r_2\\,\\mathbf{v}_2

    is uniform on the triangle (without the square root the points crowd at :math:`\\mathbf{v}_0`).
    Differentiable in ``vertices`` (the face choice is not). Random numbers are drawn on the
    generator's device (CPU by default) and moved, so a seeded CPU generator gives the same
    points on every device.

    Shapes:
        vertices: (V, 3); faces: (F, 3)
        returns: points (n, 3); with ``return_normals`` also normals (n, 3); with
        ``return_face_index`` also face_index (n,) int64, in that order.

    Raises:
        ValueError: wrong shapes or dtypes, ``n < 0``, or a mesh of zero area.
    """
    _check_mesh(vertices, faces, batched_faces_ok=False)
    check_shape(vertices, "V 3", "vertices")
    if int(n) < 0:
        raise ValueError(f"n: expected a non-negative number of points, received {n}")
    areas = face_areas(vertices, faces).detach()
    total = areas.sum()
    if not bool(total > 0):
        raise ValueError("vertices, faces: expected a mesh with positive surface area, received area 0")
    rand_device = generator.device if generator is not None else torch.device("cpu")
    r = torch.rand(3, int(n), generator=generator, device=rand_device, dtype=torch.float64)
    r = r.to(vertices.device)
    cdf = torch.cumsum(areas.double(), 0) / total.double()
    face_index = torch.searchsorted(cdf, r[0], right=True).clamp_max(faces.shape[0] - 1)
    s = r[1].sqrt().to(vertices.dtype)
    r2 = r[2].to(vertices.dtype)
    tri = _face_vertices(vertices, faces)[face_index]  # (n, 3, 3)
    w = torch.stack([1 - s, s * (1 - r2), s * r2], dim=-1)  # (n, 3)
    points = (w.unsqueeze(-1) * tri).sum(dim=-2)
    out = [points]
    if return_normals:
        out.append(face_normals(vertices, faces)[face_index])
    if return_face_index:
        out.append(face_index)
    return out[0] if len(out) == 1 else tuple(out)


def _as_vector(x, name: str, dtype, device) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device)
    if t.dim() == 0:
        t = t.expand(3)
    check_shape(t, "3", name)
    return t


def box(center=(0.0, 0.0, 0.0), size=(1.0, 1.0, 1.0), dtype=None, device=None):
    """An axis-aligned box as 8 vertices and 12 counter-clockwise (outward) triangles.

    The corners are :math:`\\mathbf{c} + \\tfrac12\\,\\mathbf{s} \\odot (\\pm1, \\pm1, \\pm1)`.

    Shapes:
        center: (3,); size: (3,) or a scalar (a cube)
        returns: vertices (8, 3), faces (12, 3) int64

    Raises:
        ValueError: ``center`` or ``size`` is not 3 numbers.
    """
    dtype = dtype or (center.dtype if isinstance(center, torch.Tensor) and center.is_floating_point() else torch.get_default_dtype())
    device = device or (center.device if isinstance(center, torch.Tensor) else None)
    c = _as_vector(center, "center", dtype, device)
    s = _as_vector(size, "size", dtype, device)
    # corner index = 4*z + 2*y + x with each bit selecting -1/2 or +1/2 along that axis
    bits = torch.tensor([[(k >> 0) & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], dtype=dtype, device=device)
    vertices = c + (bits - 0.5) * s
    faces = torch.tensor(
        [
            [0, 4, 6], [0, 6, 2],  # -x
            [1, 3, 7], [1, 7, 5],  # +x
            [0, 1, 5], [0, 5, 4],  # -y
            [2, 6, 7], [2, 7, 3],  # +y
            [0, 2, 3], [0, 3, 1],  # -z
            [4, 5, 7], [4, 7, 6],  # +z
        ],
        dtype=torch.int64,
        device=device,
    )
    return vertices, faces


_AXES = {"x": (2, 0, 1), "y": (1, 2, 0), "z": (0, 1, 2)}  # world column c takes local column _AXES[axis][c]


def cylinder(center=(0.0, 0.0, 0.0), radius=0.5, height=1.0, axis: str = "y", segments: int = 16, dtype=None, device=None):
    """A closed cylinder (side and two caps) of counter-clockwise (outward) triangles.

    In a local frame :math:`(u, v, h)` with :math:`h` along ``axis`` the rims are
    :math:`(r\\cos\\theta_k, r\\sin\\theta_k, \\pm h/2)`, :math:`\\theta_k = 2\\pi k / S`; the local
    frame is a cyclic permutation of :math:`(x, y, z)` (a rotation), so winding is preserved.

    Shapes:
        center: (3,); radius, height: scalars
        returns: vertices (2S + 2, 3), faces (4S, 3) int64 with S = ``segments``

    Raises:
        ValueError: unknown ``axis``, ``segments < 3``, or a non-positive radius or height.
    """
    if axis not in _AXES:
        raise ValueError(f"axis: expected one of {sorted(_AXES)}, received {axis!r}")
    if int(segments) < 3:
        raise ValueError(f"segments: expected at least 3, received {segments}")
    if not (float(radius) > 0 and float(height) > 0):
        raise ValueError(f"radius, height: expected positive numbers, received {radius}, {height}")
    dtype = dtype or (center.dtype if isinstance(center, torch.Tensor) and center.is_floating_point() else torch.get_default_dtype())
    device = device or (center.device if isinstance(center, torch.Tensor) else None)
    c = _as_vector(center, "center", dtype, device)
    S = int(segments)
    theta = torch.arange(S, dtype=dtype, device=device) * (2 * math.pi / S)
    u, v = radius * torch.cos(theta), radius * torch.sin(theta)
    h = torch.full_like(theta, height / 2)
    rims = torch.cat([torch.stack([u, v, -h], -1), torch.stack([u, v, h], -1)])  # (2S, 3)
    caps = torch.tensor([[0.0, 0.0, -height / 2], [0.0, 0.0, height / 2]], dtype=dtype, device=device)
    local = torch.cat([rims, caps])  # (2S + 2, 3)
    vertices = local[:, list(_AXES[axis])] + c
    k = torch.arange(S, device=device)
    k1 = (k + 1) % S
    b0, b1, t0, t1 = k, k1, k + S, k1 + S
    cb = torch.full_like(k, 2 * S)
    ct = torch.full_like(k, 2 * S + 1)
    faces = torch.cat(
        [
            torch.stack([b0, b1, t1], -1),  # side, lower triangle
            torch.stack([b0, t1, t0], -1),  # side, upper triangle
            torch.stack([ct, t0, t1], -1),  # top cap (+h)
            torch.stack([cb, b1, b0], -1),  # bottom cap (-h)
        ]
    ).long()
    return vertices, faces


def merge(meshes: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """Concatenate meshes into one, offsetting each mesh's face indices by the vertices before it.

    Shapes:
        meshes: a list of (vertices (V_i, 3), faces (F_i, 3))
        returns: vertices (sum V_i, 3), faces (sum F_i, 3) int64

    Raises:
        ValueError: an empty list or a mesh with wrong shapes.
    """
    if len(meshes) == 0:
        raise ValueError("meshes: expected at least one (vertices, faces) pair, received an empty list")
    vs, fs, offset = [], [], 0
    for i, (v, f) in enumerate(meshes):
        check_shape(v, "V 3", f"meshes[{i}] vertices")
        check_shape(f, "F 3", f"meshes[{i}] faces")
        vs.append(v)
        fs.append(f.long() + offset)
        offset += v.shape[0]
    return torch.cat(vs), torch.cat(fs)


def pad_meshes(meshes: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """Stack meshes of different sizes into one padded batch.

    Padding vertices are zeros; padding face rows are ``-1`` (every function of
    :mod:`lessons.mesh` and :mod:`lessons.render` ignores them).

    Shapes:
        meshes: a list of B pairs (vertices (V_i, 3), faces (F_i, 3))
        returns: vertices (B, Vmax, 3), faces (B, Fmax, 3) int64, num_faces (B,) int64

    Raises:
        ValueError: an empty list or a mesh with wrong shapes.
    """
    if len(meshes) == 0:
        raise ValueError("meshes: expected at least one (vertices, faces) pair, received an empty list")
    for i, (v, f) in enumerate(meshes):
        check_shape(v, "V 3", f"meshes[{i}] vertices")
        check_shape(f, "F 3", f"meshes[{i}] faces")
    v0 = meshes[0][0]
    B = len(meshes)
    Vmax = max(v.shape[0] for v, _ in meshes)
    Fmax = max(f.shape[0] for _, f in meshes)
    vertices = v0.new_zeros(B, Vmax, 3)
    faces = torch.full((B, Fmax, 3), -1, dtype=torch.int64, device=v0.device)
    for b, (v, f) in enumerate(meshes):  # a loop over meshes, not over faces
        vertices[b, : v.shape[0]] = v
        faces[b, : f.shape[0]] = f.long()
    num_faces = torch.tensor([f.shape[0] for _, f in meshes], dtype=torch.int64, device=v0.device)
    return vertices, faces, num_faces


# The six face directions of a voxel: the neighbour offset in (k, j, i) = (z, y, x) and the four
# corners of the shared square as (x, y, z) offsets in {0, 1}, counter-clockwise seen from outside.
_DIRECTIONS = torch.tensor([[0, 0, 1], [0, 0, -1], [0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0]])
_QUADS = torch.tensor(
    [
        [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],  # +x
        [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],  # -x
        [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],  # +y
        [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],  # -y
        [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],  # +z
        [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],  # -z
    ]
)


def _exposed_quads(occupied: torch.Tensor):
    """All exposed voxel faces of a batch of boolean grids, found by comparing with 6 shifts.

    Returns the batch index, the voxel (k, j, i) and the direction (0..5) of each exposed face,
    sorted by batch index.

    Shapes:
        occupied: (B, D, H, W) bool -> batch (Q,), voxel (Q, 3), direction (Q,)
    """
    B, D, H, W = occupied.shape
    padded = torch.nn.functional.pad(occupied, (1, 1, 1, 1, 1, 1))  # (B, D+2, H+2, W+2)
    exposed = []
    for dk, dj, di in _DIRECTIONS.tolist():  # six directions
        neighbour = padded[:, 1 + dk : 1 + dk + D, 1 + dj : 1 + dj + H, 1 + di : 1 + di + W]
        exposed.append(occupied & ~neighbour)
    exposed = torch.stack(exposed, dim=1)  # (B, 6, D, H, W)
    b, d, k, j, i = exposed.nonzero(as_tuple=True)
    return b, torch.stack([k, j, i], dim=-1), d


def _quad_corners(voxel: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Integer lattice corners (x, y, z) of each exposed face, counter-clockwise from outside.

    Shapes:
        voxel: (Q, 3) as (k, j, i); direction: (Q,) -> (Q, 4, 3)
    """
    quads = _QUADS.to(voxel.device)[direction]  # (Q, 4, 3)
    return voxel.flip(-1).unsqueeze(1) + quads  # (k, j, i) -> (x, y, z) = (i, j, k)


def _lattice_to_world(corners: torch.Tensor, shape, dtype) -> torch.Tensor:
    """Integer lattice corner (x, y, z) of a (D, H, W) grid to world coordinates in [-1/2, 1/2]^3."""
    D, H, W = shape
    res = torch.tensor([W, H, D], dtype=dtype, device=corners.device)
    return corners.to(dtype) / res - 0.5


def voxels_to_mesh(occupancy: torch.Tensor, threshold: float = 0.5, return_voxel_index: bool = False):
    """The surface of the occupied voxels: every exposed voxel face as two outward triangles.

    A voxel is occupied when ``occupancy > threshold`` (boolean grids are used as they are). A
    face is exposed when the neighbour across it is empty or outside the grid; comparing the
    grid with its six shifted copies finds all of them at once. Corners shared between faces
    are merged (``torch.unique`` on their integer lattice index), so the mesh is closed: its
    divergence-theorem volume is the number of voxels times the voxel volume.

    World coordinates follow the voxel convention: the grid fills :math:`[-\\tfrac12, \\tfrac12]^3`
    with ``D, H, W`` along ``z, y, x``.

    Shapes:
        occupancy: (D, H, W) bool or float
        returns: vertices (V, 3), faces (F, 3) int64 with F = 2 x (exposed faces); with
        ``return_voxel_index`` also voxel_index (F,) int64, the flat index ``(k*H + j)*W + i``
        of the voxel each triangle belongs to.

    Raises:
        ValueError: ``occupancy`` is not 3-dimensional.
    """
    check_shape(occupancy, "D H W", "occupancy")
    dtype = occupancy.dtype if occupancy.is_floating_point() else torch.get_default_dtype()
    occupied = occupancy if occupancy.dtype == torch.bool else occupancy > threshold
    D, H, W = occupied.shape
    _, voxel, direction = _exposed_quads(occupied.unsqueeze(0))
    corners = _quad_corners(voxel, direction)  # (Q, 4, 3)
    key = (corners[..., 2] * (H + 1) + corners[..., 1]) * (W + 1) + corners[..., 0]  # (Q, 4)
    unique_keys, inverse = torch.unique(key.reshape(-1), return_inverse=True)
    x = unique_keys % (W + 1)
    y = (unique_keys // (W + 1)) % (H + 1)
    z = unique_keys // ((W + 1) * (H + 1))
    vertices = _lattice_to_world(torch.stack([x, y, z], -1), (D, H, W), dtype)
    quad_vertex = inverse.reshape(-1, 4)  # (Q, 4)
    faces = torch.stack([quad_vertex[:, [0, 1, 2]], quad_vertex[:, [0, 2, 3]]], dim=1).reshape(-1, 3)  # (2Q, 3)
    if not return_voxel_index:
        return vertices, faces
    flat = (voxel[:, 0] * H + voxel[:, 1]) * W + voxel[:, 2]
    return vertices, faces, flat.repeat_interleave(2)


def voxels_to_padded_meshes(occupancy: torch.Tensor, threshold: float = 0.5, dtype=None):
    """The surfaces of a batch of voxel grids as one padded mesh batch (for rendering).

    Like :func:`voxels_to_mesh`, for a whole batch at once and without merging shared corners:
    each exposed face gets its own 4 corners and 2 triangles. Batch elements with fewer faces
    are padded with zero vertices and ``-1`` face rows.

    Shapes:
        occupancy: (B, D, H, W) bool or float
        returns: vertices (B, 4 Qmax, 3), faces (B, 2 Qmax, 3) int64, voxel_index (B, 2 Qmax)
        int64 (flat voxel index ``(k*H + j)*W + i`` of each triangle, ``-1`` on padding), where
        Qmax is the largest number of exposed faces in the batch.

    Raises:
        ValueError: ``occupancy`` is not 4-dimensional.
    """
    check_shape(occupancy, "B D H W", "occupancy")
    if dtype is None:
        dtype = occupancy.dtype if occupancy.is_floating_point() else torch.get_default_dtype()
    occupied = occupancy if occupancy.dtype == torch.bool else occupancy > threshold
    B, D, H, W = occupied.shape
    device = occupied.device
    batch, voxel, direction = _exposed_quads(occupied)  # sorted by batch
    counts = torch.bincount(batch, minlength=B)  # (B,)
    Qmax = int(counts.max()) if B > 0 else 0
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(batch.numel(), device=device) - first[batch]  # position within its mesh
    corners = _lattice_to_world(_quad_corners(voxel, direction), (D, H, W), dtype)  # (Q, 4, 3)
    vertices = torch.zeros(B, Qmax, 4, 3, dtype=dtype, device=device)
    vertices[batch, slot] = corners
    local = torch.tensor([[0, 1, 2], [0, 2, 3]], device=device)  # two triangles of a quad
    quad_faces = 4 * torch.arange(Qmax, device=device).reshape(-1, 1, 1) + local  # (Qmax, 2, 3)
    faces = quad_faces.unsqueeze(0).expand(B, -1, -1, -1).clone()
    used = torch.arange(Qmax, device=device) < counts.unsqueeze(1)  # (B, Qmax)
    faces[~used] = -1
    flat = (voxel[:, 0] * H + voxel[:, 1]) * W + voxel[:, 2]
    voxel_index = torch.full((B, Qmax), -1, dtype=torch.int64, device=device)
    voxel_index[batch, slot] = flat
    return (
        vertices.reshape(B, 4 * Qmax, 3),
        faces.reshape(B, 2 * Qmax, 3),
        voxel_index.repeat_interleave(2, dim=1),
    )
