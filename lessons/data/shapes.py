"""Procedural furniture: six categories of shapes built from parametric parts.

The course trains on shapes that a few lines of code can make, so every reader has the same data
offline. Each shape is a **union of parts**: boxes, and cylinders where natural (legs, columns,
round table tops). A category is a small program that turns a dictionary of parameters (sizes in
metres, counts, style switches) into parts and named 3D keypoints.

Categories (the six IKEA categories of the 3D-VAE-GAN table): ``bed, bookcase, chair, desk,
sofa, table``; each has at least three structural variants (see :data:`PARAM_SPECS`).

Conventions (book/notation.md):

* the object frame is right-handed, **+y up**, the floor is ``y = 0`` before normalisation,
  and every object **faces +z**: a chair's seat opens towards +z and its back is at -z;
* **left** is the object's own left, as seen by someone sitting in (or using) it while facing
  +z. Facing +z with +y up, the right hand points to -x, so **left = +x**. A camera at azimuth 0
  looks at the object's front, so the object's left appears on the right of its image (as a
  person facing you has their left hand on your right);
* no shape is invariant under a half turn about y: chairs and sofas have a back at -z, beds a
  headboard at -z, bookcases a back panel at -z and an open front, desks a drawer block on one
  side and drawer fronts at +z, tables a drawer hanging under the front edge;
* **normalisation**: the assembled mesh's axis-aligned bounding box is centred at the origin
  and scaled uniformly so that its longest side is ``0.9`` (:data:`EXTENT`), i.e. a margin of
  0.05 on each side of the cube ``[-1/2, 1/2]^3``. The floor is therefore *not* at a fixed
  height: it sits at ``-scale * height / 2``. Parts and keypoints undergo the same transform
  ``X_norm = scale * (X_raw - offset)``.

Voxels are computed **analytically** from the parts, not from the mesh: every voxel is split into
``s^3`` sub-cells (``s = 2`` by default) and a sub-cell counts as inside when its centre is inside
some part (inside-box / inside-cylinder tests). The fractional occupancy is the fraction of
sub-cells inside; the binary grid marks a voxel occupied when **any** of its sub-cells is inside.
That rule, with parts thinner than one sub-cell thickened to one sub-cell, keeps every part
visible (thin legs and back panels survive at 32^3) and grows each part by at most ``1/(2s)``
voxel per side.

Splits are decided by the shape parameters: the parameter vector is quantised (4 bins over each
continuous range, integers as they are) and hashed (BLAKE2b); the hash decides train (80 %),
val (10 %) or test (10 %). Two shapes with the same quantised parameters therefore always fall
in the same split, and :func:`shape_seeds` scans seeds 0, 1, 2, ... keeping those whose
parameters land in the requested split.

Public API: :data:`CATEGORIES`, :data:`PARAM_SPECS`, :data:`KEYPOINT_NAMES`,
:data:`KEYPOINT_EDGES`, :class:`Shape`, :func:`sample_params`, :func:`default_params`,
:func:`make_shape`, :func:`random_shape`, :func:`param_key`, :func:`split_of`,
:func:`shape_seeds`, :func:`shape_batch`, :func:`voxel_dataset`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch

from lessons.checks import check_shape

__all__ = [
    "CATEGORIES",
    "EXTENT",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "ParamSpec",
    "PARAM_SPECS",
    "KEYPOINT_NAMES",
    "KEYPOINT_EDGES",
    "Parts",
    "Shape",
    "sample_params",
    "default_params",
    "make_shape",
    "random_shape",
    "param_key",
    "split_of",
    "shape_seeds",
    "shape_batch",
    "voxel_dataset",
]

CATEGORIES = ("bed", "bookcase", "chair", "desk", "sofa", "table")
EXTENT = 0.9  # longest side of a normalised shape; margin (1 - EXTENT) / 2 = 0.05 per side
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
CYLINDER_SEGMENTS = 16  # polygon sides of a cylinder's mesh (its voxels are exact circles)

BOX, CYLINDER = 0, 1


# ----------------------------------------------------------------------------------------------
# Parameter distributions
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One shape parameter, drawn uniformly from ``[low, high]`` (integers: each value equally)."""

    name: str
    low: float
    high: float
    integer: bool = False
    unit: str = "m"
    doc: str = ""


def _f(name, low, high, doc, unit="m"):
    return ParamSpec(name, float(low), float(high), False, unit, doc)


def _i(name, low, high, doc):
    return ParamSpec(name, int(low), int(high), True, "", doc)


PARAM_SPECS: dict[str, tuple[ParamSpec, ...]] = {
    "chair": (
        _f("seat_width", 0.40, 0.56, "seat extent along x"),
        _f("seat_depth", 0.38, 0.52, "seat extent along z"),
        _f("seat_height", 0.40, 0.50, "floor to the top of the seat"),
        _f("seat_thickness", 0.03, 0.08, "seat board thickness"),
        _f("back_height", 0.28, 0.55, "back length above the seat, along the (tilted) back"),
        _f("back_thickness", 0.02, 0.06, "back panel thickness"),
        _f("back_tilt", 0.0, 0.30, "backwards tilt of the back", "rad"),
        _i("back_style", 0, 2, "0 solid panel, 1 ladder (two posts and two rails), 2 posts with an upper panel"),
        _i("leg_style", 0, 2, "0 four legs, 1 sled (two floor bars and four uprights), 2 pedestal with four spokes"),
        _f("leg_thickness", 0.025, 0.05, "leg side (box) or diameter (round)"),
        _i("leg_round", 0, 1, "1 round legs and bars, 0 square"),
        _i("stretchers", 0, 1, "four-leg chairs: 1 adds side stretchers and a cross bar set towards the back"),
        _i("has_arms", 0, 1, "1 adds two armrests on front posts"),
        _f("arm_height", 0.17, 0.26, "armrest height above the seat"),
        _f("arm_width", 0.035, 0.07, "armrest width"),
    ),
    "table": (
        _i("top_shape", 0, 1, "0 rectangular top, 1 round/oval top"),
        _f("width", 0.70, 1.80, "top extent along x"),
        _f("depth_ratio", 0.50, 1.00, "top depth (z) as a fraction of the width", ""),
        _f("height", 0.62, 0.78, "floor to the top surface"),
        _f("top_thickness", 0.02, 0.06, "top thickness"),
        _i("leg_style", 0, 2, "0 four legs, 1 pedestal with four spokes, 2 trestle (end supports and a stretcher set towards the back)"),
        _f("leg_thickness", 0.03, 0.08, "leg side or diameter"),
        _i("leg_round", 0, 1, "1 round legs, 0 square"),
        _i("apron", 0, 1, "rectangular tops with four legs: 1 adds apron rails on the sides and back"),
        _f("apron_height", 0.05, 0.12, "apron rail height"),
        _f("drawer_width", 0.30, 0.60, "front drawer width as a fraction of the top width", ""),
        _f("drawer_depth", 0.35, 0.70, "front drawer depth as a fraction of the top depth", ""),
        _f("drawer_height", 0.08, 0.15, "front drawer height"),
        _f("drawer_offset", -0.20, 0.20, "front drawer centre along x, as a fraction of the width", ""),
    ),
    "sofa": (
        _f("width", 1.30, 2.40, "extent along x"),
        _f("depth", 0.75, 1.00, "extent along z"),
        _f("seat_height", 0.38, 0.48, "floor to the top of the seat cushions"),
        _f("cushion_thickness", 0.10, 0.20, "seat cushion thickness"),
        _i("leg_style", 0, 1, "0 base on the floor, 1 short legs"),
        _f("leg_height", 0.05, 0.15, "leg height (leg_style 1)"),
        _f("back_height", 0.30, 0.50, "back height above the seat"),
        _f("back_thickness", 0.12, 0.25, "back thickness"),
        _i("arm_style", 0, 2, "0 no arms, 1 low arms, 2 high arms (up to the back's top)"),
        _f("arm_width", 0.08, 0.25, "arm width"),
        _f("arm_height", 0.12, 0.28, "low arm height above the seat"),
        _i("n_cushions", 1, 3, "number of seat cushions"),
        _i("back_cushions", 0, 1, "1 adds tilted back cushions"),
    ),
    "bed": (
        _f("width", 0.90, 1.90, "extent along x"),
        _f("length", 1.90, 2.20, "extent along z"),
        _i("leg_style", 0, 1, "0 short legs, 1 platform base to the floor"),
        _f("leg_height", 0.05, 0.15, "leg height (leg_style 0)"),
        _f("frame_height", 0.20, 0.40, "floor to the top of the frame"),
        _f("mattress_thickness", 0.12, 0.30, "mattress thickness"),
        _i("headboard_style", 0, 2, "0 solid panel, 1 panel between two taller posts, 2 slatted (posts, rails and slats)"),
        _f("headboard_height", 0.45, 1.00, "headboard height above the mattress"),
        _f("headboard_thickness", 0.04, 0.10, "headboard thickness"),
        _i("footboard", 0, 2, "0 none, 1 low footboard, 2 footboard with posts"),
        _f("footboard_height", 0.05, 0.35, "footboard height above the frame top"),
        _i("pillows", 1, 2, "number of pillows (at the head end)"),
    ),
    "bookcase": (
        _f("width", 0.40, 1.20, "extent along x"),
        _f("height", 0.70, 2.00, "extent along y"),
        _f("depth", 0.22, 0.42, "extent along z"),
        _f("board", 0.015, 0.035, "board thickness"),
        _i("n_shelves", 1, 5, "number of interior shelves"),
        _i("columns", 1, 2, "1 or 2 columns (2: a vertical divider)"),
        _i("base_style", 0, 2, "0 bottom board on the floor, 1 plinth with a recessed kick board, 2 short legs"),
        _f("base_height", 0.04, 0.12, "plinth or leg height"),
        _i("doors", 0, 1, "1 closes the lowest compartment with doors"),
        _f("shelf_inset", 0.0, 0.04, "shelves set back from the front"),
    ),
    "desk": (
        _f("width", 1.00, 1.80, "extent along x"),
        _f("depth", 0.50, 0.80, "extent along z"),
        _f("height", 0.70, 0.78, "floor to the top surface"),
        _f("top_thickness", 0.025, 0.05, "top thickness"),
        _i("block_side", 0, 1, "drawer block on 0 the right (-x), 1 the left (+x)"),
        _f("block_width", 0.30, 0.50, "drawer block width"),
        _i("n_drawers", 2, 4, "number of drawers"),
        _i("other_support", 0, 2, "the other side: 0 two legs, 1 solid side panel, 2 T-leg (post on a foot bar)"),
        _i("modesty_panel", 0, 1, "1 adds a panel at the back, under the top"),
        _f("leg_thickness", 0.03, 0.06, "leg side or diameter"),
        _i("leg_round", 0, 1, "1 round legs, 0 square"),
    ),
}


def _check_category(category) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"category: expected one of {CATEGORIES}, received {category!r}")
    return category


def sample_params(category: str, generator: torch.Generator | None = None) -> dict:
    """Draw the parameters of one ``category`` shape from its distribution in :data:`PARAM_SPECS`.

    Every parameter is independent and uniform on its range (integers: each value equally
    likely). One call draws exactly ``len(PARAM_SPECS[category])`` uniforms from ``generator``.

    Shapes:
        returns a dict ``{name: float or int}``.

    Raises:
        ValueError: unknown ``category``.
    """
    specs = PARAM_SPECS[_check_category(category)]
    u = torch.rand(len(specs), generator=generator, dtype=torch.float64).tolist()
    out = {}
    for spec, ui in zip(specs, u):
        if spec.integer:
            out[spec.name] = min(int(spec.low + math.floor(ui * (spec.high - spec.low + 1))), int(spec.high))
        else:
            out[spec.name] = spec.low + ui * (spec.high - spec.low)
    return out


def default_params(category: str) -> dict:
    """The middle of every parameter range (integers rounded down): a typical shape.

    Shapes:
        returns a dict ``{name: float or int}``.

    Raises:
        ValueError: unknown ``category``.
    """
    specs = PARAM_SPECS[_check_category(category)]
    return {s.name: (int((s.low + s.high) // 2) if s.integer else 0.5 * (s.low + s.high)) for s in specs}


def param_key(category: str, params: dict, bins: int = 4) -> tuple:
    """The quantised parameter vector that decides a shape's split.

    A continuous parameter ``v`` in ``[low, high]`` becomes ``floor(bins (v - low) / (high - low))``
    (clamped to ``0 .. bins-1``); an integer parameter is kept as it is.

    Shapes:
        returns a tuple ``(category, q_1, ..., q_P)`` of ints.

    Raises:
        ValueError: unknown ``category`` or a missing parameter.
    """
    specs = PARAM_SPECS[_check_category(category)]
    key = []
    for s in specs:
        if s.name not in params:
            raise ValueError(f"params: expected a value for {s.name!r} ({category}), received keys {sorted(params)}")
        v = params[s.name]
        if s.integer:
            key.append(int(v))
        else:
            q = math.floor(bins * (float(v) - s.low) / (s.high - s.low))
            key.append(min(max(q, 0), bins - 1))
    return (category, *key)


def split_of(category: str, params: dict) -> str:
    """``"train"``, ``"val"`` or ``"test"``: decided by a hash of :func:`param_key`.

    ``u = BLAKE2b(param_key) / 2^64`` in ``[0, 1)``; train if ``u < 0.8``, val if ``u < 0.9``, else test.

    Shapes:
        returns a str.

    Raises:
        ValueError: unknown ``category`` or a missing parameter.
    """
    digest = hashlib.blake2b(repr(param_key(category, params)).encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2.0**64
    edge = 0.0
    for name in SPLITS:
        edge += SPLIT_FRACTIONS[name]
        if u < edge:
            return name
    return SPLITS[-1]


def _seed_generator(category: str, seed: int) -> torch.Generator:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, received {seed!r}")
    return torch.Generator().manual_seed(1_000_003 * (CATEGORIES.index(category) + 1) + seed)


# ----------------------------------------------------------------------------------------------
# Keypoints
# ----------------------------------------------------------------------------------------------

_BOX_CORNER_NAMES = (
    "top_front_left",
    "top_front_right",
    "top_back_left",
    "top_back_right",
    "bottom_front_left",
    "bottom_front_right",
    "bottom_back_left",
    "bottom_back_right",
)
_BOX_CORNER_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7))

KEYPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "chair": (
        "seat_front_left",
        "seat_front_right",
        "seat_back_left",
        "seat_back_right",
        "back_top_left",
        "back_top_right",
        "leg_front_left_bottom",
        "leg_front_right_bottom",
        "leg_back_left_bottom",
        "leg_back_right_bottom",
    ),
    "table": (
        "top_front_left",
        "top_front_right",
        "top_back_left",
        "top_back_right",
        "leg_front_left_bottom",
        "leg_front_right_bottom",
        "leg_back_left_bottom",
        "leg_back_right_bottom",
        "drawer_front_center",
    ),
    "sofa": (
        "seat_front_left",
        "seat_front_right",
        "seat_back_left",
        "seat_back_right",
        "back_top_left",
        "back_top_right",
        "bottom_front_left",
        "bottom_front_right",
        "bottom_back_left",
        "bottom_back_right",
    ),
    "bed": (
        "headboard_top_left",
        "headboard_top_right",
        "mattress_head_left",
        "mattress_head_right",
        "mattress_foot_left",
        "mattress_foot_right",
        "head_bottom_left",
        "head_bottom_right",
        "foot_bottom_left",
        "foot_bottom_right",
    ),
    "bookcase": _BOX_CORNER_NAMES,
    "desk": _BOX_CORNER_NAMES + ("drawer_top_front",),
}
"""Named semantic keypoints per category; ``left`` is the object's own left (+x), ``front`` is +z."""

KEYPOINT_EDGES: dict[str, tuple[tuple[int, int], ...]] = {
    # seat quad, back uprights and top, legs under the seat corners
    "chair": ((0, 1), (1, 3), (3, 2), (2, 0), (2, 4), (3, 5), (4, 5), (0, 6), (1, 7), (2, 8), (3, 9)),
    # top quad, legs under its corners, drawer to the front edge's corners
    "table": ((0, 1), (1, 3), (3, 2), (2, 0), (0, 4), (1, 5), (2, 6), (3, 7), (8, 0), (8, 1)),
    "sofa": ((0, 1), (1, 3), (3, 2), (2, 0), (2, 4), (3, 5), (4, 5), (0, 6), (1, 7), (2, 8), (3, 9), (6, 7), (8, 9)),
    # headboard top and its floor line, mattress quad, the floor outline
    "bed": ((0, 1), (0, 6), (1, 7), (2, 3), (3, 5), (5, 4), (4, 2), (6, 8), (7, 9), (6, 7), (8, 9), (2, 0), (3, 1)),
    "bookcase": _BOX_CORNER_EDGES,
    "desk": _BOX_CORNER_EDGES + ((8, 0), (8, 1)),
}
"""Skeleton per category: pairs of indices into :data:`KEYPOINT_NAMES` (for drawing and 3D-INN)."""


# ----------------------------------------------------------------------------------------------
# Parts and the builder
# ----------------------------------------------------------------------------------------------


def _rx(a: float):
    c, s = math.cos(a), math.sin(a)
    return ((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c))


def _ry(a: float):
    c, s = math.cos(a), math.sin(a)
    return ((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c))


def _rz(a: float):
    c, s = math.cos(a), math.sin(a)
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


_I3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
_AXIS_ROT = {"y": _I3, "x": _rz(-math.pi / 2), "z": _rx(math.pi / 2)}  # local y -> that axis


def _mv(m, v):
    return tuple(m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2] for r in range(3))


def _add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


@dataclass
class Parts:
    """The analytic parts of a shape, in its (normalised) object frame.

    A part is the image of a canonical solid under ``X = rotation @ X_local + center``: a box
    ``|X_local| <= half`` (per axis) or a cylinder along the local y axis,
    ``(x/half_x)^2 + (z/half_z)^2 <= 1, |y| <= half_y`` (elliptic when ``half_x != half_z``).

    Shapes:
        kind (P,) int64 (0 box, 1 cylinder); center (P, 3); half (P, 3); rotation (P, 3, 3).
    """

    kind: torch.Tensor
    center: torch.Tensor
    half: torch.Tensor
    rotation: torch.Tensor
    names: list

    def __len__(self) -> int:
        return len(self.names)

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """Which parts contain each point: ``(..., 3) -> (..., P)`` bool.

        Raises:
            ValueError: ``points`` is not ``(..., 3)``.
        """
        check_shape(points, "* 3", "points")
        p = points.to(self.center.dtype)
        local = torch.einsum("...pi,pij->...pj", p[..., None, :] - self.center, self.rotation)  # (..., P, 3)
        return _inside(local, self.half, self.kind)


def _inside(local: torch.Tensor, half: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    in_box = (local.abs() <= half).all(-1)
    disc = (local[..., 0] / half[..., 0]) ** 2 + (local[..., 2] / half[..., 2]) ** 2
    in_cyl = (disc <= 1.0) & (local[..., 1].abs() <= half[..., 1])
    return torch.where(kind == CYLINDER, in_cyl, in_box)


class _Builder:
    """Collects parts (in metres, Python floats) and keypoints for one shape."""

    def __init__(self):
        self.kind, self.center, self.half, self.rot, self.names = [], [], [], [], []
        self.kp = {}

    def box(self, name, center, size, rot=_I3):
        self.kind.append(BOX)
        self.center.append(tuple(float(c) for c in center))
        self.half.append(tuple(0.5 * float(s) for s in size))
        self.rot.append(rot)
        self.names.append(name)

    def cylinder(self, name, center, radius, length, axis="y", radius_z=None, rot=None):
        rz = radius if radius_z is None else radius_z
        self.kind.append(CYLINDER)
        self.center.append(tuple(float(c) for c in center))
        self.half.append((float(radius), 0.5 * float(length), float(rz)))
        self.rot.append(_AXIS_ROT[axis] if rot is None else rot)
        self.names.append(name)

    def leg(self, name, center, thickness, length, round_, axis="y"):
        if round_:
            self.cylinder(name, center, 0.5 * thickness, length, axis)
        else:
            size = {"y": (thickness, length, thickness), "x": (length, thickness, thickness), "z": (thickness, thickness, length)}[axis]
            self.box(name, center, size)

    def framed(self, origin, rot):
        """A helper placing boxes in a rotated local frame (origin, rot)."""

        def place(name, local_center, size):
            self.box(name, _add(origin, _mv(rot, local_center)), size, rot)

        return place


# ----------------------------------------------------------------------------------------------
# The six categories (all sizes in metres; floor at y = 0, front at +z, left at +x)
# ----------------------------------------------------------------------------------------------


def _chair(p: dict, b: _Builder) -> None:
    sw, sd, sh, st = p["seat_width"], p["seat_depth"], p["seat_height"], p["seat_thickness"]
    bh, bt, tilt = p["back_height"], p["back_thickness"], p["back_tilt"]
    lt, rnd = p["leg_thickness"], bool(p["leg_round"])
    b.box("seat", (0, sh - st / 2, 0), (sw, st, sd))
    # the back pivots about the seat's back bottom edge; rot_x(-tilt) sends its top towards -z
    rot = _rx(-tilt)
    origin = (0.0, sh - st, -sd / 2 + bt / 2)
    place = b.framed(origin, rot)
    length = bh + st
    pw = max(bt, 0.035)  # post width of the ladder / post styles
    if p["back_style"] == 0:
        place("back", (0, length / 2, 0), (sw, length, bt))
    else:
        for side, x in (("left", sw / 2 - pw / 2), ("right", -sw / 2 + pw / 2)):
            place(f"back_post_{side}", (x, length / 2, 0), (pw, length, bt))
        inner = sw - 2 * pw
        if p["back_style"] == 1:
            rail = 0.25 * bh
            place("back_rail_top", (0, length - rail / 2, 0), (inner, rail, bt * 0.8))
            place("back_rail_middle", (0, st + 0.45 * bh, 0), (inner, 0.5 * rail, bt * 0.8))
        else:
            panel = 0.55 * bh
            place("back_panel", (0, length - panel / 2, 0), (inner, panel, bt * 0.8))
    top = _add(origin, _mv(rot, (0.0, length, 0.0)))
    b.kp["back_top_left"] = _add(top, _mv(rot, (sw / 2 - pw / 2, -0.01, 0.0)))
    b.kp["back_top_right"] = _add(top, _mv(rot, (-sw / 2 + pw / 2, -0.01, 0.0)))
    # seat corners on its top face; the back ones where the seat meets the back's front face
    for zn, z in (("front", sd / 2), ("back", -sd / 2 + bt)):
        for xn, x in (("left", sw / 2), ("right", -sw / 2)):
            b.kp[f"seat_{zn}_{xn}"] = (x, sh, z)

    under = sh - st  # bottom of the seat
    inset = 0.01
    lx, lz = sw / 2 - lt / 2 - inset, sd / 2 - lt / 2 - inset
    style = p["leg_style"]
    if style == 0:  # four legs
        for zn, z in (("front", lz), ("back", -lz)):
            for xn, x in (("left", lx), ("right", -lx)):
                b.leg(f"leg_{zn}_{xn}", (x, under / 2, z), lt, under, rnd)
                b.kp[f"leg_{zn}_{xn}_bottom"] = (x, 0.0, z)
        if p["stretchers"]:
            y, s = 0.3 * under, 0.7 * lt
            for xn, x in (("left", lx), ("right", -lx)):
                b.leg(f"stretcher_{xn}", (x, y, 0), s, 2 * lz, rnd, axis="z")
            b.leg("stretcher_cross", (0, y, -0.35 * lz), s, 2 * lx, rnd, axis="x")  # set back: not symmetric
    elif style == 1:  # sled: two floor bars along z and four uprights
        bar = 0.8 * lt
        for xn, x in (("left", lx), ("right", -lx)):
            b.leg(f"sled_bar_{xn}", (x, bar / 2, 0), bar, 2 * lz + lt, rnd, axis="z")
            for zn, z in (("front", lz), ("back", -lz)):
                b.leg(f"upright_{zn}_{xn}", (x, (under + bar) / 2, z), 0.8 * lt, under - bar, rnd)
                b.kp[f"leg_{zn}_{xn}_bottom"] = (x, 0.0, z + (lt / 2 if zn == "front" else -lt / 2) * 0.8)
    else:  # pedestal: column on two crossing spokes
        spoke_h, spoke_w = 0.04, 0.05
        reach = 0.5 * math.hypot(sw, sd) * 0.95
        for name, a in (("spoke_a", math.pi / 4), ("spoke_b", -math.pi / 4)):
            b.box(name, (0, spoke_h / 2, 0), (2 * reach, spoke_h, spoke_w), _ry(a))
        col_r = max(0.6 * lt, 0.025)
        b.cylinder("column", (0, (under + spoke_h) / 2, 0), col_r, under - spoke_h)
        b.box("seat_plate", (0, under - 0.015, 0), (0.5 * sw, 0.03, 0.5 * sd))
        d = (reach - 0.02) / math.sqrt(2)
        for zn, z in (("front", d), ("back", -d)):
            for xn, x in (("left", d), ("right", -d)):
                b.kp[f"leg_{zn}_{xn}_bottom"] = (x, 0.0, z)
    if p["has_arms"]:
        ah, aw = p["arm_height"], p["arm_width"]
        arm_len = 0.85 * sd
        for xn, x in (("left", sw / 2 - aw / 2), ("right", -sw / 2 + aw / 2)):
            b.box(f"armrest_{xn}", (x, sh + ah - 0.0125, -sd / 2 + arm_len / 2), (aw, 0.025, arm_len))
            post = 0.7 * aw
            b.leg(f"arm_post_{xn}", (x, sh + (ah - 0.025) / 2, -sd / 2 + arm_len - aw / 2), post, ah - 0.025, rnd)


def _table(p: dict, b: _Builder) -> None:
    w, h, tt = p["width"], p["height"], p["top_thickness"]
    d = w * p["depth_ratio"]
    lt, rnd = p["leg_thickness"], bool(p["leg_round"])
    round_top = p["top_shape"] == 1
    if round_top:
        b.cylinder("top", (0, h - tt / 2, 0), w / 2, tt, radius_z=d / 2)
        c = 0.98 / math.sqrt(2)  # the top's rim at 45 degrees, a hair inside
        corners = {("front", "left"): (c * w / 2, c * d / 2), ("front", "right"): (-c * w / 2, c * d / 2),
                   ("back", "left"): (c * w / 2, -c * d / 2), ("back", "right"): (-c * w / 2, -c * d / 2)}
        lx, lz = 0.55 * w / 2, 0.55 * d / 2
        front_z = 0.8 * d / 2  # the drawer's front face, well inside the rim
    else:
        b.box("top", (0, h - tt / 2, 0), (w, tt, d))
        corners = {(zn, xn): (sx * w / 2, sz * d / 2) for zn, sz in (("front", 1), ("back", -1)) for xn, sx in (("left", 1), ("right", -1))}
        lx, lz = w / 2 - lt / 2 - 0.03, d / 2 - lt / 2 - 0.03
        front_z = d / 2 - 0.02
    for (zn, xn), (x, z) in corners.items():
        b.kp[f"top_{zn}_{xn}"] = (x, h, z)
    under = h - tt
    style = p["leg_style"]
    if style == 0:
        for zn, z in (("front", lz), ("back", -lz)):
            for xn, x in (("left", lx), ("right", -lx)):
                b.leg(f"leg_{zn}_{xn}", (x, under / 2, z), lt, under, rnd)
                b.kp[f"leg_{zn}_{xn}_bottom"] = (x, 0.0, z)
        if p["apron"] and not round_top:
            ah, at = p["apron_height"], 0.02
            y = under - ah / 2
            for xn, x in (("left", lx), ("right", -lx)):
                b.box(f"apron_{xn}", (x, y, 0), (at, ah, 2 * lz))
            b.box("apron_back", (0, y, -lz), (2 * lx, ah, at))
    elif style == 1:
        spoke_h = 0.05
        reach = 0.42 * math.hypot(w, d) if not round_top else 0.4 * max(w, d)
        reach = min(reach, 0.45 * math.hypot(w, d))
        for name, a in (("foot_a", math.pi / 4), ("foot_b", -math.pi / 4)):
            b.box(name, (0, spoke_h / 2, 0), (2 * reach, spoke_h, max(lt, 0.05)), _ry(a))
        col_r = max(lt, 0.05)
        b.cylinder("column", (0, (under + spoke_h) / 2, 0), col_r, under - spoke_h)
        b.box("top_plate", (0, under - 0.015, 0), (0.4 * w, 0.03, 0.4 * d))
        e = (reach - 0.02) / math.sqrt(2)
        for zn, z in (("front", e), ("back", -e)):
            for xn, x in (("left", e), ("right", -e)):
                b.kp[f"leg_{zn}_{xn}_bottom"] = (x, 0.0, z)
    else:  # trestle: an upright slab per end on a foot bar, a stretcher set towards the back
        foot_h, foot_len = 0.05, 0.8 * d
        slab_d = 0.35 * d
        ex = lx if not round_top else 0.6 * w / 2
        for xn, x in (("left", ex), ("right", -ex)):
            b.box(f"foot_{xn}", (x, foot_h / 2, 0), (1.5 * lt, foot_h, foot_len))
            b.box(f"trestle_{xn}", (x, (under + foot_h) / 2, 0), (lt, under - foot_h, slab_d))
            for zn, z in (("front", foot_len / 2 - 0.02), ("back", -foot_len / 2 + 0.02)):
                b.kp[f"leg_{zn}_{xn}_bottom"] = (x, 0.0, z)
        b.box("stretcher", (0, 0.3 * under, -0.3 * slab_d), (2 * ex, 0.06, 0.03))
    # the drawer hangs under the front edge: the table's front is unique
    dw, dd, dh = p["drawer_width"] * w, p["drawer_depth"] * d, p["drawer_height"]
    if round_top:
        dw = min(dw, 0.8 * w)
    dx = p["drawer_offset"] * w
    dx = max(min(dx, w / 2 - dw / 2 - 0.02), -(w / 2 - dw / 2 - 0.02))
    b.box("drawer", (dx, under - dh / 2, front_z - dd / 2), (dw, dh, dd))
    b.box("drawer_handle", (dx, under - dh / 2, front_z + 0.01), (min(0.12, 0.4 * dw), 0.015, 0.02))
    b.kp["drawer_front_center"] = (dx, under - dh / 2, front_z - 0.005)


def _sofa(p: dict, b: _Builder) -> None:
    w, d, sh, ct = p["width"], p["depth"], p["seat_height"], p["cushion_thickness"]
    bh, bt, aw = p["back_height"], p["back_thickness"], p["arm_width"]
    legs = p["leg_style"] == 1
    y0 = p["leg_height"] if legs else 0.0
    base_top = sh - ct
    arms = p["arm_style"]
    inner = w - 2 * aw if arms else w
    b.box("base", (0, (y0 + base_top) / 2, bt / 2), (inner, base_top - y0, d - bt))
    b.box("back", (0, (y0 + sh + bh) / 2, -d / 2 + bt / 2), (w, sh + bh - y0, bt))
    if arms:
        top = sh + (p["arm_height"] if arms == 1 else bh)
        for xn, x in (("left", w / 2 - aw / 2), ("right", -w / 2 + aw / 2)):
            b.box(f"arm_{xn}", (x, (y0 + top) / 2, bt / 2 if arms == 2 else 0.0), (aw, top - y0, d - bt if arms == 2 else d))
    n = int(p["n_cushions"])
    gap = 0.01
    cw = (inner - (n - 1) * gap) / n
    cz = (d - bt) + 0.02  # the cushions reach 2 cm past the base
    for k in range(n):
        x = -inner / 2 + cw / 2 + k * (cw + gap)
        b.box(f"cushion_{k}", (x, base_top + ct / 2, -d / 2 + bt + cz / 2), (cw, ct, cz))
    back_face = -d / 2 + bt  # where the seat meets the back (or the back cushions)
    if p["back_cushions"]:
        rot = _rx(-0.2)
        bct = min(0.12, 0.6 * bt)
        origin = (0.0, sh, -d / 2 + bt + bct / 2 + 0.03)
        place = b.framed(origin, rot)
        for k in range(n):
            x = -inner / 2 + cw / 2 + k * (cw + gap)
            place(f"back_cushion_{k}", (x, 0.45 * bh, 0), (cw, 0.9 * bh, bct))
        back_face = origin[2] + bct / 2
    for zn, z in (("front", d / 2 + 0.02), ("back", back_face)):
        for xn, x in (("left", inner / 2), ("right", -inner / 2)):
            b.kp[f"seat_{zn}_{xn}"] = (x, sh, z)
    for xn, x in (("left", w / 2 - 0.01), ("right", -w / 2 + 0.01)):
        b.kp[f"back_top_{xn}"] = (x, sh + bh, -d / 2 + bt / 2)
    lx = (w if arms else inner) / 2 - 0.04
    for zn, z in (("front", d / 2 - 0.04), ("back", -d / 2 + 0.04)):
        for xn, x in (("left", lx), ("right", -lx)):
            if legs:
                b.leg(f"leg_{zn}_{xn}", (x, y0 / 2, z), 0.05, y0, True)
            b.kp[f"bottom_{zn}_{xn}"] = (x, 0.0, z)


def _bed(p: dict, b: _Builder) -> None:
    w, L, fh, mt = p["width"], p["length"], p["frame_height"], p["mattress_thickness"]
    ht = p["headboard_thickness"]
    platform = p["leg_style"] == 1
    y0 = 0.0 if platform else p["leg_height"]
    fb = p["footboard"]
    ft = 0.04 if fb else 0.0
    frame_z0, frame_z1 = -L / 2 + ht, L / 2 - ft
    b.box("frame", (0, (y0 + fh) / 2, (frame_z0 + frame_z1) / 2), (w, fh - y0, frame_z1 - frame_z0))
    mz0, mz1 = frame_z0 + 0.01, frame_z1 - 0.01
    b.box("mattress", (0, fh + mt / 2, (mz0 + mz1) / 2), (w - 0.04, mt, mz1 - mz0))
    top = fh + mt + p["headboard_height"]
    hz = -L / 2 + ht / 2
    style = p["headboard_style"]
    post = 0.08
    if style == 0:
        b.box("headboard", (0, top / 2, hz), (w, top, ht))
        kx = w / 2 - 0.02
    else:
        post_top = top + (0.08 if style == 1 else 0.0)
        for xn, x in (("left", w / 2 - post / 2), ("right", -w / 2 + post / 2)):
            b.box(f"head_post_{xn}", (x, post_top / 2, hz), (post, post_top, max(ht, post)))
        inner = w - 2 * post
        if style == 1:
            b.box("headboard", (0, (fh + top) / 2, hz), (inner, top - fh, ht * 0.7))
        else:
            rail = 0.07
            b.box("head_rail_top", (0, top - rail / 2, hz), (inner, rail, ht * 0.7))
            b.box("head_rail_bottom", (0, fh + rail / 2, hz), (inner, rail, ht * 0.7))
            n_slats = max(3, int(inner / 0.14))
            for k in range(n_slats):
                x = -inner / 2 + (k + 0.5) * inner / n_slats
                b.box(f"slat_{k}", (x, (fh + top) / 2, hz), (0.06, top - fh, ht * 0.6))
        kx = w / 2 - post / 2
    for xn, s in (("left", 1), ("right", -1)):
        b.kp[f"headboard_top_{xn}"] = (s * kx, top - 0.01, hz)
        b.kp[f"head_bottom_{xn}"] = (s * kx, 0.0, hz)
        b.kp[f"mattress_head_{xn}"] = (s * (w / 2 - 0.02), fh + mt, mz0)
        b.kp[f"mattress_foot_{xn}"] = (s * (w / 2 - 0.02), fh + mt, mz1)
    if fb:
        ftop = fh + p["footboard_height"]
        fz = L / 2 - ft / 2
        if fb == 1:
            b.box("footboard", (0, (y0 + ftop) / 2, fz), (w, ftop - y0, ft))
        else:
            for xn, x in (("left", w / 2 - post / 2), ("right", -w / 2 + post / 2)):
                b.box(f"foot_post_{xn}", (x, (ftop + 0.06) / 2, fz), (post, ftop + 0.06, post))
            b.box("footboard", (0, (y0 + ftop) / 2, fz), (w - 2 * post, ftop - y0, ft))
    lx, lz = w / 2 - 0.04, L / 2 - 0.04
    for xn, s in (("left", 1), ("right", -1)):
        b.kp[f"foot_bottom_{xn}"] = (s * lx, 0.0, lz)
    if not platform:
        for zn, z in (("head", -L / 2 + ht + 0.04), ("foot", lz)):
            for xn, s in (("left", 1), ("right", -1)):
                b.box(f"leg_{zn}_{xn}", (s * lx, y0 / 2, z), (0.06, y0, 0.06))
    n = int(p["pillows"])
    if n:
        pw = (w - 0.2) / n - 0.04 * (n - 1)
        for k in range(n):
            x = -(w - 0.2) / 2 + pw / 2 + k * (pw + 0.08) if n > 1 else 0.0
            b.box(f"pillow_{k}", (x, fh + mt + 0.05, mz0 + 0.22), (pw, 0.1, 0.35))


def _bookcase(p: dict, b: _Builder) -> None:
    w, H, d, t = p["width"], p["height"], p["depth"], p["board"]
    bt = 0.4 * t  # back panel
    style = p["base_style"]
    base = p["base_height"] if style else 0.0
    side_y0 = base if style == 2 else 0.0
    for xn, x in (("left", w / 2 - t / 2), ("right", -w / 2 + t / 2)):
        b.box(f"side_{xn}", (x, (side_y0 + H) / 2, 0), (t, H - side_y0, d))
    inner = w - 2 * t
    b.box("top", (0, H - t / 2, 0), (inner, t, d))
    b.box("bottom", (0, base + t / 2, 0), (inner, t, d))
    b.box("back", (0, (side_y0 + H) / 2, -d / 2 + bt / 2), (inner, H - side_y0, bt))
    if style == 1:
        b.box("kick_board", (0, base / 2, d / 2 - 0.03 - t / 2), (inner, base, t))
    elif style == 2:
        for zn, z in (("front", d / 2 - 0.03), ("back", -d / 2 + 0.03)):
            for xn, x in (("left", w / 2 - 0.03), ("right", -w / 2 + 0.03)):
                b.box(f"leg_{zn}_{xn}", (x, base / 2, z), (0.04, base, 0.04))
    n = int(p["n_shelves"])
    y_lo, y_hi = base + t, H - t
    pitch = (y_hi - y_lo) / (n + 1)
    sd = d - bt - p["shelf_inset"]
    z_shelf = -d / 2 + bt + sd / 2
    for k in range(n):
        y = y_lo + (k + 1) * pitch - t / 2
        b.box(f"shelf_{k}", (0, y, z_shelf), (inner, t, sd))
    if p["columns"] == 2:
        b.box("divider", (0, (y_lo + y_hi) / 2, z_shelf), (t, y_hi - y_lo, sd))
    if p["doors"]:
        dh = pitch - t
        b.box("doors", (0, y_lo + dh / 2, d / 2 - t / 2), (inner - 0.004, dh - 0.004, t))
        b.box("door_knob", (0, y_lo + 0.7 * dh, d / 2 + 0.01), (0.04, 0.02, 0.02))
    for yn, y in (("top", H - t / 2), ("bottom", 0.0)):
        for zn, z in (("front", d / 2 - 0.01), ("back", -d / 2 + 0.01)):
            for xn, x in (("left", w / 2 - t / 2), ("right", -w / 2 + t / 2)):
                if yn == "bottom" and style == 2:
                    x, z = math.copysign(w / 2 - 0.03, x), math.copysign(d / 2 - 0.03, z)
                b.kp[f"{yn}_{zn}_{xn}"] = (x, y, z)


def _desk(p: dict, b: _Builder) -> None:
    w, d, h, tt = p["width"], p["depth"], p["height"], p["top_thickness"]
    bw, lt, rnd = p["block_width"], p["leg_thickness"], bool(p["leg_round"])
    side = 1.0 if p["block_side"] == 1 else -1.0  # +x is the desk's left
    under = h - tt
    b.box("top", (0, h - tt / 2, 0), (w, tt, d))
    bx = side * (w / 2 - bw / 2 - 0.01)
    bd = d - 0.04
    b.box("drawer_block", (bx, under / 2, -0.01), (bw, under, bd))
    n = int(p["n_drawers"])
    front = -0.01 + bd / 2
    dh = (under - 0.06) / n
    for k in range(n):
        y = under - (k + 0.5) * dh
        b.box(f"drawer_front_{k}", (bx, y, front + 0.008), (bw - 0.03, dh - 0.012, 0.016))
        b.box(f"drawer_handle_{k}", (bx, y + 0.25 * dh, front + 0.025), (min(0.12, 0.4 * bw), 0.015, 0.018))
    b.kp["drawer_top_front"] = (bx, under - 0.5 * dh, front + 0.016)
    ox = -side * (w / 2 - lt / 2 - 0.02)  # the other end
    oz = d / 2 - lt / 2 - 0.03
    style = p["other_support"]
    bottoms = {}
    if style == 0:
        for zn, z in (("front", oz), ("back", -oz)):
            b.leg(f"leg_{zn}", (ox, under / 2, z), lt, under, rnd)
            bottoms[zn] = (ox, 0.0, z)
    elif style == 1:
        pt = 0.03
        px = -side * (w / 2 - pt / 2 - 0.01)
        b.box("side_panel", (px, under / 2, -0.01), (pt, under, bd))
        for zn, z in (("front", bd / 2 - 0.02), ("back", -bd / 2 - 0.0)):
            bottoms[zn] = (px, 0.0, z)
    else:
        foot = 0.8 * d
        b.box("foot_bar", (ox, 0.025, 0), (1.5 * lt, 0.05, foot))
        b.leg("post", (ox, (under + 0.05) / 2, 0), 1.5 * lt, under - 0.05, rnd)
        for zn, z in (("front", foot / 2 - 0.02), ("back", -foot / 2 + 0.02)):
            bottoms[zn] = (ox, 0.0, z)
    if p["modesty_panel"]:
        x_in = bx - side * bw / 2
        x_out = ox
        b.box("modesty_panel", ((x_in + x_out) / 2, under - 0.2, -d / 2 + 0.05), (abs(x_in - x_out), 0.35, 0.02))
    for zn, z in (("front", d / 2), ("back", -d / 2)):
        for xn, x in (("left", w / 2), ("right", -w / 2)):
            b.kp[f"top_{zn}_{xn}"] = (x, h, z)
    block_name = "left" if side > 0 else "right"
    other_name = "right" if side > 0 else "left"
    for zn, z in (("front", front - 0.01), ("back", -0.01 - bd / 2 + 0.01)):
        b.kp[f"bottom_{zn}_{block_name}"] = (side * (w / 2 - 0.02), 0.0, z)
        b.kp[f"bottom_{zn}_{other_name}"] = bottoms[zn]


_BUILDERS = {"chair": _chair, "table": _table, "sofa": _sofa, "bed": _bed, "bookcase": _bookcase, "desk": _desk}


# ----------------------------------------------------------------------------------------------
# Meshes of the parts (all parts of a kind at once)
# ----------------------------------------------------------------------------------------------

_BOX_CORNERS = torch.tensor(
    [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]],
    dtype=torch.float32,
)
# counter-clockwise seen from outside (outward normals)
_BOX_FACES = torch.tensor(
    [[0, 3, 2], [0, 2, 1], [4, 5, 6], [4, 6, 7], [0, 4, 7], [0, 7, 3],
     [1, 2, 6], [1, 6, 5], [0, 1, 5], [0, 5, 4], [3, 7, 6], [3, 6, 2]],
    dtype=torch.int64,
)


def _cylinder_template(segments: int):
    phi = torch.arange(segments, dtype=torch.float64) * (2 * math.pi / segments)
    ring = torch.stack([phi.cos(), torch.zeros_like(phi), phi.sin()], -1)  # (S, 3)
    lo, hi = ring + torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64), ring + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    centres = torch.tensor([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    verts = torch.cat([lo, hi, centres]).float()  # (2S + 2, 3)
    k = torch.arange(segments)
    k1 = (k + 1) % segments
    S = segments
    faces = torch.cat(
        [
            torch.stack([k, S + k, k1], -1),
            torch.stack([k1, S + k, S + k1], -1),
            torch.stack([torch.full_like(k, 2 * S), k, k1], -1),
            torch.stack([torch.full_like(k, 2 * S + 1), S + k1, S + k], -1),
        ]
    )  # (4S, 3)
    return verts, faces


_CYL_VERTS, _CYL_FACES = _cylinder_template(CYLINDER_SEGMENTS)


def _parts_mesh(kind, center, half, rot):
    """Meshes of all parts: vertices (V, 3), faces (F, 3), face_part (F,)."""
    verts, faces, owner = [], [], []
    offset = 0
    for k, (tv, tf) in ((BOX, (_BOX_CORNERS, _BOX_FACES)), (CYLINDER, (_CYL_VERTS, _CYL_FACES))):
        idx = (kind == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        local = tv.to(center.dtype) * half[idx, None, :]  # (P, T, 3)
        v = torch.einsum("pij,ptj->pti", rot[idx], local) + center[idx, None, :]  # (P, T, 3)
        f = tf + offset + tv.shape[0] * torch.arange(idx.numel())[:, None, None]  # (P, TF, 3)
        verts.append(v.reshape(-1, 3))
        faces.append(f.reshape(-1, 3))
        owner.append(idx[:, None].expand(-1, tf.shape[0]).reshape(-1))
        offset += v.shape[0] * v.shape[1]
    return torch.cat(verts), torch.cat(faces), torch.cat(owner)


# ----------------------------------------------------------------------------------------------
# The Shape
# ----------------------------------------------------------------------------------------------


@dataclass
class Shape:
    """One procedural piece of furniture, normalised into ``[-1/2, 1/2]^3`` and facing +z.

    Shapes:
        vertices (V, 3) float32; faces (F, 3) int64 (counter-clockwise from outside, one closed
        surface per part; parts may overlap); face_part (F,) int64 indexing ``part_names``;
        keypoints (K, 3) float32, named by ``keypoint_names``; edges: pairs into the keypoints.
    """

    category: str
    seed: int | None
    params: dict
    vertices: torch.Tensor
    faces: torch.Tensor
    face_part: torch.Tensor
    part_names: list
    keypoints: torch.Tensor
    keypoint_names: tuple
    edges: list
    parts: Parts = field(repr=False)
    scale: float = 1.0  # X_norm = scale * (X_raw - offset), X_raw in metres
    offset: tuple = (0.0, 0.0, 0.0)

    @property
    def label(self) -> int:
        """The index of the category in :data:`CATEGORIES`."""
        return CATEGORIES.index(self.category)

    def keypoint(self, name: str) -> torch.Tensor:
        """The 3D keypoint called ``name``: ``(3,)``.

        Raises:
            ValueError: ``name`` is not a keypoint of this category.
        """
        if name not in self.keypoint_names:
            raise ValueError(f"name: expected one of {self.keypoint_names}, received {name!r}")
        return self.keypoints[self.keypoint_names.index(name)]

    def voxels(self, resolution: int = 32, supersample: int = 2, fractional: bool = False, thicken: bool = True, device=None) -> torch.Tensor:
        """Occupancy of the ``resolution^3`` grid over ``[-1/2, 1/2]^3``, computed from the parts.

        Voxel ``[k, j, i]`` (D/H/W = z/y/x) is the cube centred at
        ``((i + 1/2)/R - 1/2, (j + 1/2)/R - 1/2, (k + 1/2)/R - 1/2)``. It is split into
        ``supersample^3`` sub-cells; ``fractional=True`` returns the fraction of sub-cell centres
        inside the union of parts, otherwise 1 where any sub-cell centre is inside. With
        ``thicken`` (the default), parts thinner than one sub-cell are thickened to one sub-cell
        for this test, so no part is ever lost (a 1 cm bookcase back still shows at 32^3).
        ``supersample=1, thicken=False`` is the plain test "is the voxel centre inside the
        solid". Each part writes only into the block of its bounding box; axis-aligned boxes and
        upright cylinders are separable (a slice assignment, a disc times an interval).

        Shapes:
            returns (R, R, R) float32.

        Raises:
            ValueError: ``resolution`` or ``supersample`` is not a positive int.
        """
        for name, v in (("resolution", resolution), ("supersample", supersample)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, received {v!r}")
        device = torch.device("cpu") if device is None else torch.device(device)
        fine = _fine_occupancy(self.parts, resolution * supersample, device, thicken)  # (N, N, N)
        s = supersample
        if fractional:
            fine = fine.float()
            for dim in range(3):  # sum the s sub-cells along each axis (strided slices are fast)
                fine = sum(fine[(slice(None),) * dim + (slice(k, None, s),)] for k in range(s))
            return fine / s**3  # (R, R, R)
        for dim in range(3):
            parts = [fine[(slice(None),) * dim + (slice(k, None, s),)] for k in range(s)]
            fine = parts[0]
            for q in parts[1:]:
                fine = fine | q
        return fine.float()  # (R, R, R)

    def point_cloud(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points uniformly on the surface of the parts (area-weighted), via ``lessons.mesh``.

        Shapes:
            returns (n, 3) float32.

        Raises:
            ValueError: ``n`` is not a positive int.
        """
        from lessons import mesh

        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive int, received {n!r}")
        return mesh.sample_points(self.vertices, self.faces, n, generator=generator)


def _fine_occupancy(parts: Parts, n: int, device, thicken: bool = True) -> torch.Tensor:
    """Occupancy of the sub-cell centres of an ``n^3`` grid: ``(n, n, n)`` bool (z, y, x)."""
    occ = torch.zeros(n, n, n, dtype=torch.bool, device=device)
    coords = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n - 0.5  # (n,)
    kind = parts.kind.tolist()
    half_cpu = parts.half.clamp(min=0.5 / n) if thicken else parts.half  # none thinner than a sub-cell
    center = parts.center.to(device)
    half = half_cpu.to(device)
    rot = parts.rotation.to(device)
    eye = torch.eye(3)
    aligned = [bool(torch.equal(r, eye)) for r in parts.rotation]
    # bounding box of each part: |rot| @ half around the centre
    ext = torch.einsum("pij,pj->pi", parts.rotation.abs(), half_cpu)
    lo = ((parts.center - ext + 0.5) * n - 0.5).ceil().clamp(0, n).long().tolist()
    hi = ((parts.center + ext + 0.5) * n - 0.5).floor().clamp(-1, n - 1).long().tolist()
    for p in range(len(kind)):
        (x0, y0, z0), (x1, y1, z1) = lo[p], hi[p]
        if x1 < x0 or y1 < y0 or z1 < z0:
            continue
        if aligned[p] and kind[p] == BOX:
            occ[z0 : z1 + 1, y0 : y1 + 1, x0 : x1 + 1] = True
            continue
        z, y, x = coords[z0 : z1 + 1], coords[y0 : y1 + 1], coords[x0 : x1 + 1]
        if aligned[p]:  # upright cylinder: a disc in (z, x) times an interval in y
            dx = (x - center[p, 0]) / half[p, 0]
            dz = (z - center[p, 2]) / half[p, 2]
            disc = dz[:, None] ** 2 + dx[None, :] ** 2 <= 1.0  # (nz, nx)
            occ[z0 : z1 + 1, y0 : y1 + 1, x0 : x1 + 1] |= disc[:, None, :]
            continue
        grid = torch.stack(torch.meshgrid(x, y, z, indexing="ij"), -1).permute(2, 1, 0, 3)  # (nz, ny, nx, 3)
        local = (grid - center[p]) @ rot[p]  # (nz, ny, nx, 3)
        inside = _inside(local, half[p], parts.kind[p].to(device))
        occ[z0 : z1 + 1, y0 : y1 + 1, x0 : x1 + 1] |= inside
    return occ


def make_shape(category: str, params: dict | None = None, seed: int | None = None) -> Shape:
    """Build the ``category`` shape for ``params`` (missing entries take :func:`default_params`).

    Parts are assembled in metres (floor at y = 0, facing +z), then the mesh's bounding box is
    centred and scaled so its longest side is :data:`EXTENT`; parts and keypoints follow:
    ``X_norm = scale (X_raw - offset)``.

    Shapes:
        see :class:`Shape`.

    Raises:
        ValueError: unknown ``category`` or an unknown parameter name.
    """
    _check_category(category)
    full = default_params(category)
    if params:
        unknown = set(params) - set(full)
        if unknown:
            raise ValueError(f"params: unknown name(s) {sorted(unknown)} for {category}; expected {sorted(full)}")
        full.update(params)
    b = _Builder()
    _BUILDERS[category](full, b)
    kind = torch.tensor(b.kind, dtype=torch.int64)
    center = torch.tensor(b.center, dtype=torch.float64)
    half = torch.tensor(b.half, dtype=torch.float64)
    rot = torch.tensor(b.rot, dtype=torch.float64)
    vertices, faces, face_part = _parts_mesh(kind, center, half, rot)
    lo, hi = vertices.amin(0), vertices.amax(0)
    offset = 0.5 * (lo + hi)
    scale = EXTENT / float((hi - lo).max())
    names = KEYPOINT_NAMES[category]
    missing = [n for n in names if n not in b.kp]
    if missing:  # a builder bug, not a user error
        raise RuntimeError(f"{category}: keypoints {missing} were not placed")
    kp = torch.tensor([b.kp[n] for n in names], dtype=torch.float64)
    parts = Parts(
        kind=kind,
        center=((center - offset) * scale).float(),
        half=(half * scale).float(),
        rotation=rot.float(),
        names=list(b.names),
    )
    return Shape(
        category=category,
        seed=seed,
        params=full,
        vertices=((vertices - offset) * scale).float(),
        faces=faces,
        face_part=face_part,
        part_names=list(b.names),
        keypoints=((kp - offset) * scale).float(),
        keypoint_names=names,
        edges=[tuple(e) for e in KEYPOINT_EDGES[category]],
        parts=parts,
        scale=scale,
        offset=tuple(offset.tolist()),
    )


def random_shape(category: str, seed: int) -> Shape:
    """The shape of ``category`` drawn with ``seed``: the same seed always gives the same shape.

    Shapes:
        see :class:`Shape`.

    Raises:
        ValueError: unknown ``category`` or a negative / non-int ``seed``.
    """
    _check_category(category)
    return make_shape(category, sample_params(category, _seed_generator(category, seed)), seed=seed)


def shape_seeds(category: str, split: str, n: int, start: int = 0) -> list:
    """The first ``n`` seeds (from ``start`` on) whose shapes belong to ``split``.

    A seed's split is :func:`split_of` its parameters, so the lists of two splits never share
    a seed, and no two shapes with equal quantised parameters (:func:`param_key`) are in two
    splits.

    Shapes:
        returns a list of ``n`` ints.

    Raises:
        ValueError: unknown ``category`` or ``split``, or ``n`` negative.
    """
    _check_category(category)
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, received {split!r}")
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected a non-negative int, received {n!r}")
    seeds, seed = [], start
    while len(seeds) < n:
        if split_of(category, sample_params(category, _seed_generator(category, seed))) == split:
            seeds.append(seed)
        seed += 1
    return seeds


def shape_batch(categories, seeds) -> list:
    """Shapes for ``seeds``: one category (a str) for all, or one category per seed.

    Shapes:
        returns a list of ``len(seeds)`` :class:`Shape`.

    Raises:
        ValueError: unknown category, or lists of different lengths.
    """
    seeds = list(seeds)
    if isinstance(categories, str):
        categories = [categories] * len(seeds)
    categories = list(categories)
    if len(categories) != len(seeds):
        raise ValueError(f"categories: expected {len(seeds)} entries (one per seed), received {len(categories)}")
    return [random_shape(c, s) for c, s in zip(categories, seeds)]


def voxel_dataset(categories=CATEGORIES, split: str = "train", n: int = 100, resolution: int = 32, supersample: int = 2):
    """``n`` shapes per category of ``split`` as voxel grids, with their category labels.

    Labels index :data:`CATEGORIES` (not the ``categories`` argument), so they mean the same in
    every chapter.

    Shapes:
        returns voxels (N, 1, R, R, R) float32 with N = n * len(categories), labels (N,) int64.

    Raises:
        ValueError: unknown category or split, bad ``n`` or ``resolution``.
    """
    if isinstance(categories, str):
        categories = [categories]
    vox, labels = [], []
    for c in categories:
        for s in shape_seeds(c, split, n):
            vox.append(random_shape(c, s).voxels(resolution, supersample))
            labels.append(CATEGORIES.index(c))
    if not vox:
        return torch.zeros(0, 1, resolution, resolution, resolution), torch.zeros(0, dtype=torch.int64)
    return torch.stack(vox)[:, None], torch.tensor(labels, dtype=torch.int64)  # (N, 1, R, R, R)
