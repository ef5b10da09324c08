"""Procedural backgrounds, textures and colours, batched in torch and reproducible from a seed.

Render for CNN pasted its synthetic objects on random SUN photographs so that a network could
not tell an object from its background by the background alone. Offline, we paint the
backgrounds instead. About 80 % are **textured**, drawn evenly from four kinds of pattern, and
20 % are a **flat colour**:

* **value noise** (fractal, "Perlin-like"): a random lattice of values per octave, upsampled
  bicubically; octave ``o`` has ``base * 2^o`` cells and weight ``persistence^o``:
  ``n(x) = sum_o p^o lattice_o(x)``, then stretched to ``[0, 1]`` and mapped between two colours;
* **stripes**: ``s = 1/2 + 1/2 sin(2 pi <x, (cos a, sin a)> / period + phase)``, soft or hard;
* **checkerboards**: ``(floor(x'/c) + floor(y'/c)) mod 2`` in a frame rotated by a random angle;
* **blobs**: Gaussian discs ``exp(-|x - m|^2 / (2 r^2))`` of random colours laid over a base.

Every pattern blends two colours of contrasting brightness (one dark, one light), so a textured
image always has clear spatial variation. Coordinates are ``(j + 1/2, i + 1/2) / max(H, W)``
(the pixel-centre convention). Random numbers come from a CPU ``torch.Generator`` and are moved
to ``device``, so a seed gives the same images on every device; all the pixel work is tensor
code (a loop over the four kinds, the octaves and a handful of blobs only).

Public API: :func:`hsv_to_rgb`, :func:`random_palette`, :func:`value_noise`,
:func:`noise_texture`, :func:`noise_volume`, :func:`stripes`, :func:`checkerboard`,
:func:`blobs`, :func:`flat`, :func:`procedural_backgrounds`, :data:`BACKGROUND_KINDS`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lessons.checks import check_shape, check_floating

__all__ = [
    "BACKGROUND_KINDS",
    "hsv_to_rgb",
    "random_palette",
    "value_noise",
    "noise_texture",
    "noise_volume",
    "stripes",
    "checkerboard",
    "blobs",
    "flat",
    "procedural_backgrounds",
]

BACKGROUND_KINDS = ("flat", "noise", "stripes", "checkerboard", "blobs")


def _check_sizes(**sizes) -> None:
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, received {v!r}")


def _check_count(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected a non-negative int, received {n!r}")


def _rand(generator, *shape, device=None, dtype=torch.float32):
    """Uniform numbers drawn on the generator's device (CPU by default) in float32, then moved to
    ``device`` and cast to ``dtype``: the same seed gives the same pattern on every device and dtype."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(*shape, generator=generator, device=gdev, dtype=torch.float32).to(device=device, dtype=dtype)


def _uniform(generator, low, high, *shape, device=None, dtype=torch.float32):
    return low + (high - low) * _rand(generator, *shape, device=device, dtype=dtype)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Convert HSV (each in ``[0, 1]``; hue in turns) to RGB in ``[0, 1]``.

    ``rgb_c = v - v s max(0, min(k_c, 4 - k_c, 1))`` with ``k_c = (n_c + 6 h) mod 6`` and
    ``n = (5, 3, 1)`` for ``(r, g, b)``.

    Shapes:
        hsv: (..., 3) -> (..., 3)

    Raises:
        ValueError: ``hsv`` is not a floating tensor of shape ``(..., 3)``.
    """
    check_shape(hsv, "* 3", "hsv")
    check_floating(hsv, "hsv")
    h, s, v = hsv.unbind(-1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device)
    k = (n + 6.0 * h[..., None]) % 6.0  # (..., 3)
    return v[..., None] - (v * s)[..., None] * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


def random_palette(
    n: int,
    generator: torch.Generator | None = None,
    saturation=(0.25, 0.9),
    value=(0.25, 0.95),
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """``n`` random RGB colours: hue uniform, saturation and value uniform in the given ranges.

    Shapes:
        returns (n, 3) in [0, 1]

    Raises:
        ValueError: ``n`` negative, or a range outside ``[0, 1]``.
    """
    _check_count(n)
    for name, (lo, hi) in (("saturation", saturation), ("value", value)):
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"{name}: expected 0 <= low <= high <= 1, received {(lo, hi)}")
    u = _rand(generator, n, 3, device=device, dtype=dtype)
    hsv = torch.stack(
        [u[:, 0], saturation[0] + (saturation[1] - saturation[0]) * u[:, 1], value[0] + (value[1] - value[0]) * u[:, 2]], -1
    )
    return hsv_to_rgb(hsv)


def _contrasting_pair(n, generator, device, dtype):
    """Two colours per image, one dark (value 0.1-0.45) and one light (0.6-1.0), in random order."""
    dark = random_palette(n, generator, value=(0.1, 0.45), device=device, dtype=dtype)
    light = random_palette(n, generator, value=(0.6, 1.0), device=device, dtype=dtype)
    swap = _rand(generator, n, 1, device=device, dtype=dtype) < 0.5
    return torch.where(swap, light, dark), torch.where(swap, dark, light)


def _blend(t: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
    """t (n, 1, H, W) in [0, 1], colours (n, 3) -> (1 - t) c0 + t c1: (n, 3, H, W)."""
    return c0[:, :, None, None] + t * (c1 - c0)[:, :, None, None]


def _coords(height, width, device, dtype):
    """Pixel centres scaled by the longer side: x (1, 1, 1, W), y (1, 1, H, 1)."""
    s = float(max(height, width))
    x = (torch.arange(width, device=device, dtype=dtype) + 0.5) / s
    y = (torch.arange(height, device=device, dtype=dtype) + 0.5) / s
    return x.view(1, 1, 1, width), y.view(1, 1, height, 1)


def value_noise(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    octaves: int = 4,
    base_cells: int = 3,
    persistence: float = 0.55,
    channels: int = 1,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Fractal value noise, each image stretched to ``[0, 1]``.

    ``n(x) = sum_{o < octaves} persistence^o L_o(x)``, where ``L_o`` is a lattice of
    ``(base_cells 2^o + 1)^2`` uniform values upsampled bicubically to the image.

    Shapes:
        returns (n, channels, height, width)

    Raises:
        ValueError: non-positive sizes or octaves, ``n`` negative.
    """
    _check_count(n)
    _check_sizes(height=height, width=width, octaves=octaves, base_cells=base_cells, channels=channels)
    out = torch.zeros(n, channels, height, width, device=device, dtype=dtype)
    for o in range(octaves):
        cells = base_cells * 2**o
        lattice = _rand(generator, n, channels, cells + 1, cells + 1, device=device, dtype=dtype)
        out = out + persistence**o * F.interpolate(lattice, size=(height, width), mode="bicubic", align_corners=False)
    lo = out.amin(dim=(2, 3), keepdim=True)
    hi = out.amax(dim=(2, 3), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-6)


def noise_texture(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    octaves: int = 5,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """A rich colour texture: fractal noise between two contrasting colours, plus fine colour grain.

    ``T = (1 - n) c_0 + n c_1 + 0.15 (g - 1/2)``, ``n`` from :func:`value_noise` with a random
    number of cells (2 to 8), ``g`` a 3-channel fine noise; clipped to ``[0, 1]``.

    Shapes:
        returns (n, 3, height, width) in [0, 1]

    Raises:
        ValueError: non-positive sizes or octaves, ``n`` negative.
    """
    _check_count(n)
    _check_sizes(height=height, width=width, octaves=octaves)
    c0, c1 = _contrasting_pair(n, generator, device, dtype)
    base = int(2 + 7 * float(_rand(generator, 1)))  # one lattice size per call
    t = value_noise(n, height, width, generator, octaves, base_cells=base, device=device, dtype=dtype)
    grain = value_noise(n, height, width, generator, 2, base_cells=max(8, min(height, width) // 4), channels=3, device=device, dtype=dtype)
    return (_blend(t, c0, c1) + 0.15 * (grain - 0.5)).clamp(0, 1)


def noise_volume(
    n: int,
    size: int,
    generator: torch.Generator | None = None,
    octaves: int = 3,
    base_cells: int = 3,
    persistence: float = 0.5,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Fractal 3D value noise on a ``size^3`` grid, stretched to ``[0, 1]`` (a solid texture).

    Sampled with ``grid_sample`` at ``2 X`` it textures any surface point ``X`` of
    ``[-1/2, 1/2]^3`` without UV coordinates. Layout ``(n, 1, D, H, W)`` with D/H/W = z/y/x.

    Shapes:
        returns (n, 1, size, size, size)

    Raises:
        ValueError: non-positive sizes or octaves, ``n`` negative.
    """
    _check_count(n)
    _check_sizes(size=size, octaves=octaves, base_cells=base_cells)
    out = torch.zeros(n, 1, size, size, size, device=device, dtype=dtype)
    for o in range(octaves):
        cells = base_cells * 2**o
        lattice = _rand(generator, n, 1, cells + 1, cells + 1, cells + 1, device=device, dtype=dtype)
        out = out + persistence**o * F.interpolate(lattice, size=(size,) * 3, mode="trilinear", align_corners=False)
    lo = out.amin(dim=(2, 3, 4), keepdim=True)
    hi = out.amax(dim=(2, 3, 4), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-6)


def stripes(n: int, height: int, width: int, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Stripes at a random angle, period (5-40 % of the image) and phase; half soft, half hard.

    ``s = 1/2 + 1/2 sin(2 pi (x cos a + y sin a) / period + phase)``; hard stripes threshold
    ``s`` at a random duty cycle.

    Shapes:
        returns (n, 3, height, width) in [0, 1]

    Raises:
        ValueError: non-positive sizes, ``n`` negative.
    """
    _check_count(n)
    _check_sizes(height=height, width=width)
    c0, c1 = _contrasting_pair(n, generator, device, dtype)
    u = _rand(generator, n, 5, device=device, dtype=dtype).view(n, 5, 1, 1)
    angle, period, phase = math.pi * u[:, 0:1], 0.05 + 0.35 * u[:, 1:2], 2 * math.pi * u[:, 2:3]
    hard, duty = u[:, 3:4] < 0.5, 0.3 + 0.4 * u[:, 4:5]
    x, y = _coords(height, width, device, dtype)
    s = 0.5 + 0.5 * torch.sin(2 * math.pi * (x * angle.cos() + y * angle.sin()) / period + phase)  # (n, 1, H, W)
    s = torch.where(hard, (s > duty).to(dtype), s)
    return _blend(s, c0, c1)


def checkerboard(n: int, height: int, width: int, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Checkerboards rotated by a random angle, with cells of 4-30 % of the image and a random offset.

    Shapes:
        returns (n, 3, height, width) in [0, 1]

    Raises:
        ValueError: non-positive sizes, ``n`` negative.
    """
    _check_count(n)
    _check_sizes(height=height, width=width)
    c0, c1 = _contrasting_pair(n, generator, device, dtype)
    u = _rand(generator, n, 4, device=device, dtype=dtype).view(n, 4, 1, 1)
    angle, cell = 0.5 * math.pi * u[:, 0:1], 0.04 + 0.26 * u[:, 1:2]
    x, y = _coords(height, width, device, dtype)
    xr = x * angle.cos() + y * angle.sin() + u[:, 2:3]
    yr = -x * angle.sin() + y * angle.cos() + u[:, 3:4]
    t = ((torch.floor(xr / cell) + torch.floor(yr / cell)) % 2).to(dtype)  # (n, 1, H, W)
    return _blend(t, c0, c1)


def blobs(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    count: int = 6,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """``count`` soft Gaussian blobs of random colours, centres and radii (5-25 %) over a base colour.

    Blob ``k`` is laid over the image so far with opacity ``exp(-|x - m_k|^2 / (2 r_k^2))``.
    The base is dark when the first blob colour is light and vice versa.

    Shapes:
        returns (n, 3, height, width) in [0, 1]

    Raises:
        ValueError: non-positive sizes or count, ``n`` negative.
    """
    _check_count(n)
    _check_sizes(height=height, width=width, count=count)
    base, first = _contrasting_pair(n, generator, device, dtype)
    colors = torch.cat([first[:, None], random_palette(n * (count - 1), generator, device=device, dtype=dtype).view(n, count - 1, 3)], 1)
    u = _rand(generator, n, count, 3, device=device, dtype=dtype)
    x, y = _coords(height, width, device, dtype)
    aspect_w, aspect_h = width / max(height, width), height / max(height, width)
    img = base[:, :, None, None].expand(n, 3, height, width)
    for k in range(count):  # a handful of blobs
        mx, my = u[:, k, 0].view(n, 1, 1, 1) * aspect_w, u[:, k, 1].view(n, 1, 1, 1) * aspect_h
        r = (0.05 + 0.2 * u[:, k, 2]).view(n, 1, 1, 1)
        a = torch.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * r**2))  # (n, 1, H, W)
        img = a * colors[:, k, :, None, None] + (1 - a) * img
    return img


def flat(n: int, height: int, width: int, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Flat colours from :func:`random_palette` (value 0.15-1.0).

    Shapes:
        returns (n, 3, height, width)

    Raises:
        ValueError: non-positive sizes, ``n`` negative.
    """
    _check_count(n)
    _check_sizes(height=height, width=width)
    c = random_palette(n, generator, saturation=(0.0, 0.8), value=(0.15, 1.0), device=device, dtype=dtype)
    return c[:, :, None, None].expand(n, 3, height, width).contiguous()


_MAKERS = {"flat": flat, "noise": noise_texture, "stripes": stripes, "checkerboard": checkerboard, "blobs": blobs}


def procedural_backgrounds(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    textured_fraction: float = 0.8,
    return_kind: bool = False,
    device=None,
    dtype=torch.float32,
):
    """``n`` backgrounds: each textured with probability ``textured_fraction``, else a flat colour.

    A textured background is one of noise, stripes, checkerboard or blobs, with equal
    probability. The kinds are drawn first, then each kind is painted for all its images at once.

    Shapes:
        returns (n, 3, height, width) in [0, 1]; with ``return_kind`` also kind (n,) int64
        indexing :data:`BACKGROUND_KINDS`

    Raises:
        ValueError: non-positive sizes, ``n`` negative, ``textured_fraction`` outside [0, 1].
    """
    _check_count(n)
    _check_sizes(height=height, width=width)
    if not 0.0 <= float(textured_fraction) <= 1.0:
        raise ValueError(f"textured_fraction: expected a number in [0, 1], received {textured_fraction!r}")
    u = _rand(generator, n, 2, dtype=torch.float64)  # on CPU: the kinds decide the work below
    textured = u[:, 0] < textured_fraction
    kind = torch.where(textured, 1 + (u[:, 1] * 4).long().clamp(max=3), torch.zeros(n, dtype=torch.long))
    out = torch.empty(n, 3, height, width, device=device, dtype=dtype)
    for k, name in enumerate(BACKGROUND_KINDS):
        idx = (kind == k).nonzero().squeeze(1)
        if idx.numel():
            out[idx.to(out.device)] = _MAKERS[name](idx.numel(), height, width, generator, device=device, dtype=dtype)
    return (out, kind.to(out.device)) if return_kind else out
