"""Synthetic training images with exact labels: the Render for CNN pipeline, offline.

Render for CNN (Su et al., ICCV 2015) trained a viewpoint network on millions of renders of
ShapeNet models: random viewpoints drawn from the viewpoint statistics of real photographs,
random lights, random backgrounds, random crops that cut the object (truncation). The same
pipeline, step by step, each step a function a notebook can call on its own:

1. **shape -> tensors** (:func:`shape_tensors`): one padded batch of meshes
   (:func:`lessons.mesh.pad_meshes`), per-part colours, keypoints;
2. **viewpoint -> camera** (:class:`ViewpointPrior`, :func:`cameras`):
   ``(R, t) = camera_from_viewpoint(azimuth, elevation, inplane, distance)``, ``K`` with focal
   ``f`` (pixels) and the principal point at the image centre;
3. **truncation** (:func:`truncate`): a square crop box around the object's projected
   bounding box, enlarged by a random margin and shifted by up to ``truncation`` times its side,
   so part of the object may fall outside. The crop is **not** done on pixels: it is folded into
   the intrinsics, ``K' = A K`` with ``A = [[S/L, 0, -x_0 S/L], [0, S/L, -y_0 S/L], [0, 0, 1]]``
   for the box ``[x_0, x_0 + L] x [y_0, y_0 + L]`` and an ``S x S`` output, so rendering with
   ``K'`` gives the cropped-and-resized image exactly and every label stays exact. ``R`` and
   the viewpoint label do not change;
4. **lights** (:func:`random_lights`): 0 to 6 point lights at random positions around the
   object (distance 2.5-4, elevation -10 to 80 degrees), random tints and intensities, plus an
   ambient term (Lambertian shading, :func:`lessons.render.shade_lambertian`);
5. **render** (:func:`lessons.render.render_mesh`, one batched call): straight colour ``I_fg``,
   alpha ``a`` (anti-aliased coverage), depth, normals, face ids; optionally a solid noise
   texture modulates the albedo (:func:`apply_solid_texture`);
6. **composite** over a procedural background (:mod:`lessons.data.textures`):
   ``I = a I_fg + (1 - a) I_bg`` (:func:`lessons.render.composite`);
7. **labels** (:func:`keypoint_labels`): the 3D keypoints projected with the final ``K', R, t``;
   a keypoint is *visible* when it projects inside the image, in front of the camera, and is not
   hidden: some pixel of its 3x3 neighbourhood shows a surface at depth
   ``>= z_keypoint - tolerance`` (so a visible keypoint is always on the mask, within a pixel).

The viewpoint prior is **not uniform**, like photographs: azimuth is a mixture of von Mises
distributions peaking at the front (0) and the two three-quarter views (+-45 degrees) with a
uniform tail (30 %); elevation a normal N(15, 10) degrees truncated to [-10, 60]; in-plane
rotation N(0, 5) degrees truncated to +-15; distance uniform in [2.2, 3.2] (object units: the
shape's longest side is 0.9). ``mode="uniform"`` draws every angle uniformly in its range.

Everything random comes from one CPU ``torch.Generator``, so :func:`make_render_set` is
deterministic given its seed (and batch size); rendering runs on ``device``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lessons import geometry, mesh, render
from lessons.checks import check_shape, check_floating
from lessons.data import shapes as shapes_mod
from lessons.data import textures

__all__ = [
    "ViewpointPrior",
    "DEFAULT_FOCAL",
    "DEFAULT_FIELDS",
    "shape_tensors",
    "cameras",
    "crop_intrinsics",
    "truncate",
    "random_lights",
    "apply_solid_texture",
    "keypoint_labels",
    "render_shapes",
    "make_render_set",
    "RenderDataset",
]

DEFAULT_FOCAL = 1.5  # focal length in units of the image size: f = 1.5 S pixels (fov 37 degrees)
_DEG = math.pi / 180.0


# ----------------------------------------------------------------------------------------------
# Viewpoints
# ----------------------------------------------------------------------------------------------


def _von_mises(mu: torch.Tensor, kappa: torch.Tensor, generator) -> torch.Tensor:
    """Samples of von Mises(mu, kappa), one per entry, by Best and Fisher's rejection method.

    ``tau = 1 + sqrt(1 + 4 k^2)``, ``rho = (tau - sqrt(2 tau)) / (2 k)``, ``r = (1 + rho^2) / (2 rho)``;
    draw ``z = cos(pi u1)``, ``f = (1 + r z) / (r + z)``, ``c = k (r - f)``; accept when
    ``c (2 - c) > u2`` or ``log(c / u2) + 1 >= c``; then ``theta = mu + sign(u3 - 1/2) acos(f)``.
    The loop runs over rounds of rejection (acceptance > 65 %), not over samples.
    """
    n = mu.shape[0]
    kappa = kappa.clamp_min(1e-6)
    tau = 1 + torch.sqrt(1 + 4 * kappa**2)
    rho = (tau - torch.sqrt(2 * tau)) / (2 * kappa)
    r = (1 + rho**2) / (2 * rho)
    out = torch.zeros(n, dtype=torch.float64)
    todo = torch.ones(n, dtype=torch.bool)
    while bool(todo.any()):
        idx = todo.nonzero().squeeze(1)
        u = torch.rand(idx.numel(), 3, generator=generator, dtype=torch.float64)
        z = torch.cos(math.pi * u[:, 0])
        f = (1 + r[idx] * z) / (r[idx] + z)
        c = kappa[idx] * (r[idx] - f)
        u2 = u[:, 1].clamp_min(1e-300)
        ok = (c * (2 - c) > u2) | (torch.log(c.clamp_min(1e-300) / u2) + 1 >= c)
        theta = torch.sign(u[:, 2] - 0.5) * torch.acos(f.clamp(-1, 1))
        out[idx[ok]] = theta[ok]
        todo[idx[ok]] = False
    return mu + out


def _truncated_normal(n, mean, std, low, high, generator) -> torch.Tensor:
    """N(mean, std) restricted to [low, high], by inverting the CDF (no clipping spikes)."""
    a = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    u = a + (b - a) * torch.rand(n, generator=generator, dtype=torch.float64)
    return mean + std * torch.special.ndtri(u.clamp(1e-12, 1 - 1e-12))


def _wrap(a: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to (-pi, pi]."""
    return math.pi - torch.remainder(math.pi - a, 2 * math.pi)


@dataclass
class ViewpointPrior:
    """A distribution of viewpoints ``(azimuth, elevation, inplane, distance)``, radians.

    ``mode="photo"``: azimuth from the mixture
    ``p(az) = w_u / (2 pi) + sum_k w_k VonMises(az; mu_k, kappa_k)`` (``azimuth_modes`` holds
    ``(mu_k, kappa_k, w_k)``, ``azimuth_uniform`` is ``w_u``; the weights are normalised),
    elevation ``N(elevation_mean, elevation_std)`` truncated to ``elevation_range``, in-plane
    ``N(0, inplane_std)`` truncated to ``+-inplane_max``. ``mode="uniform"``: azimuth uniform on
    the circle, elevation uniform in ``elevation_range``, in-plane uniform in ``+-inplane_max``.
    Distance is uniform in ``distance_range`` in both modes.

    Shapes:
        :meth:`sample` returns a dict of four (n,) tensors.

    Raises:
        ValueError: an unknown ``mode``, negative weights, or an empty range.
    """

    mode: str = "photo"
    azimuth_modes: tuple = ((0.0, 4.0, 0.40), (45 * _DEG, 8.0, 0.15), (-45 * _DEG, 8.0, 0.15))
    azimuth_uniform: float = 0.30
    elevation_mean: float = 15 * _DEG
    elevation_std: float = 10 * _DEG
    elevation_range: tuple = (-10 * _DEG, 60 * _DEG)
    inplane_std: float = 5 * _DEG
    inplane_max: float = 15 * _DEG
    distance_range: tuple = (2.2, 3.2)

    def __post_init__(self):
        if self.mode not in ("photo", "uniform"):
            raise ValueError(f"mode: expected 'photo' or 'uniform', received {self.mode!r}")
        weights = [m[2] for m in self.azimuth_modes] + [self.azimuth_uniform]
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"azimuth weights: expected non-negative with a positive sum, received {weights}")
        for name in ("elevation_range", "distance_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name}: expected low <= high, received {(lo, hi)}")
        if self.distance_range[0] <= 0:
            raise ValueError(f"distance_range: expected positive distances, received {self.distance_range}")

    def _weights(self) -> torch.Tensor:
        w = torch.tensor([m[2] for m in self.azimuth_modes] + [self.azimuth_uniform], dtype=torch.float64)
        return w / w.sum()

    def sample(self, n: int, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> dict:
        """Draw ``n`` viewpoints.

        Shapes:
            returns {"azimuth", "elevation", "inplane", "distance"}: each (n,), radians / object units;
            azimuth in (-pi, pi].

        Raises:
            ValueError: ``n`` negative.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: expected a non-negative int, received {n!r}")
        g = generator
        d0, d1 = self.distance_range
        e0, e1 = self.elevation_range
        if self.mode == "uniform":
            u = torch.rand(n, 4, generator=g, dtype=torch.float64)
            az = _wrap(math.pi * (2 * u[:, 0] - 1))
            el = e0 + (e1 - e0) * u[:, 1]
            psi = self.inplane_max * (2 * u[:, 2] - 1)
            dist = d0 + (d1 - d0) * u[:, 3]
        else:
            comp = torch.multinomial(self._weights(), n, replacement=True, generator=g) if n else torch.zeros(0, dtype=torch.long)
            modes = torch.tensor([m[:2] for m in self.azimuth_modes] + [(0.0, 0.0)], dtype=torch.float64)  # (M + 1, 2)
            uniform = comp == len(self.azimuth_modes)
            vm = _von_mises(modes[comp, 0], modes[comp, 1], g)
            flat = math.pi * (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1)
            az = _wrap(torch.where(uniform, flat, vm))
            el = _truncated_normal(n, self.elevation_mean, self.elevation_std, e0, e1, g)
            psi = _truncated_normal(n, 0.0, max(self.inplane_std, 1e-9), -self.inplane_max, self.inplane_max, g)
            dist = d0 + (d1 - d0) * torch.rand(n, generator=g, dtype=torch.float64)
        out = {"azimuth": az, "elevation": el, "inplane": psi, "distance": dist}
        return {k: v.to(device=device, dtype=dtype) for k, v in out.items()}

    def azimuth_density(self, azimuth: torch.Tensor) -> torch.Tensor:
        """The prior's density of the azimuth (per radian), for plots.

        ``mode="photo"``: ``w_u / (2 pi) + sum_k w_k exp(kappa_k cos(az - mu_k)) / (2 pi I_0(kappa_k))``.

        Shapes:
            azimuth: (...) -> (...)

        Raises:
            ValueError: ``azimuth`` is not a floating tensor.
        """
        check_floating(azimuth, "azimuth")
        if self.mode == "uniform":
            return torch.full_like(azimuth, 1 / (2 * math.pi))
        w = self._weights().to(azimuth)
        p = w[-1] / (2 * math.pi) * torch.ones_like(azimuth)
        for (mu, kappa, _), wk in zip(self.azimuth_modes, w[:-1]):
            k = torch.tensor(kappa, dtype=azimuth.dtype, device=azimuth.device)
            p = p + wk * torch.exp(kappa * (torch.cos(azimuth - mu) - 1)) / (2 * math.pi * torch.special.i0e(k))
        return p


# ----------------------------------------------------------------------------------------------
# Steps of the pipeline
# ----------------------------------------------------------------------------------------------


def _part_palette(shapes_list, part_colors, generator, device, dtype) -> torch.Tensor:
    """Per-part colours (B, Pmax, 3)."""
    B = len(shapes_list)
    P = max(len(s.part_names) for s in shapes_list)
    if isinstance(part_colors, torch.Tensor):
        check_floating(part_colors, "part_colors")
        if part_colors.dim() == 1:
            check_shape(part_colors, "3", "part_colors")
            return part_colors.to(device, dtype).expand(B, P, 3)
        check_shape(part_colors, f"{B} {P} 3", "part_colors")
        return part_colors.to(device, dtype)
    if part_colors == "distinct":
        return textures.random_palette(B * P, generator, device=device, dtype=dtype).view(B, P, 3)
    if part_colors != "random":
        raise ValueError(f"part_colors: expected 'random', 'distinct' or a tensor (3,) / ({B}, {P}, 3), received {part_colors!r}")
    # two tones per shape; each part takes the second with probability 0.35, and a brightness jitter
    tones = textures.random_palette(2 * B, generator, saturation=(0.1, 0.8), value=(0.35, 0.95), device=device, dtype=dtype)
    tones = tones.view(B, 2, 3)
    u = textures._rand(generator, B, P, 2, device=device, dtype=dtype)
    pick = (u[..., 0] < 0.35).long()  # (B, P)
    colors = torch.gather(tones, 1, pick[..., None].expand(B, P, 3))
    return (colors * (0.85 + 0.3 * u[..., 1:2])).clamp(0, 1)


def shape_tensors(shapes_list, part_colors="random", generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> dict:
    """Pad a list of :class:`~lessons.data.shapes.Shape` into batch tensors, with face colours.

    ``part_colors``: ``"random"`` (two tones per shape, each part one of them with a brightness
    jitter, so neighbouring parts differ), ``"distinct"`` (a random colour per part), a tensor
    ``(3,)`` (one colour for all) or ``(B, Pmax, 3)`` (per part).

    Shapes:
        returns vertices (B, Vmax, 3), faces (B, Fmax, 3) int64 padded with -1, face_colors
        (B, Fmax, 3), face_part (B, Fmax) int64 (-1 padding), num_vertices (B,), keypoints
        (B, Kmax, 3) (0 padding), num_keypoints (B,), category (B,) int64, seed (B,) int64
        (-1 for shapes without a seed)

    Raises:
        ValueError: an empty list, or bad ``part_colors``.
    """
    shapes_list = list(shapes_list)
    if not shapes_list:
        raise ValueError("shapes: expected at least one Shape, received an empty list")
    B = len(shapes_list)
    V, Fc, _ = mesh.pad_meshes([(s.vertices.to(device=device, dtype=dtype), s.faces.to(device)) for s in shapes_list])
    Fmax = Fc.shape[1]
    face_part = torch.full((B, Fmax), -1, dtype=torch.int64, device=V.device)
    Kmax = max(s.keypoints.shape[0] for s in shapes_list)
    kp = torch.zeros(B, Kmax, 3, device=V.device, dtype=dtype)
    for b, s in enumerate(shapes_list):  # a loop over shapes (the batch), not over faces
        face_part[b, : s.face_part.shape[0]] = s.face_part.to(V.device)
        kp[b, : s.keypoints.shape[0]] = s.keypoints.to(V.device, dtype)
    palette = _part_palette(shapes_list, part_colors, generator, V.device, dtype)  # (B, P, 3)
    face_colors = torch.gather(palette, 1, face_part.clamp_min(0)[..., None].expand(B, Fmax, 3))
    face_colors = face_colors * (face_part >= 0)[..., None].to(dtype)
    as_long = lambda xs: torch.tensor(xs, dtype=torch.int64, device=V.device)  # noqa: E731
    return {
        "vertices": V,
        "faces": Fc,
        "face_colors": face_colors,
        "face_part": face_part,
        "num_vertices": as_long([s.vertices.shape[0] for s in shapes_list]),
        "keypoints": kp,
        "num_keypoints": as_long([s.keypoints.shape[0] for s in shapes_list]),
        "category": as_long([s.label for s in shapes_list]),
        "seed": as_long([-1 if s.seed is None else s.seed for s in shapes_list]),
    }


def _viewpoint_tensors(viewpoints, B, device, dtype):
    if isinstance(viewpoints, dict):
        missing = {"azimuth", "elevation"} - set(viewpoints)
        if missing:
            raise ValueError(f"viewpoints: expected keys azimuth, elevation[, inplane, distance], missing {sorted(missing)}")
        az = torch.as_tensor(viewpoints["azimuth"], dtype=dtype, device=device)
        el = torch.as_tensor(viewpoints["elevation"], dtype=dtype, device=device)
        psi = torch.as_tensor(viewpoints.get("inplane", 0.0), dtype=dtype, device=device)
        d = torch.as_tensor(viewpoints.get("distance", 2.7), dtype=dtype, device=device)
        az, el, psi, d = (x.expand(B) if x.dim() == 0 else x for x in (az, el, psi, d))
        for x, name in ((az, "azimuth"), (el, "elevation"), (psi, "inplane"), (d, "distance")):
            check_shape(x, f"{B}", f"viewpoints[{name!r}]")
        return az, el, psi, d
    if not isinstance(viewpoints, torch.Tensor):
        raise ValueError(f"viewpoints: expected a dict or a tensor ({B}, 3) / ({B}, 4), received {type(viewpoints).__name__}")
    if viewpoints.dim() != 2 or viewpoints.shape[0] != B or viewpoints.shape[1] not in (3, 4):
        raise ValueError(f"viewpoints: expected shape ({B}, 3) or ({B}, 4), received {tuple(viewpoints.shape)}")
    v = viewpoints.to(device=device, dtype=dtype)
    d = v[:, 3] if v.shape[1] == 4 else torch.full((B,), 2.7, device=device, dtype=dtype)
    return v[:, 0], v[:, 1], v[:, 2], d


def cameras(viewpoints, image_size: int, focal: float | None = None, batch_size: int | None = None, device=None, dtype=torch.float32):
    """Cameras of the viewpoints: ``(R, t) = camera_from_viewpoint(az, el, psi, d)``, centred ``K``.

    ``viewpoints`` is a dict (``azimuth``, ``elevation``, optional ``inplane`` = 0, ``distance`` =
    2.7; tensors (B,) or scalars) or a tensor (B, 3) of (az, el, psi) or (B, 4) with the distance.
    ``focal`` in pixels defaults to ``DEFAULT_FOCAL * image_size``.

    Shapes:
        returns K (B, 3, 3), R (B, 3, 3), t (B, 3)

    Raises:
        ValueError: bad ``viewpoints`` or ``image_size``.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size: expected a positive int, received {image_size!r}")
    if batch_size is None:
        ref = viewpoints["azimuth"] if isinstance(viewpoints, dict) else viewpoints
        batch_size = int(torch.as_tensor(ref).shape[0]) if torch.as_tensor(ref).dim() else 1
    az, el, psi, d = _viewpoint_tensors(viewpoints, batch_size, device, dtype)
    R, t = geometry.camera_from_viewpoint(az, el, psi, d)
    f = DEFAULT_FOCAL * image_size if focal is None else float(focal)
    K = geometry.intrinsics(torch.full((batch_size,), f, device=R.device, dtype=dtype), image_size, image_size)
    return K, R, t


def crop_intrinsics(K: torch.Tensor, box: torch.Tensor, image_size: int) -> torch.Tensor:
    """Intrinsics of the square crop ``box = (x0, y0, side)`` resized to ``image_size`` pixels.

    ``K' = A K``, ``A = [[S/L, 0, -x0 S/L], [0, S/L, -y0 S/L], [0, 0, 1]]``: pixel ``u`` of the
    original image becomes ``(u - x0) S / L``, so the crop's edges land on the output's edges.

    Shapes:
        K: (B, 3, 3), box: (B, 3) -> (B, 3, 3)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(K, "B 3 3", "K")
    check_shape(box, "B 3", "box", dims)
    s = image_size / box[:, 2]
    A = torch.zeros_like(K)
    A[:, 0, 0] = s
    A[:, 1, 1] = s
    A[:, 0, 2] = -box[:, 0] * s
    A[:, 1, 2] = -box[:, 1] * s
    A[:, 2, 2] = 1.0
    return A @ K


def truncate(
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    vertices: torch.Tensor,
    num_vertices: torch.Tensor,
    image_size: int,
    truncation: float,
    generator: torch.Generator | None = None,
    margin=(1.05, 1.25),
):
    """Random square crops around the projected objects, folded into the intrinsics.

    The box of the projected vertices (centre ``c``, longer side ``m``) becomes a square of side
    ``L = m U(margin)`` centred at ``c + L (U(-tau, tau), U(-tau, tau))``, ``tau = truncation``.
    With ``tau > 0`` parts of the object may leave the image (Render for CNN's truncation).

    Shapes:
        K, R: (B, 3, 3); t: (B, 3); vertices: (B, Vmax, 3); num_vertices: (B,)
        returns K' (B, 3, 3), box (B, 3) = (x0, y0, side) in pixels of the uncropped image

    Raises:
        ValueError: wrong shapes, or ``truncation`` outside [0, 0.5].
    """
    dims = check_shape(K, "B 3 3", "K")
    check_shape(vertices, "B V 3", "vertices", dims)
    check_shape(num_vertices, "B", "num_vertices", dims)
    if not 0.0 <= float(truncation) <= 0.5:
        raise ValueError(f"truncation: expected a number in [0, 0.5], received {truncation!r}")
    B = K.shape[0]
    pix, _ = geometry.project(vertices, K, R, t)  # (B, V, 2)
    real = (torch.arange(vertices.shape[1], device=K.device) < num_vertices[:, None])[..., None]  # (B, V, 1)
    lo = torch.where(real, pix, torch.full_like(pix, float("inf"))).amin(1)  # (B, 2)
    hi = torch.where(real, pix, torch.full_like(pix, float("-inf"))).amax(1)
    c, m = 0.5 * (lo + hi), (hi - lo).amax(-1)
    u = textures._rand(generator, B, 3, device=K.device, dtype=K.dtype)
    side = m * (margin[0] + (margin[1] - margin[0]) * u[:, 0])
    centre = c + side[:, None] * truncation * (2 * u[:, 1:] - 1)
    box = torch.cat([centre - side[:, None] / 2, side[:, None]], -1)  # (B, 3)
    return crop_intrinsics(K, box, image_size), box


def random_lights(
    n: int,
    generator: torch.Generator | None = None,
    max_lights: int = 6,
    ambient=(0.3, 0.6),
    intensity=(0.4, 0.9),
    device=None,
    dtype=torch.float32,
) -> render.PointLights:
    """0 to ``max_lights`` point lights per image (each count equally likely) plus ambient light.

    Light ``l`` sits at distance U(2.5, 4) in direction (azimuth U(-pi, pi), elevation
    U(-10, 80) degrees); its colour is a pale tint (saturation < 0.3) times
    ``U(intensity) / sqrt(L_i)`` for ``L_i`` lights (so many lights do not burn the image);
    unused lights have colour 0. Ambient: a paler tint times ``U(ambient)``.

    Shapes:
        returns PointLights(positions (n, max_lights, 3), colors (n, max_lights, 3), ambient (n, 3))

    Raises:
        ValueError: ``n < 1`` or ``max_lights < 0``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, received {n!r}")
    if isinstance(max_lights, bool) or not isinstance(max_lights, int) or max_lights < 0:
        raise ValueError(f"max_lights: expected a non-negative int, received {max_lights!r}")
    L = max_lights
    u = textures._rand(generator, n, L, 4, device=device, dtype=dtype)
    count = (textures._rand(generator, n, device=device, dtype=dtype) * (L + 1)).floor().clamp(max=L)  # (n,)
    az = math.pi * (2 * u[..., 0] - 1)
    el = (-10 + 90 * u[..., 1]) * _DEG
    r = 2.5 + 1.5 * u[..., 2]
    pos = r[..., None] * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], -1)  # (n, L, 3)
    tint = textures.random_palette(n * L, generator, saturation=(0.0, 0.3), value=(1.0, 1.0), device=device, dtype=dtype).view(n, L, 3)
    on = (torch.arange(L, device=pos.device, dtype=dtype) < count[:, None]).to(dtype)  # (n, L)
    level = (intensity[0] + (intensity[1] - intensity[0]) * u[..., 3]) / count.clamp_min(1).sqrt()[:, None]
    colors = tint * (level * on)[..., None]
    amb_tint = textures.random_palette(n, generator, saturation=(0.0, 0.15), value=(1.0, 1.0), device=device, dtype=dtype)
    amb = amb_tint * (ambient[0] + (ambient[1] - ambient[0]) * textures._rand(generator, n, 1, device=device, dtype=dtype))
    return render.PointLights(pos, colors, amb)


def apply_solid_texture(rgb, alpha, depth, K, R, t, volume, strength: float = 0.5) -> torch.Tensor:
    """Modulate a rendered colour by a solid texture sampled at each pixel's surface point.

    The surface point is ``X = R^T (z K^{-1} (u, v, 1)^T - t)`` (:func:`lessons.geometry.unproject`
    of the depth map); the texture value ``n = volume(2X)`` (trilinear ``grid_sample``,
    ``align_corners=False``, border padding) scales the colour by ``1 + strength (2n - 1)``.
    Since Lambertian shading is linear in the albedo, this is the same as texturing the albedo.

    Shapes:
        rgb: (B, 3, H, W); alpha, depth: (B, 1, H, W); K, R: (B, 3, 3); t: (B, 3);
        volume: (B, 1, D, D, D) -> (B, 3, H, W)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(rgb, "B 3 H W", "rgb")
    check_shape(alpha, "B 1 H W", "alpha", dims)
    check_shape(depth, "B 1 H W", "depth", dims)
    check_shape(volume, "B 1 _ _ _", "volume", dims)
    B, _, H, W = rgb.shape
    pix = geometry.pixel_grid(H, W, device=rgb.device, dtype=rgb.dtype).reshape(1, H * W, 2).expand(B, -1, -1)
    X = geometry.unproject(pix, depth.reshape(B, H * W), K.to(rgb.dtype), R.to(rgb.dtype), t.to(rgb.dtype))  # (B, HW, 3)
    grid = (2 * X).reshape(B, 1, H, W, 3)
    n = F.grid_sample(volume.to(rgb.dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)  # (B, 1, 1, H, W)
    factor = 1 + strength * (2 * n[:, :, 0] - 1)  # (B, 1, H, W)
    return torch.where(alpha > 0, (rgb * factor).clamp(0, 1), rgb)


def keypoint_labels(keypoints, K, R, t, depth, tolerance: float = 0.03):
    """Project 3D keypoints and decide which are visible in the rendered depth map.

    ``pixels, z = project(keypoints, K, R, t)``. Visible: ``z > 0``, the pixel lies inside the
    image, and ``max over the 3x3 pixels around it of depth >= z - tol`` (empty pixels have
    depth 0): the nearest surface there is not in front of the keypoint by more than
    ``tol = tolerance + 2 z / f_x`` in at least one of the 9 pixels. The second term, two pixel
    footprints at depth ``z``, forgives the depth a surface seen at a grazing angle gains
    from one pixel to the next, so a corner on a silhouette is not hidden by its own edge.

    Shapes:
        keypoints: (B, K, 3); K, R: (B, 3, 3); t: (B, 3); depth: (B, 1, H, W)
        returns pixels (B, K, 2), visible (B, K) bool

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(keypoints, "B N 3", "keypoints")
    check_shape(depth, "B 1 H W", "depth", dims)
    pixels, z = geometry.project(keypoints, K, R, t)  # (B, N, 2), (B, N)
    B, _, H, W = depth.shape
    j, i = pixels[..., 0].floor(), pixels[..., 1].floor()
    inside = (z > 0) & (j >= 0) & (j < W) & (i >= 0) & (i < H)
    near = F.max_pool2d(depth, 3, stride=1, padding=1).reshape(B, H * W)  # (B, HW)
    flat = (i.clamp(0, H - 1) * W + j.clamp(0, W - 1)).long()
    seen = torch.gather(near, 1, flat)  # (B, N)
    tol = tolerance + 2 * z / K[..., 0, 0].unsqueeze(-1)
    return pixels, inside & (seen >= z - tol)


# ----------------------------------------------------------------------------------------------
# The whole pipeline
# ----------------------------------------------------------------------------------------------


def render_shapes(
    shapes_list,
    viewpoints,
    image_size: int = 64,
    generator: torch.Generator | None = None,
    lights="random",
    background="procedural",
    truncation: float = 0.0,
    crop: bool | None = None,
    focal: float | None = None,
    part_colors="random",
    texture: float = 0.0,
    antialias: int = 2,
    textured_fraction: float = 0.8,
    visibility_tolerance: float = 0.03,
    device=None,
    dtype=torch.float32,
) -> dict:
    """Render a batch of shapes from given viewpoints, with random lights, background and crops.

    Steps: :func:`shape_tensors` -> :func:`cameras` -> (:func:`truncate` when ``crop``, which
    defaults to ``truncation > 0``) -> :func:`random_lights` -> one
    :func:`lessons.render.render_mesh` call -> (:func:`apply_solid_texture` when ``texture > 0``)
    -> background -> :func:`lessons.render.composite` -> :func:`keypoint_labels`.

    ``lights``: ``"random"``, ``None`` (a head light) or a :class:`lessons.render.PointLights`.
    ``background``: ``"procedural"`` (:func:`lessons.data.textures.procedural_backgrounds`), a
    number (grey level), a tensor (3,) or (B, 3, S, S).

    Shapes:
        returns a dict: image (B, 3, S, S), mask (B, 1, S, S) (alpha), depth (B, 1, S, S), normals
        (B, 3, S, S), parts (B, 1, S, S) int64 (part index, -1 background), background
        (B, 3, S, S), keypoints_3d (B, Kmax, 3), keypoints_2d (B, Kmax, 2) (pixels of the final
        image), keypoints_visible (B, Kmax) bool, keypoints_valid (B, Kmax) bool (False on the
        padding of categories with fewer keypoints), num_keypoints (B,), viewpoint (B, 3) =
        (azimuth, elevation, inplane), distance (B,), K (B, 3, 3) (after the crop), R (B, 3, 3),
        t (B, 3), crop (B, 3) (x0, y0, side; NaN without a crop), category (B,) int64,
        shape_seed (B,) int64.

    Raises:
        ValueError: an empty shape list, bad sizes, viewpoints, background or truncation.
    """
    shapes_list = list(shapes_list)
    if not shapes_list:
        raise ValueError("shapes: expected at least one Shape, received an empty list")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size: expected a positive int, received {image_size!r}")
    if not 0.0 <= float(truncation) <= 0.5:
        raise ValueError(f"truncation: expected a number in [0, 0.5], received {truncation!r}")
    B, S = len(shapes_list), image_size
    device = torch.device("cpu") if device is None else torch.device(device)
    st = shape_tensors(shapes_list, part_colors, generator, device, dtype)
    K, R, t = cameras(viewpoints, S, focal, batch_size=B, device=device, dtype=dtype)
    az, el, psi, dist = _viewpoint_tensors(viewpoints, B, device, dtype)
    crop = float(truncation) > 0 if crop is None else bool(crop)
    box = torch.full((B, 3), float("nan"), device=device, dtype=dtype)
    if crop:
        K, box = truncate(K, R, t, st["vertices"], st["num_vertices"], S, truncation, generator)
    if isinstance(lights, str) and lights == "random":
        lights = random_lights(B, generator, device=device, dtype=dtype)
    elif lights is not None and not isinstance(lights, render.PointLights):
        raise ValueError(f"lights: expected 'random', None or a PointLights, received {lights!r}")
    out = render.render_mesh(st["vertices"], st["faces"], K, R, t, S, S, face_colors=st["face_colors"], lights=lights, antialias=antialias)
    rgb = out.rgb
    if texture > 0:
        volume = textures.noise_volume(B, 16, generator, device=device, dtype=dtype)
        rgb = apply_solid_texture(rgb, out.alpha, out.depth, K, R, t, volume, texture)
    if isinstance(background, str):
        if background != "procedural":
            raise ValueError(f"background: expected 'procedural', a number or a tensor, received {background!r}")
        bg = textures.procedural_backgrounds(B, S, S, generator, textured_fraction, device=device, dtype=dtype)
    elif isinstance(background, (int, float)):
        bg = torch.full((B, 3, S, S), float(background), device=device, dtype=dtype)
    elif isinstance(background, torch.Tensor) and background.dim() == 1:
        check_shape(background, "3", "background")
        bg = background.to(device, dtype).view(1, 3, 1, 1).expand(B, 3, S, S)
    else:
        check_shape(background, f"{B} 3 {S} {S}", "background")
        bg = background.to(device, dtype)
    image = render.composite(rgb, out.alpha, bg)
    kp2d, visible = keypoint_labels(st["keypoints"], K, R, t, out.depth, visibility_tolerance)
    valid = torch.arange(st["keypoints"].shape[1], device=device) < st["num_keypoints"][:, None]
    fi = out.face_index.reshape(B, -1)
    parts = torch.where(fi >= 0, torch.gather(st["face_part"], 1, fi.clamp_min(0)), torch.full_like(fi, -1))
    return {
        "image": image,
        "mask": out.alpha,
        "depth": out.depth,
        "normals": out.normals,
        "parts": parts.view(B, 1, S, S),
        "background": bg,
        "keypoints_3d": st["keypoints"],
        "keypoints_2d": kp2d * valid[..., None],
        "keypoints_visible": visible & valid,
        "keypoints_valid": valid,
        "num_keypoints": st["num_keypoints"],
        "viewpoint": torch.stack([az, el, psi], -1),
        "distance": dist,
        "K": K,
        "R": R,
        "t": t,
        "crop": box,
        "category": st["category"],
        "shape_seed": st["seed"],
    }


DEFAULT_FIELDS = (
    "image",
    "mask",
    "keypoints_3d",
    "keypoints_2d",
    "keypoints_visible",
    "keypoints_valid",
    "num_keypoints",
    "viewpoint",
    "distance",
    "K",
    "R",
    "t",
    "category",
    "shape_seed",
)
"""What :func:`make_render_set` keeps by default (add "depth", "normals", "parts", "background")."""


def make_render_set(
    categories=shapes_mod.CATEGORIES,
    n: int = 1000,
    split: str = "train",
    image_size: int = 64,
    seed: int = 0,
    prior: ViewpointPrior | None = None,
    shapes_per_category: int | None = None,
    batch_size: int = 128,
    fields=DEFAULT_FIELDS,
    progress: bool = False,
    device=None,
    shape_start: int = 0,
    batch_kwargs=None,
    transform=None,
    desc: str | None = None,
    **render_kwargs,
) -> dict:
    """``n`` labelled renders of shapes of ``split``, generated in batches; deterministic given ``seed``.

    Image ``i`` shows category ``categories[i % C]``, shape number ``(i // C) % N`` of that
    category's :func:`~lessons.data.shapes.shape_seeds` (``N = shapes_per_category``, by default
    as many as needed for one image per shape), from a viewpoint drawn from ``prior`` (default
    :class:`ViewpointPrior`). ``render_kwargs`` go to :func:`render_shapes` (``truncation``,
    ``texture``, ``lights``, ...). The same ``seed`` and ``batch_size`` give the same tensors.

    Hooks for other appearance domains (:mod:`lessons.data.photo` uses them): shapes are counted
    from ``shape_start`` in :func:`~lessons.data.shapes.shape_seeds`; ``batch_kwargs(shapes,
    generator) -> dict`` adds render arguments drawn per batch (lights, part colours,
    backgrounds); ``transform(out, generator)`` edits each batch's outputs in place after
    rendering. Both draw from the set's one generator, so the set stays deterministic.

    Shapes:
        returns a dict of the ``fields`` of :func:`render_shapes`, each with N = ``n`` rows

    Raises:
        ValueError: unknown category / split / field, bad ``n``, ``batch_size`` or sizes.
    """
    CATEGORIES, random_shape, shape_seeds = shapes_mod.CATEGORIES, shapes_mod.random_shape, shapes_mod.shape_seeds
    if isinstance(categories, str):
        categories = [categories]
    categories = list(categories)
    for c in categories:
        if c not in CATEGORIES:
            raise ValueError(f"categories: expected names from {CATEGORIES}, received {c!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, received {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, received {batch_size!r}")
    unknown = set(fields) - set(DEFAULT_FIELDS) - {"depth", "normals", "parts", "background", "crop"}
    if unknown:
        raise ValueError(f"fields: unknown {sorted(unknown)}")
    C = len(categories)
    per_cat = shapes_per_category or math.ceil(n / C)
    pools = {c: shape_seeds(c, split, per_cat, start=shape_start) for c in categories}
    g = torch.Generator().manual_seed(int(seed))
    prior = ViewpointPrior() if prior is None else prior
    views = prior.sample(n, g)
    chunks = {k: [] for k in fields}
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc or f"rendering {n} images", unit="batch")
    cache: dict = {}
    for s0 in starts:
        idx = range(s0, min(n, s0 + batch_size))
        batch = []
        for i in idx:
            c = categories[i % C]
            key = (c, pools[c][(i // C) % per_cat])
            if key not in cache:
                cache[key] = random_shape(*key)
            batch.append(cache[key])
        if shapes_per_category is None:
            cache.clear()  # one image per shape: nothing to reuse
        vp = {k: v[s0 : s0 + len(batch)] for k, v in views.items()}
        extra = batch_kwargs(batch, g) if batch_kwargs is not None else {}
        out = render_shapes(batch, vp, image_size, g, device=device, **render_kwargs, **extra)
        if transform is not None:
            transform(out, g)
        for k in fields:
            chunks[k].append(out[k])
    return {k: torch.cat(v) for k, v in chunks.items()}


class RenderDataset(torch.utils.data.Dataset):
    """A :func:`make_render_set` held in memory, one dict of tensors per item.

    ``RenderDataset(categories, n, split, image_size, seed, ...)`` renders the set;
    ``RenderDataset.from_tensors(data)`` wraps one already made.
    """

    def __init__(self, categories=shapes_mod.CATEGORIES, n: int = 1000, split: str = "train", image_size: int = 64, seed: int = 0, **kwargs):
        self.data = make_render_set(categories, n, split, image_size, seed, **kwargs)

    @classmethod
    def from_tensors(cls, data: dict) -> "RenderDataset":
        """Wrap a dict of tensors sharing their first dimension.

        Shapes:
            data: {name: (N, ...)}; an item is {name: (...)}

        Raises:
            ValueError: the tensors disagree on their first dimension.
        """
        sizes = {k: v.shape[0] for k, v in data.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"data: expected tensors with one common first dimension, received {sizes}")
        self = cls.__new__(cls)
        self.data = dict(data)
        return self

    def __len__(self) -> int:
        return next(iter(self.data.values())).shape[0]

    def __getitem__(self, i) -> dict:
        return {k: v[i] for k, v in self.data.items()}
