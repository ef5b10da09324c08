"""A second domain: "photographs" of the procedural furniture, for synthetic-to-real experiments.

Render for CNN (Su et al., ICCV 2015) asks whether millions of cheap renders help a network
that must work on real photographs (PASCAL 3D+). Offline we have no photographs, so this module
makes a **stand-in real domain** that differs from :mod:`lessons.data.renders` in the ways real
photos differ from renders, and nothing else (same shapes generator, same viewpoint prior):

1. **materials** (:func:`material_colors`): colours from a small palette of real materials
   (woods, fabrics, painted and metal finishes) instead of random hues, plus a solid-noise
   texture (grain) on the albedo;
2. **lighting** (:func:`studio_lights`): one or two strong, tinted lights and little ambient
   light (harsh, contrasty shading) instead of 0-6 pale lights and generous ambient;
3. **backgrounds** (:func:`room_backgrounds`): a wall over a floor meeting at a horizon, both
   textured, instead of abstract patterns;
4. **the camera** (:func:`photo_transform`), applied to the composited image, in the order light
   meets a sensor and a file:

   * exposure and colour cast: ``I <- (g_c e I)^gamma`` per channel ``c`` (white balance ``g``,
     exposure ``e``, tone curve ``gamma``), :func:`color_cast`;
   * defocus: a Gaussian of standard deviation ``sigma`` pixels, :func:`gaussian_blur`;
   * motion blur: the average along a segment of length ``l`` and angle ``a``, :func:`motion_blur`;
   * vignetting: ``I <- I (1 - v r^2)``, ``r`` the distance to the centre over the half
     diagonal, :func:`vignette`;
   * sensor noise: ``I <- I + sqrt(k I + s^2) n``, ``n ~ N(0, 1)`` (shot noise ``k``, read
     noise ``s``), :func:`sensor_noise`;
   * JPEG-like blockiness: 8x8 block DCT of the YCbCr image, coefficients rounded to steps
     ``q (1 + u + v)`` (twice as coarse for chroma), :func:`jpeg_blocks`.

Every random choice comes from one CPU ``torch.Generator`` (so a seed gives the same set on
every device); every step is batched tensor code with per-image parameters (no loop over
pixels or images). :func:`make_photo_set` puts it all together and returns the same fields as
:func:`lessons.data.renders.make_render_set`. By default its shapes come from seeds far from
the synthetic set's (``shape_start``), so "real" objects are other instances of the categories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lessons import render
from lessons.checks import check_floating, check_shape
from lessons.data import renders, textures
from lessons.data import shapes as shapes_mod

__all__ = [
    "MATERIALS",
    "PhotoStyle",
    "material_colors",
    "studio_lights",
    "room_backgrounds",
    "color_cast",
    "gaussian_blur",
    "motion_blur",
    "vignette",
    "sensor_noise",
    "jpeg_blocks",
    "photo_transform",
    "make_photo_set",
]

# Base albedos (linear RGB) of a few real finishes: what furniture is made of.
MATERIALS = {
    "oak": (0.62, 0.45, 0.27),
    "walnut": (0.33, 0.21, 0.13),
    "pine": (0.80, 0.66, 0.45),
    "white paint": (0.88, 0.87, 0.84),
    "black paint": (0.10, 0.10, 0.11),
    "grey fabric": (0.45, 0.46, 0.48),
    "blue fabric": (0.22, 0.30, 0.45),
    "red fabric": (0.55, 0.16, 0.14),
    "green fabric": (0.30, 0.40, 0.26),
    "leather": (0.42, 0.24, 0.15),
    "steel": (0.62, 0.63, 0.66),
}

_BLOCK = 8  # JPEG's block size


@dataclass
class PhotoStyle:
    """The ranges every random "photo" parameter is drawn from (uniformly, per image).

    Sizes in pixels are given for a 64-pixel image and scale with the image size.
    """

    second_material: float = 0.35  # probability that a part takes the shape's second material
    material_jitter: float = 0.12  # +- relative brightness jitter per part
    texture: float = 0.35  # solid-noise grain strength on the albedo (renders.apply_solid_texture)
    lights: tuple = (1, 2)  # number of point lights (min, max)
    light_intensity: tuple = (1.0, 1.6)  # key light intensity
    light_saturation: tuple = (0.1, 0.45)  # how coloured the lights are (HSV saturation)
    ambient: tuple = (0.15, 0.35)  # ambient intensity
    exposure: tuple = (0.75, 1.25)  # global gain e
    cast: float = 0.15  # white-balance gains g_c in 1 +- cast
    gamma: tuple = (0.8, 1.25)  # tone curve exponent
    defocus: tuple = (0.2, 1.0)  # Gaussian blur sigma, pixels at 64 px
    motion_probability: float = 0.4  # fraction of images with motion blur
    motion_length: tuple = (1.0, 5.0)  # motion blur length, pixels at 64 px
    vignetting: tuple = (0.1, 0.55)  # v in I (1 - v r^2)
    shot_noise: tuple = (0.0005, 0.004)  # k in sqrt(k I + s^2)
    read_noise: tuple = (0.003, 0.015)  # s
    jpeg_step: tuple = (0.01, 0.04)  # q: DCT rounding step of the lowest frequency (luma)
    truncation: float = 0.15  # crop shift, as renders.truncate
    textured_walls: float = 0.7  # probability that wall and floor carry a noise texture

    def __post_init__(self):
        for name in ("lights", "light_intensity", "light_saturation", "ambient", "exposure", "gamma", "defocus",
                     "motion_length", "vignetting", "shot_noise", "read_noise", "jpeg_step"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name}: expected 0 <= low <= high, received {(lo, hi)}")
        if self.lights[0] < 1:
            raise ValueError(f"lights: expected at least one light, received {self.lights}")


def _u(generator, lo_hi, *shape, device=None, dtype=torch.float32) -> torch.Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * textures._rand(generator, *shape, device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Scene: materials, lights, backgrounds
# ----------------------------------------------------------------------------------------------


def material_colors(num_shapes: int, num_parts: int, generator: torch.Generator | None = None,
                    style: PhotoStyle | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Per-part albedos from :data:`MATERIALS`: two materials per shape, a brightness jitter per part.

    Each shape draws a main and a second material; each part takes the second with probability
    ``style.second_material``, and is scaled by ``1 + U(-j, j)``, ``j = style.material_jitter``.

    Shapes:
        returns (num_shapes, num_parts, 3) in [0, 1], usable as ``part_colors`` of
        :func:`lessons.data.renders.render_shapes`

    Raises:
        ValueError: ``num_shapes`` or ``num_parts`` not a positive int.
    """
    for name, v in (("num_shapes", num_shapes), ("num_parts", num_parts)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, received {v!r}")
    style = PhotoStyle() if style is None else style
    B, P = num_shapes, num_parts
    table = torch.tensor(list(MATERIALS.values()), device=device, dtype=dtype)  # (M, 3)
    u = textures._rand(generator, B, 2, device=device, dtype=dtype)
    pick = (u * len(MATERIALS)).long().clamp(max=len(MATERIALS) - 1)  # (B, 2)
    v = textures._rand(generator, B, P, 2, device=device, dtype=dtype)
    second = (v[..., 0] < style.second_material).long()  # (B, P)
    index = torch.gather(pick, 1, second)  # (B, P)
    colors = table[index]  # (B, P, 3)
    jitter = 1 + style.material_jitter * (2 * v[..., 1:] - 1)
    return (colors * jitter).clamp(0, 1)


def studio_lights(n: int, generator: torch.Generator | None = None, style: PhotoStyle | None = None,
                  device=None, dtype=torch.float32) -> render.PointLights:
    """Harsh, tinted lighting: 1-2 strong point lights, little ambient light.

    The key light sits at azimuth U(-pi, pi), elevation U(10, 70) degrees, distance U(2.5, 4),
    intensity ``U(style.light_intensity)``, a tint of saturation ``U(style.light_saturation)``; a
    second light (when drawn) has half that intensity. Ambient: ``U(style.ambient)``, slightly
    tinted. Unused lights have colour 0.

    Shapes:
        returns PointLights(positions (n, L, 3), colors (n, L, 3), ambient (n, 3)), L = style.lights[1]

    Raises:
        ValueError: ``n`` not a positive int.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, received {n!r}")
    style = PhotoStyle() if style is None else style
    L = int(style.lights[1])
    u = textures._rand(generator, n, L, 3, device=device, dtype=dtype)
    az = math.pi * (2 * u[..., 0] - 1)
    el = torch.deg2rad(10 + 60 * u[..., 1])
    r = 2.5 + 1.5 * u[..., 2]
    pos = r[..., None] * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], -1)  # (n, L, 3)
    count = style.lights[0] + (textures._rand(generator, n, device=device, dtype=dtype) * (L - style.lights[0] + 1)).floor()
    on = (torch.arange(L, device=pos.device, dtype=dtype) < count[:, None]).to(dtype)  # (n, L)
    level = _u(generator, style.light_intensity, n, 1, device=device, dtype=dtype) * 0.5 ** torch.arange(L, device=pos.device, dtype=dtype)
    tint = textures.random_palette(n * L, generator, saturation=tuple(style.light_saturation), value=(1.0, 1.0),
                                   device=device, dtype=dtype).view(n, L, 3)
    colors = tint * (level * on)[..., None]
    amb = textures.random_palette(n, generator, saturation=(0.0, 0.2), value=(1.0, 1.0), device=device, dtype=dtype)
    amb = amb * _u(generator, style.ambient, n, 1, device=device, dtype=dtype)
    return render.PointLights(pos, colors, amb)


def room_backgrounds(n: int, height: int, width: int, generator: torch.Generator | None = None,
                     style: PhotoStyle | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """A wall above a floor: two muted colours meeting at a random horizon, with noise and shading.

    Row ``i`` is floor when ``(i + 1/2) / H > h`` with the horizon ``h ~ U(0.35, 0.8)``; the
    floor darkens towards the horizon, the wall towards the top; with probability
    ``style.textured_walls`` a fractal value noise modulates both by +-25 %.

    Shapes:
        returns (n, 3, height, width) in [0, 1]

    Raises:
        ValueError: ``n`` negative or non-positive sizes.
    """
    style = PhotoStyle() if style is None else style
    wall = textures.random_palette(n, generator, saturation=(0.0, 0.35), value=(0.45, 0.95), device=device, dtype=dtype)
    floor = textures.random_palette(n, generator, saturation=(0.1, 0.5), value=(0.2, 0.7), device=device, dtype=dtype)
    u = textures._rand(generator, n, 2, device=device, dtype=dtype)
    horizon = (0.35 + 0.45 * u[:, 0]).view(n, 1, 1, 1)
    y = ((torch.arange(height, device=wall.device, dtype=dtype) + 0.5) / height).view(1, 1, height, 1)
    is_floor = (y > horizon).to(dtype)  # (n, 1, H, 1)
    shade = 1 - 0.25 * torch.where(y > horizon, (1 - y) / (1 - horizon), (horizon - y) / horizon)  # (n, 1, H, 1)
    base = is_floor * floor[:, :, None, None] + (1 - is_floor) * wall[:, :, None, None]  # (n, 3, H, 1)
    noise = textures.value_noise(n, height, width, generator, octaves=4, base_cells=4, device=device, dtype=dtype)
    textured = (u[:, 1] < style.textured_walls).to(dtype).view(n, 1, 1, 1)
    grain = 1 + 0.5 * textured * (noise - 0.5)  # (n, 1, H, W)
    return (base * shade * grain).clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# The camera: pure, batched degradations with per-image parameters
# ----------------------------------------------------------------------------------------------


def _per_image(x, B: int, name: str, like: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if x.dim() == 0:
        x = x.expand(B)
    check_shape(x, f"{B}", name)
    return x


def color_cast(images: torch.Tensor, gains: torch.Tensor, exposure=1.0, gamma=1.0) -> torch.Tensor:
    """White balance, exposure and tone curve: ``I_c <- clamp(g_c e I_c, 0, 1)^gamma``.

    Shapes:
        images: (B, 3, H, W); gains: (B, 3); exposure, gamma: float or (B,) -> (B, 3, H, W)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(images, "B 3 H W", "images")
    check_floating(images, "images")
    check_shape(gains, "B 3", "gains", dims)
    B = images.shape[0]
    e = _per_image(exposure, B, "exposure", images).view(B, 1, 1, 1)
    g = _per_image(gamma, B, "gamma", images).view(B, 1, 1, 1)
    x = (images * gains.to(images)[:, :, None, None] * e).clamp(0, 1)
    return x.clamp_min(1e-6) ** g


def _depthwise(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve image b with kernel b (every channel), reflect padding. kernels (B, kh, kw)."""
    B, C, H, W = images.shape
    kh, kw = kernels.shape[-2:]
    x = F.pad(images.reshape(1, B * C, H, W), (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    weight = kernels.to(images).repeat_interleave(C, 0)[:, None]  # (B C, 1, kh, kw)
    return F.conv2d(x, weight, groups=B * C).reshape(B, C, H, W)


def gaussian_blur(images: torch.Tensor, sigma) -> torch.Tensor:
    """Defocus: convolve image ``b`` with a normalised Gaussian of std ``sigma_b`` pixels.

    ``G(x, y) = exp(-(x^2 + y^2) / (2 sigma^2)) / Z`` on a ``k x k`` grid, ``k = 2 ceil(3 max sigma) + 1``
    (``sigma = 0`` is the identity). Borders repeat the edge pixels.

    Shapes:
        images: (B, C, H, W); sigma: float or (B,) -> (B, C, H, W)

    Raises:
        ValueError: wrong shapes or a negative sigma.
    """
    check_shape(images, "B C H W", "images")
    check_floating(images, "images")
    B = images.shape[0]
    s = _per_image(sigma, B, "sigma", images)
    if bool((s < 0).any()):
        raise ValueError(f"sigma: expected non-negative values, received min {float(s.min())}")
    k = 2 * math.ceil(3 * float(s.max())) + 1 if B else 1
    r = torch.arange(k, device=images.device, dtype=images.dtype) - k // 2
    d2 = r.view(1, k, 1) ** 2 + r.view(1, 1, k) ** 2  # (1, k, k)
    g = torch.exp(-d2 / (2 * s.clamp_min(1e-3).view(B, 1, 1) ** 2))  # (B, k, k)
    return _depthwise(images, g / g.sum((1, 2), keepdim=True))


def motion_blur(images: torch.Tensor, length, angle) -> torch.Tensor:
    """Camera shake: average along a segment of ``length`` pixels at ``angle`` (radians, image x-axis).

    The kernel weighs pixel offset ``p`` by ``max(0, 1 - dist(p, segment))``, the segment from
    ``-l/2 (cos a, sin a)`` to ``+l/2 (cos a, sin a)``, normalised to sum 1 (length 0: identity).

    Shapes:
        images: (B, C, H, W); length, angle: float or (B,) -> (B, C, H, W)

    Raises:
        ValueError: wrong shapes or a negative length.
    """
    check_shape(images, "B C H W", "images")
    check_floating(images, "images")
    B = images.shape[0]
    L = _per_image(length, B, "length", images)
    a = _per_image(angle, B, "angle", images)
    if bool((L < 0).any()):
        raise ValueError(f"length: expected non-negative values, received min {float(L.min())}")
    k = 2 * math.ceil(float(L.max()) / 2) + 3 if B else 3
    r = torch.arange(k, device=images.device, dtype=images.dtype) - k // 2
    xs, ys = torch.meshgrid(r, r, indexing="xy")  # (k, k): x along columns, y along rows
    p = torch.stack([xs, ys], -1)[None]  # (1, k, k, 2)
    direction = torch.stack([a.cos(), a.sin()], -1).view(B, 1, 1, 2)
    along = (p * direction).sum(-1)
    half = (L / 2).view(B, 1, 1)
    closest = along.clamp(-half, half)[..., None] * direction  # (B, k, k, 2)
    dist = torch.linalg.vector_norm(p - closest, dim=-1)
    w = (1 - dist).clamp_min(0)
    return _depthwise(images, w / w.sum((1, 2), keepdim=True))


def vignette(images: torch.Tensor, strength) -> torch.Tensor:
    """Lens fall-off: ``I <- I (1 - v r^2)``, ``r`` = distance of the pixel centre to the image
    centre over the half diagonal (1 in the corners).

    Shapes:
        images: (B, C, H, W); strength: float or (B,) -> (B, C, H, W)

    Raises:
        ValueError: wrong shapes.
    """
    check_shape(images, "B C H W", "images")
    check_floating(images, "images")
    B, _, H, W = images.shape
    v = _per_image(strength, B, "strength", images).view(B, 1, 1, 1)
    x = torch.arange(W, device=images.device, dtype=images.dtype) + 0.5 - W / 2
    y = torch.arange(H, device=images.device, dtype=images.dtype) + 0.5 - H / 2
    r2 = (x.view(1, W) ** 2 + y.view(H, 1) ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)  # (H, W)
    return images * (1 - v * r2)


def sensor_noise(images: torch.Tensor, shot, read, generator: torch.Generator | None = None) -> torch.Tensor:
    """Poisson-Gaussian noise: ``I <- clamp(I + sqrt(k I + s^2) n, 0, 1)``, ``n ~ N(0, 1)`` per pixel.

    Shapes:
        images: (B, C, H, W); shot (k), read (s): float or (B,) -> (B, C, H, W)

    Raises:
        ValueError: wrong shapes.
    """
    check_shape(images, "B C H W", "images")
    check_floating(images, "images")
    B = images.shape[0]
    k = _per_image(shot, B, "shot", images).view(B, 1, 1, 1)
    s = _per_image(read, B, "read", images).view(B, 1, 1, 1)
    gdev = generator.device if generator is not None else torch.device("cpu")
    n = torch.randn(images.shape, generator=generator, device=gdev).to(images)
    return (images + torch.sqrt(k * images.clamp_min(0) + s**2) * n).clamp(0, 1)


def _dct_matrix(n: int, device, dtype) -> torch.Tensor:
    """Orthonormal DCT-II: ``D[u, x] = c_u cos((2x + 1) u pi / (2n))``, ``c_0 = sqrt(1/n)``, else ``sqrt(2/n)``."""
    x = torch.arange(n, device=device, dtype=dtype)
    D = torch.cos((2 * x[None] + 1) * x[:, None] * math.pi / (2 * n))
    D[0] *= math.sqrt(1 / n)
    D[1:] *= math.sqrt(2 / n)
    return D


_RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def jpeg_blocks(images: torch.Tensor, step) -> torch.Tensor:
    """JPEG-like compression artefacts: 8x8 block DCT with rounded coefficients.

    The image goes to YCbCr (BT.601), each 8x8 block ``X`` to ``C = D X D^T`` (orthonormal
    DCT-II ``D``), each coefficient ``(u, v)`` is rounded to a multiple of
    ``Q_uv = q (1 + u + v)`` (``2 Q_uv`` for the chroma channels), and back. ``q = 0`` keeps the
    image (up to float rounding). Sizes that are not multiples of 8 are padded by replication
    and cropped back.

    Shapes:
        images: (B, 3, H, W); step (q): float or (B,) -> (B, 3, H, W)

    Raises:
        ValueError: wrong shapes or a negative step.
    """
    check_shape(images, "B 3 H W", "images")
    check_floating(images, "images")
    B, _, H, W = images.shape
    q = _per_image(step, B, "step", images)
    if bool((q < 0).any()):
        raise ValueError(f"step: expected non-negative values, received min {float(q.min())}")
    M = torch.tensor(_RGB_TO_YCBCR, device=images.device, dtype=images.dtype)
    ycc = torch.einsum("ij,bjhw->bihw", M, images)
    ph, pw = (-H) % _BLOCK, (-W) % _BLOCK
    ycc = F.pad(ycc, (0, pw, 0, ph), mode="replicate")
    Hp, Wp = H + ph, W + pw
    blocks = ycc.reshape(B, 3, Hp // _BLOCK, _BLOCK, Wp // _BLOCK, _BLOCK).transpose(3, 4)  # (B, 3, h, w, 8, 8)
    D = _dct_matrix(_BLOCK, images.device, images.dtype)
    C = D @ blocks @ D.t()
    u = torch.arange(_BLOCK, device=images.device, dtype=images.dtype)
    table = 1 + u.view(-1, 1) + u.view(1, -1)  # (8, 8)
    chroma = torch.tensor([1.0, 2.0, 2.0], device=images.device, dtype=images.dtype).view(1, 3, 1, 1, 1, 1)
    Q = (q.view(B, 1, 1, 1, 1, 1) * chroma * table).clamp_min(1e-12)
    C = torch.where(Q > 1e-9, torch.round(C / Q) * Q, C)
    blocks = D.t() @ C @ D
    ycc = blocks.transpose(3, 4).reshape(B, 3, Hp, Wp)[:, :, :H, :W]
    rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(M), ycc)
    return rgb.clamp(0, 1)


def photo_transform(images: torch.Tensor, generator: torch.Generator | None = None,
                    style: PhotoStyle | None = None, return_params: bool = False):
    """Make composited renders look photographed: every degradation above, random per image.

    Order: :func:`color_cast` (gains ``1 +- style.cast``, exposure, gamma) ->
    :func:`gaussian_blur` (defocus) -> :func:`motion_blur` (for a fraction
    ``style.motion_probability`` of the images) -> :func:`vignette` -> :func:`sensor_noise` ->
    :func:`jpeg_blocks`. Pixel sizes in ``style`` are for 64 px and scale with the width.

    Shapes:
        images: (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1] (and a dict of (B,) / (B, 3)
        parameters with ``return_params``)

    Raises:
        ValueError: wrong shapes.
    """
    check_shape(images, "B 3 H W", "images")
    check_floating(images, "images")
    style = PhotoStyle() if style is None else style
    B, _, H, W = images.shape
    scale = W / 64
    kw = dict(device=images.device, dtype=images.dtype)
    params = {
        "gains": 1 + style.cast * (2 * textures._rand(generator, B, 3, **kw) - 1),
        "exposure": _u(generator, style.exposure, B, **kw),
        "gamma": _u(generator, style.gamma, B, **kw),
        "defocus": scale * _u(generator, style.defocus, B, **kw),
        "motion_length": scale * _u(generator, style.motion_length, B, **kw)
        * (textures._rand(generator, B, **kw) < style.motion_probability).to(images.dtype),
        "motion_angle": math.pi * textures._rand(generator, B, **kw),
        "vignetting": _u(generator, style.vignetting, B, **kw),
        "shot_noise": _u(generator, style.shot_noise, B, **kw),
        "read_noise": _u(generator, style.read_noise, B, **kw),
        "jpeg_step": _u(generator, style.jpeg_step, B, **kw),
    }
    x = color_cast(images, params["gains"], params["exposure"], params["gamma"])
    x = gaussian_blur(x, params["defocus"])
    x = motion_blur(x, params["motion_length"], params["motion_angle"])
    x = vignette(x, params["vignetting"])
    x = sensor_noise(x, params["shot_noise"], params["read_noise"], generator)
    x = jpeg_blocks(x, params["jpeg_step"])
    return (x, params) if return_params else x


# ----------------------------------------------------------------------------------------------
# The whole "real" set
# ----------------------------------------------------------------------------------------------


def make_photo_set(
    categories=shapes_mod.CATEGORIES,
    n: int = 200,
    split: str = "train",
    image_size: int = 64,
    seed: int = 0,
    style: PhotoStyle | None = None,
    prior: renders.ViewpointPrior | None = None,
    shape_start: int = 100_000,
    batch_size: int = 128,
    fields=renders.DEFAULT_FIELDS,
    progress: bool = False,
    antialias: int = 2,
    device=None,
) -> dict:
    """``n`` labelled "photographs" of shapes of ``split``; deterministic given ``seed``.

    Image ``i`` shows category ``categories[i % C]``, shape ``i // C`` of that category's
    :func:`~lessons.data.shapes.shape_seeds` counted from ``shape_start`` (other instances than
    the synthetic sets'), from a viewpoint of ``prior`` (default: the photo prior of
    :class:`lessons.data.renders.ViewpointPrior`, the same as the synthetic sets), rendered by
    :func:`lessons.data.renders.render_shapes` with :func:`material_colors`,
    :func:`studio_lights`, :func:`room_backgrounds`, a solid texture and truncation, then
    passed through :func:`photo_transform`. ``antialias`` is the renderer's supersampling.

    Shapes:
        returns a dict of ``fields`` (see :func:`lessons.data.renders.render_shapes`), N = ``n`` rows

    Raises:
        ValueError: unknown category, split or field, or bad ``n`` / ``batch_size``.
    """
    style = PhotoStyle() if style is None else style
    S = image_size

    def photo_scene(batch, g):  # drawn per batch, before the render
        B, P = len(batch), max(len(s.part_names) for s in batch)
        return dict(part_colors=material_colors(B, P, g, style, device=device),
                    lights=studio_lights(B, g, style, device=device),
                    background=room_backgrounds(B, S, S, g, style, device=device))

    def photo_camera(out, g):  # the camera's own effects, after the render
        out["image"] = photo_transform(out["image"], g, style)

    return renders.make_render_set(
        categories, n, split, image_size, seed, prior, batch_size=batch_size, fields=fields,
        progress=progress, device=device, shape_start=shape_start, batch_kwargs=photo_scene,
        transform=photo_camera, desc=f"photographing {n} objects",
        truncation=style.truncation, texture=style.texture, antialias=antialias)
