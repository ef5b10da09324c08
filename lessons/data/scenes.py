"""Procedural multi-view scenes for view synthesis: textured rooms with furniture, seen by a camera rig.

DeepStereo (Flynn et al., CVPR 2016) learns to render a new view of a scene from a handful of
nearby posed photographs. Offline, we build the scenes ourselves. Each scene is a **room**: a
textured floor, ceiling, back wall and two side walls, with three to six pieces of procedural
furniture (:mod:`lessons.data.shapes`) standing on the floor at depths from about 1.5 to 6 units.
A **rig** of cameras looks into the room: a target (reference) camera and ``n_inputs`` input
cameras around it, offset in the target's image plane by a baseline ``b``::

    input 1 (-b, -b/2)        input 2 (+b, -b/2)
                    target (0, 0)
    input 3 (-b, +b/2)        input 4 (+b, +b/2)

so the target always lies between the inputs (its centre is the mean of theirs). Each input is
turned by a small random yaw and pitch, so the rig is not exactly rectified.

Appearance. A flat colour would hide mistakes (any depth gives the same colour), so every surface
is textured, and the texture is a function of the 3D point, the same seen from every camera:

* the five room planes each carry a 2D pattern from :mod:`lessons.data.textures` (value noise,
  stripes, checkerboard or blobs), tiled on the plane with mirrored repeats;
* furniture carries a **solid texture** (:func:`lessons.data.textures.noise_volume`), sampled at
  the world point with mirrored repeats, between two colours per part.

Shading is Lambertian with two point lights fixed in the world and an ambient term (no head
light), so a surface point has the same colour in every view, as the plane sweep assumes. Each
view is rendered by :func:`lessons.render.render_mesh` with a white albedo (the shading) at
``supersample`` times the resolution; the texture multiplies the shading per sample (Lambertian
shading is linear in the albedo), and ``s x s`` blocks are averaged (anti-aliasing). The depth
returned is the camera ``z`` of the middle sample of each block; the room is closed, so every
pixel has a depth.

Splits: a scene's random numbers come from its seed, and ``"train"`` / ``"test"`` scenes use
disjoint seeds and furniture from the matching :func:`lessons.data.shapes.shape_seeds` split, so
the test scenes are held out (new rooms, new textures, new furniture).

Public API: :class:`Scene`, :class:`SceneViews`, :func:`make_scene`, :func:`rig_cameras`,
:func:`render_views`, :func:`make_scenes`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lessons import geometry, render
from lessons.checks import check_floating, check_shape
from lessons.data import shapes, textures

__all__ = ["Scene", "SceneViews", "make_scene", "rig_cameras", "render_views", "make_scenes"]

SPLIT_OFFSET = {"train": 0, "test": 1_000_003}  # scene seeds: index + offset (disjoint ranges)
_PLANES = ("floor", "ceiling", "back", "left", "right")
_PLANE_KINDS = ("noise", "stripes", "checkerboard", "blobs")
_MAKERS = {"noise": textures.noise_texture, "stripes": textures.stripes,
           "checkerboard": textures.checkerboard, "blobs": textures.blobs}


@dataclass
class Scene:
    """One room: its mesh, which surface each face belongs to, and the textures of the surfaces.

    Surfaces ``0..4`` are the room planes (floor, ceiling, back, left, right wall); surfaces
    ``5..`` are the furniture. A plane's texture coordinates are ``uv = mirror(M X + o)``
    (``mirror`` folds every real number into ``[0, 1]`` with mirrored repeats); the furniture's
    solid texture is sampled at ``mirror(X / period + offset)``.

    Shapes:
        vertices (V, 3); faces (F, 3) int64; face_surface (F,) int64;
        face_colors (F, 2, 3): the two colours a furniture face blends between (unused for planes);
        plane_textures (5, 3, T, T); plane_maps (5, 2, 3); plane_offsets (5, 2);
        solid (1, 1, G, G, G); solid_period () ; solid_offsets (S, 3);
        lights: render.PointLights with one set; room (4,) = (half width, back z, ceiling y, front z)
    """

    seed: int
    vertices: torch.Tensor
    faces: torch.Tensor
    face_surface: torch.Tensor
    face_colors: torch.Tensor
    plane_textures: torch.Tensor
    plane_maps: torch.Tensor
    plane_offsets: torch.Tensor
    solid: torch.Tensor
    solid_period: float
    solid_offsets: torch.Tensor
    lights: render.PointLights
    room: tuple
    categories: list


@dataclass
class SceneViews:
    """Rendered views of a batch of scenes; view 0 is the target, views ``1..V`` the inputs.

    Shapes:
        images (N, 1+V, 3, H, W) in [0, 1]; depth (N, 1+V, 1, H, W) camera ``z`` (> 0);
        K, R (N, 1+V, 3, 3); t (N, 1+V, 3) (``cam_from_world``)
    """

    images: torch.Tensor
    depth: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor

    @property
    def target(self) -> torch.Tensor:
        """The target images ``(N, 3, H, W)``."""
        return self.images[:, 0]

    @property
    def target_depth(self) -> torch.Tensor:
        """The true depth of the target views ``(N, 1, H, W)``."""
        return self.depth[:, 0]

    @property
    def inputs(self) -> torch.Tensor:
        """The input images ``(N, V, 3, H, W)``."""
        return self.images[:, 1:]

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device=None, dtype=None) -> "SceneViews":
        """The same views on another device / dtype."""
        return SceneViews(*(x.to(device=device, dtype=dtype) for x in (self.images, self.depth, self.K, self.R, self.t)))

    def subset(self, index) -> "SceneViews":
        """The scenes picked by ``index`` (an int tensor, slice or list)."""
        return SceneViews(*(x[index] for x in (self.images, self.depth, self.K, self.R, self.t)))


# ----------------------------------------------------------------------------------------------
# Building a scene
# ----------------------------------------------------------------------------------------------


def _u(gen, low=0.0, high=1.0) -> float:
    return float(low + (high - low) * torch.rand((), generator=gen, dtype=torch.float64))


def _grid_plane(origin, axis_u, axis_v, n: int):
    """A planar quad ``origin + a axis_u + b axis_v`` (a, b in [0, 1]) split into ``n x n`` cells."""
    s = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    a, b = torch.meshgrid(s, s, indexing="ij")
    verts = origin + a.reshape(-1, 1) * axis_u + b.reshape(-1, 1) * axis_v  # ((n+1)^2, 3)
    i = torch.arange(n)
    i0, j0 = torch.meshgrid(i, i, indexing="ij")
    v00 = (i0 * (n + 1) + j0).reshape(-1)
    v10, v01, v11 = v00 + (n + 1), v00 + 1, v00 + n + 2
    faces = torch.cat([torch.stack([v00, v10, v11], -1), torch.stack([v00, v11, v01], -1)])
    return verts, faces


@functools.lru_cache(maxsize=None)
def _seed_pool(category: str, split: str, n: int = 40) -> tuple:
    return tuple(shapes.shape_seeds(category, "test" if split == "test" else "train", n))


@functools.lru_cache(maxsize=256)
def _shape(category: str, seed: int):
    return shapes.random_shape(category, seed)


def make_scene(seed: int, split: str = "train", texture_size: int = 96, solid_size: int = 32, plane_cells: int = 8) -> Scene:
    """Build the room of scene ``seed`` of ``split`` (the same arguments always give the same room).

    The room spans ``x in [-w, w]`` (``w`` in 1.5-2.2), floor ``y = 0``, ceiling ``y = h``
    (2.2-2.8), back wall ``z = -z_b`` (``z_b`` in 4.5-6.5) and extends to ``z = 0.6`` behind the
    rig (which stands near ``z = 0``). Three to six pieces of furniture, scaled by 0.8-1.6 and
    turned about ``+y``, stand on the floor at ``z`` in ``[-z_b + 0.6, -1.4]``.

    Shapes:
        returns a :class:`Scene`

    Raises:
        ValueError: a negative ``seed``, an unknown ``split`` or non-positive sizes.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, received {seed!r}")
    if split not in SPLIT_OFFSET:
        raise ValueError(f"split: expected one of {tuple(SPLIT_OFFSET)}, received {split!r}")
    for name, v in (("texture_size", texture_size), ("solid_size", solid_size), ("plane_cells", plane_cells)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, received {v!r}")
    gen = torch.Generator().manual_seed(seed + SPLIT_OFFSET[split])
    w, h, zb, zf = _u(gen, 1.5, 2.2), _u(gen, 2.2, 2.8), _u(gen, 4.5, 6.5), 0.6
    T = torch.tensor
    d = torch.float64
    # the five room planes: origin, the two edge vectors (which are also the texture axes)
    planes = [
        (T([-w, 0.0, zf], dtype=d), T([2 * w, 0, 0], dtype=d), T([0, 0, -zb - zf], dtype=d)),  # floor
        (T([-w, h, zf], dtype=d), T([0, 0, -zb - zf], dtype=d), T([2 * w, 0, 0], dtype=d)),  # ceiling
        (T([-w, 0.0, -zb], dtype=d), T([2 * w, 0, 0], dtype=d), T([0, h, 0], dtype=d)),  # back
        (T([-w, 0.0, zf], dtype=d), T([0, 0, -zb - zf], dtype=d), T([0, h, 0], dtype=d)),  # left
        (T([w, 0.0, zf], dtype=d), T([0, h, 0], dtype=d), T([0, 0, -zb - zf], dtype=d)),  # right
    ]
    meshes, surface = [], []
    plane_maps, plane_offsets = [], []
    for s, (o, a, b) in enumerate(planes):
        v, f = _grid_plane(o, a, b, plane_cells)
        meshes.append((v, f))
        surface.append(torch.full((f.shape[0],), s, dtype=torch.int64))
        period = _u(gen, 0.8, 2.0)  # world units per texture tile
        M = torch.stack([a / a.norm(), b / b.norm()]) / period  # (2, 3)
        plane_maps.append(M)
        plane_offsets.append(-(M @ o) + torch.rand(2, generator=gen, dtype=d))
    kinds = torch.randint(len(_PLANE_KINDS), (len(planes),), generator=gen).tolist()
    plane_textures = torch.cat([_MAKERS[_PLANE_KINDS[k]](1, texture_size, texture_size, gen) for k in kinds])
    # furniture on the floor
    n_obj = int(torch.randint(3, 7, (), generator=gen))
    face_colors = [textures.random_palette(1, gen).expand(f.shape[0], 3)[:, None].expand(-1, 2, 3) for _, f in meshes]
    categories = []
    for k in range(n_obj):  # a handful of objects
        cat = shapes.CATEGORIES[int(torch.randint(len(shapes.CATEGORIES), (), generator=gen))]
        pool = _seed_pool(cat, split)
        shp = _shape(cat, pool[int(torch.randint(len(pool), (), generator=gen))])
        categories.append(cat)
        scale = _u(gen, 0.8, 1.6)
        yaw = _u(gen, -math.pi, math.pi)
        v = shp.vertices.double() * scale
        v = v @ geometry.rotation_y(torch.tensor(yaw, dtype=d)).T
        lo, hi = v.amin(0), v.amax(0)
        x = _u(gen, -w + 0.1 + float(hi[0]), w - 0.1 + float(lo[0])) if float(hi[0] - lo[0]) < 2 * w - 0.3 else 0.0
        z = _u(gen, -zb + 0.1 + float(hi[2]) + 0.5, -1.4)
        v = v + torch.stack([torch.tensor(x, dtype=d), -lo[1], torch.tensor(z, dtype=d)])
        meshes.append((v, shp.faces))
        surface.append(torch.full((shp.faces.shape[0],), len(planes) + k, dtype=torch.int64))
        n_parts = len(shp.part_names)
        pal = textures.random_palette(2 * n_parts, gen).view(n_parts, 2, 3)
        pal[:, 1] = pal[:, 1] * 0.35  # one light, one dark colour per part: clear texture contrast
        face_colors.append(pal[shp.face_part])
    vertices = torch.cat([m[0] for m in meshes]).float()
    offsets = torch.cumsum(torch.tensor([0] + [m[0].shape[0] for m in meshes[:-1]]), 0)
    faces = torch.cat([m[1] + o for m, o in zip(meshes, offsets)])
    solid = textures.noise_volume(1, solid_size, gen, octaves=3, base_cells=4)
    S = len(planes) + n_obj
    # lights: two in the upper front of the room, plus ambient (their sum stays below 1)
    pos = torch.tensor([[_u(gen, -w, 0), h - 0.2, _u(gen, -2.5, -0.5)], [_u(gen, 0, w), h - 0.2, _u(gen, -zb + 0.5, -2.0)]])
    lights = render.PointLights(pos[None], torch.tensor([[[0.4] * 3, [0.25] * 3]]), torch.tensor([[0.35] * 3]))
    return Scene(
        seed=seed,
        vertices=vertices,
        faces=faces,
        face_surface=torch.cat(surface),
        face_colors=torch.cat(face_colors).float(),
        plane_textures=plane_textures,
        plane_maps=torch.stack(plane_maps).float(),
        plane_offsets=torch.stack(plane_offsets).float(),
        solid=solid,
        solid_period=_u(gen, 0.5, 0.9),
        solid_offsets=torch.rand(S, 3, generator=gen),
        lights=lights,
        room=(w, -zb, h, zf),
        categories=categories,
    )


# ----------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------


def rig_cameras(n: int, image_size: int, n_inputs: int = 4, baseline: float = 0.35, fov_deg: float = 60.0,
                generator: torch.Generator | None = None, jitter_deg: float = 2.0):
    """``n`` random rigs: a target camera and ``n_inputs`` input cameras around it.

    The target stands at ``(x, y, 0)`` (``x`` in +-0.3, ``y`` in 0.8-1.2) and looks into the room
    (``-z``) with a yaw of +-12 degrees and a pitch of 4-12 degrees down (built by
    :func:`lessons.geometry.look_at`). Input ``k`` sits at ``C_target + b_k (a_k x_cam + c_k y_cam)``
    with ``(a_k, c_k)`` on the corners of a ``2 x 1`` rectangle (``n_inputs = 4``) or evenly on
    an ellipse (other counts), ``b_k = baseline`` times 0.8-1.2, and shares the target's rotation
    up to a random yaw and pitch of at most ``jitter_deg``. So the target centre is the mean of
    the input centres (exactly, for ``n_inputs = 4``). All cameras share ``K`` (``fov_deg``
    horizontal field of view, centred principal point).

    Shapes:
        returns K (n, 1+V, 3, 3), R (n, 1+V, 3, 3), t (n, 1+V, 3); view 0 is the target

    Raises:
        ValueError: non-positive ``n``, ``image_size`` or ``n_inputs``.
    """
    for name, v in (("n", n), ("image_size", image_size), ("n_inputs", n_inputs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, received {v!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    r = torch.rand(n, 6, generator=gen, dtype=torch.float64)
    eye = torch.stack([0.6 * r[:, 0] - 0.3, 0.8 + 0.4 * r[:, 1], torch.zeros(n, dtype=torch.float64)], -1)
    yaw = torch.deg2rad(24 * r[:, 2] - 12)
    pitch = torch.deg2rad(4 + 8 * r[:, 3])
    look = torch.stack([-torch.sin(yaw) * torch.cos(pitch), -torch.sin(pitch), -torch.cos(yaw) * torch.cos(pitch)], -1)
    R0, t0 = geometry.look_at(eye, eye + look)  # (n, 3, 3), (n, 3)
    V = n_inputs
    if V == 4:
        ac = torch.tensor([[-1.0, -0.5], [1.0, -0.5], [-1.0, 0.5], [1.0, 0.5]], dtype=torch.float64)
    else:
        ang = 2 * math.pi * torch.arange(V, dtype=torch.float64) / V
        ac = torch.stack([torch.cos(ang), 0.5 * torch.sin(ang)], -1)
    b = baseline * (0.8 + 0.4 * r[:, 4])  # (n,)
    axes = R0[:, :2, :]  # rows: camera x and y axes in world coordinates, (n, 2, 3)
    centres = eye[:, None] + b[:, None, None] * (ac[None] @ axes)  # (n, V, 3)
    jit = torch.deg2rad(jitter_deg * (2 * torch.rand(n, V, 2, generator=gen, dtype=torch.float64) - 1))
    # turn each input by a small yaw (about camera y) and pitch (about camera x), in camera coordinates
    Rj = geometry.rotation_y(jit[..., 0]) @ geometry.rotation_x(jit[..., 1])  # (n, V, 3, 3)
    R_in = Rj @ R0[:, None]
    t_in = -(R_in @ centres[..., None])[..., 0]
    R = torch.cat([R0[:, None], R_in], 1).float()
    t = torch.cat([t0[:, None], t_in], 1).float()
    focal = geometry.focal_from_fov(math.radians(fov_deg), image_size)
    K = geometry.intrinsics(float(focal), image_size, image_size).expand(n, V + 1, 3, 3).contiguous()
    return K, R, t


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


def _mirror(x: torch.Tensor) -> torch.Tensor:
    """Fold every real number into [0, 1] with mirrored repeats: 0 -> 0, 1 -> 1, 2 -> 0, ..."""
    return 1 - (torch.remainder(x, 2.0) - 1).abs()


def _albedo(scene: Scene, points: torch.Tensor, face_index: torch.Tensor) -> torch.Tensor:
    """The textured albedo at world points on known faces.

    Shapes:
        points (B, N, 3); face_index (B, N) (-1: nothing) -> (B, N, 3)
    """
    B, N, _ = points.shape
    dev, dt = points.device, points.dtype
    fi = face_index.clamp_min(0)
    surf = scene.face_surface.to(dev)[fi]  # (B, N)
    is_plane = surf < len(_PLANES)
    # planes: uv = mirror(M X + o), sampled from the stack of plane textures at slice `surf`
    ps = surf.clamp(max=len(_PLANES) - 1)
    M, o = scene.plane_maps.to(dev, dt)[ps], scene.plane_offsets.to(dev, dt)[ps]  # (B, N, 2, 3), (B, N, 2)
    uv = _mirror((M @ points[..., None])[..., 0] + o)  # (B, N, 2)
    P = len(_PLANES)
    slice_z = (2 * ps.to(dt) + 1) / P - 1  # normalised coordinate of the centre of slice ps
    grid = torch.cat([2 * uv - 1, slice_z[..., None]], -1).reshape(1, 1, B, N, 3)
    tex = scene.plane_textures.to(dev, dt).permute(1, 0, 2, 3)[None]  # (1, 3, P, T, T)
    plane_rgb = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)  # (1, 3, 1, B, N)
    plane_rgb = plane_rgb[0, :, 0].permute(1, 2, 0)  # (B, N, 3)
    # furniture: a solid texture n in [0, 1] blends the face's two colours
    q = _mirror(points / scene.solid_period + scene.solid_offsets.to(dev, dt)[surf])
    n = F.grid_sample(scene.solid.to(dev, dt), (2 * q - 1).reshape(1, 1, B, N, 3), mode="bilinear",
                      padding_mode="border", align_corners=False)  # (1, 1, 1, B, N)
    n = n.reshape(B, N, 1)
    c = scene.face_colors.to(dev, dt)[fi]  # (B, N, 2, 3)
    solid_rgb = (1 - n) * c[..., 0, :] + n * c[..., 1, :]
    out = torch.where(is_plane[..., None], plane_rgb, solid_rgb)
    return torch.where((face_index >= 0)[..., None], out, torch.zeros_like(out))


def render_views(scene: Scene, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: int, supersample: int = 2):
    """Render ``scene`` from ``B`` cameras: textured colour and depth.

    Per sample (``supersample^2`` per pixel): rasterize (:func:`lessons.render.render_mesh`, white
    albedo, the scene's lights), unproject the depth to the world point ``X``, multiply the
    shading by the texture's albedo at ``X``; then average each ``s x s`` block. Depth is that of
    sample ``(s//2, s//2)`` of the block.

    Shapes:
        K, R: (B, 3, 3); t: (B, 3) -> images (B, 3, H, W), depth (B, 1, H, W), ``H = W = image_size``

    Raises:
        ValueError: wrong shapes, ``supersample < 1``.
    """
    dims = check_shape(K, "B 3 3", "K")
    check_shape(R, "B 3 3", "R", dims)
    check_shape(t, "B 3", "t", dims)
    for x, n in ((K, "K"), (R, "R"), (t, "t")):
        check_floating(x, n)
    if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
        raise ValueError(f"supersample: expected a positive int, received {supersample!r}")
    B, dev, dt = K.shape[0], K.device, K.dtype
    s = supersample
    Hs = s * image_size
    Ks = torch.tensor([s, s, 1.0], dtype=dt, device=dev)[:, None] * K  # sub-pixel centres sit evenly in each pixel
    verts = scene.vertices.to(dev, dt).expand(B, -1, -1)
    faces = scene.faces.to(dev)
    white = torch.ones(B, faces.shape[0], 3, dtype=dt, device=dev)
    lights = scene.lights.to(dev, dt)
    out = render.render_mesh(verts, faces, Ks, R, t, Hs, Hs, face_colors=white, lights=lights)
    pix = geometry.pixel_grid(Hs, Hs, device=dev, dtype=dt).reshape(1, -1, 2).expand(B, -1, -1)
    depth = out.depth.reshape(B, -1)
    X = geometry.unproject(pix, depth, Ks, R, t)  # (B, Hs*Hs, 3)
    albedo = _albedo(scene, X, out.face_index.reshape(B, -1))  # (B, Hs*Hs, 3)
    rgb = out.rgb * albedo.transpose(1, 2).reshape(B, 3, Hs, Hs)
    if s > 1:
        rgb = F.avg_pool2d(rgb, s)  # (B, 3, H, W)
    depth = out.depth[:, :, s // 2 :: s, s // 2 :: s]  # (B, 1, H, W)
    return rgb.clamp(0, 1), depth


def make_scenes(n: int, split: str = "train", image_size: int = 64, n_inputs: int = 4, baseline: float = 0.35,
                fov_deg: float = 60.0, supersample: int = 2, start: int = 0, device=None, progress: bool = False) -> SceneViews:
    """Scenes ``start .. start + n - 1`` of ``split``, each rendered from its own random rig.

    Scene ``i`` uses the room :func:`make_scene` ``(i, split)`` and the rig drawn with the same
    seed, so a scene's views never depend on ``n`` or on the other scenes.

    Shapes:
        returns :class:`SceneViews` with images (n, 1+V, 3, H, W), depth (n, 1+V, 1, H, W),
        K, R (n, 1+V, 3, 3), t (n, 1+V, 3)

    Raises:
        ValueError: non-positive sizes, unknown ``split``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, received {n!r}")
    if split not in SPLIT_OFFSET:
        raise ValueError(f"split: expected one of {tuple(SPLIT_OFFSET)}, received {split!r}")
    from tqdm.auto import tqdm

    images, depths, Ks, Rs, ts = [], [], [], [], []
    for i in tqdm(range(start, start + n), desc=f"render {split} scenes", disable=not progress):  # one scene at a time
        scene = make_scene(i, split)
        gen = torch.Generator().manual_seed(7919 * i + SPLIT_OFFSET[split])
        K, R, t = rig_cameras(1, image_size, n_inputs, baseline, fov_deg, generator=gen)
        K, R, t = (x[0].to(device) for x in (K, R, t))
        rgb, depth = render_views(scene, K, R, t, image_size, supersample)
        images.append(rgb)
        depths.append(depth)
        Ks.append(K)
        Rs.append(R)
        ts.append(t)
    return SceneViews(torch.stack(images), torch.stack(depths), torch.stack(Ks), torch.stack(Rs), torch.stack(ts))
