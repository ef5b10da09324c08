"""Tests of lessons.data: procedural shapes, textures and the render pipeline."""

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F

from lessons import geometry
from lessons.data import renders, shapes, textures

CATS = shapes.CATEGORIES
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def samples():
    """A few shapes per category, built once."""
    return {c: [shapes.random_shape(c, s) for s in SEEDS] for c in CATS}


def _iou(a, b):
    a, b = a > 0.5, b > 0.5
    return ((a & b).sum() / (a | b).sum()).item()


def _paired(names, a, b):
    """Pairs (i, j) of keypoints whose names differ only by a -> b."""
    out = []
    for i, n in enumerate(names):
        if a in n.split("_"):
            m = "_".join(b if w == a else w for w in n.split("_"))
            if m in names:
                out.append((i, names.index(m)))
    return out


# ----------------------------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATS)
def test_shape_builds_with_consistent_fields(category, samples):
    for sh in samples[category]:
        V, Fc = sh.vertices, sh.faces
        assert V.dtype == torch.float32 and V.dim() == 2 and V.shape[1] == 3
        assert Fc.dtype == torch.int64 and Fc.shape[1] == 3
        assert int(Fc.min()) >= 0 and int(Fc.max()) < V.shape[0]
        assert sh.face_part.shape == (Fc.shape[0],) and sh.face_part.dtype == torch.int64
        assert int(sh.face_part.max()) < len(sh.part_names) and len(sh.parts) == len(sh.part_names)
        assert set(sh.face_part.tolist()) == set(range(len(sh.part_names)))  # every part has faces
        names = shapes.KEYPOINT_NAMES[category]
        assert sh.keypoint_names == names and len(set(names)) == len(names)
        assert sh.keypoints.shape == (len(names), 3) and sh.keypoints.dtype == torch.float32
        assert len(names) >= (8 if category == "chair" else 6)
        for i, j in sh.edges:
            assert 0 <= i < len(names) and 0 <= j < len(names) and i != j
        assert sh.label == CATS.index(category) and sh.category == category


@pytest.mark.parametrize("category", CATS)
def test_normalised_into_unit_cube(category, samples):
    for sh in samples[category]:
        lo, hi = sh.vertices.amin(0), sh.vertices.amax(0)
        torch.testing.assert_close((hi - lo).max(), torch.tensor(shapes.EXTENT), atol=1e-5, rtol=0)
        torch.testing.assert_close(lo + hi, torch.zeros(3), atol=1e-5, rtol=0)  # centred bounding box
        assert float(sh.keypoints.abs().max()) <= 0.5
        # the recorded transform maps raw metres to the object frame: scale * (X - offset)
        assert sh.scale > 0 and len(sh.offset) == 3


@pytest.mark.parametrize("category", CATS)
def test_parts_are_closed_outward_meshes(category, samples):
    """Signed volume of each part's surface (divergence theorem) is positive and matches the solid."""
    for sh in samples[category]:
        v = sh.vertices.double()
        tri = v[sh.faces]  # (F, 3, 3)
        vol = (tri[:, 0] * torch.linalg.cross(tri[:, 1], tri[:, 2], dim=-1)).sum(-1) / 6
        per_part = torch.zeros(len(sh.part_names), dtype=torch.float64).index_add_(0, sh.face_part, vol)
        half = sh.parts.half.double()
        solid = 8 * half.prod(-1)
        n = shapes.CYLINDER_SEGMENTS
        polygon = 2 * math.pi * half[:, 0] * half[:, 2] * half[:, 1] * math.sin(2 * math.pi / n) / (2 * math.pi / n)
        expected = torch.where(sh.parts.kind == shapes.BOX, solid, polygon)
        torch.testing.assert_close(per_part, expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("category", CATS)
def test_keypoints_lie_on_the_shape(category, samples):
    """Every keypoint is in the 64^3 voxelisation dilated by one voxel."""
    R = 64
    for sh in samples[category]:
        v = sh.voxels(R)
        dil = F.max_pool3d(v[None, None], 3, stride=1, padding=1)[0, 0]
        idx = ((sh.keypoints + 0.5) * R).floor().long().clamp(0, R - 1)
        hit = dil[idx[:, 2], idx[:, 1], idx[:, 0]]  # D/H/W = z/y/x
        assert bool((hit > 0).all()), [n for n, h in zip(sh.keypoint_names, hit) if h == 0]


@pytest.mark.parametrize("category", CATS)
def test_front_and_left_pins(category, samples):
    """'front' keypoints have larger z than their 'back' twins; 'left' ones larger x (left = +x)."""
    names = shapes.KEYPOINT_NAMES[category]
    fb, lr = _paired(names, "front", "back"), _paired(names, "left", "right")
    assert lr, "every category names left/right keypoints"
    for sh in samples[category]:
        kp = sh.keypoints
        for i, j in fb:
            assert kp[i, 2] > kp[j, 2], (names[i], names[j])
        for i, j in lr:
            assert kp[i, 0] > kp[j, 0], (names[i], names[j])
    if category == "bed":  # the headboard is at the back (-z), the foot at +z
        for sh in samples[category]:
            assert sh.keypoint("head_bottom_left")[2] < sh.keypoint("foot_bottom_left")[2]


def test_chair_front_pin_and_up():
    sh = shapes.make_shape("chair", {"back_tilt": 0.2})
    front = sh.keypoint("seat_front_left")[2], sh.keypoint("seat_front_right")[2]
    back = sh.keypoint("seat_back_left")[2], sh.keypoint("seat_back_right")[2]
    assert min(front) > max(back)
    # +y is up: the back's top is above the seat, which is above the feet
    assert sh.keypoint("back_top_left")[1] > sh.keypoint("seat_back_left")[1] > sh.keypoint("leg_back_left_bottom")[1]
    # a backwards tilt moves the back's top towards -z
    upright = shapes.make_shape("chair", {"back_tilt": 0.0})
    assert sh.keypoint("back_top_left")[2] < upright.keypoint("back_top_left")[2]


def test_left_is_plus_x_pinned_by_a_part():
    """A desk whose drawer block is on its own left (block_side=1) has the block at +x."""
    for side, sign in ((1, 1.0), (0, -1.0)):
        sh = shapes.make_shape("desk", {"block_side": side})
        block = sh.parts.center[sh.part_names.index("drawer_block")]
        assert sign * block[0] > 0.1
        assert sign * sh.keypoint("drawer_top_front")[0] > 0.1
        # the drawer fronts face +z: they sit in front of the block
        fronts = [sh.parts.center[i] for i, n in enumerate(sh.part_names) if n.startswith("drawer_front")]
        assert all(f[2] > block[2] for f in fronts)


def test_voxel_convention_pins():
    """D/H/W = z/y/x: a chair's back is at small k (-z), its floor at small j (-y)."""
    sh = shapes.make_shape("chair", {"has_arms": 0, "back_height": 0.5})
    v = sh.voxels(32)
    j_occ = v.sum(dim=(0, 2)).nonzero().squeeze(1)
    top = v[:, int(j_occ.max()), :]  # (D, W) slice of the highest occupied row
    k = top.nonzero()[:, 0].float()
    assert k.mean() < 16 - 3  # the back's top is behind (-z)
    assert v[:, int(j_occ.min()), :].sum() < v.sum(dim=(0, 2)).max()  # feet are small, at low j
    # a box part: its voxel block is exactly where the voxel-centre test says
    desk = shapes.make_shape("desk", {"block_side": 1})
    vd = desk.voxels(32)
    assert vd[:, :, 16:].sum() > 1.5 * vd[:, :, :16].sum()  # drawer block on the +x side (large i)


def test_voxels_match_a_naive_reference():
    """supersample=1, thicken=False is the centre test, checked part by part in a plain loop."""
    sh = shapes.random_shape("chair", 5)  # has tilted (non axis-aligned) parts
    R = 16
    c = (torch.arange(R, dtype=torch.float32) + 0.5) / R - 0.5
    zz, yy, xx = torch.meshgrid(c, c, c, indexing="ij")
    p = torch.stack([xx, yy, zz], -1).reshape(-1, 3)
    inside = torch.zeros(p.shape[0], dtype=torch.bool)
    P = sh.parts
    for i in range(len(P)):  # naive: one part at a time, X_local = R^T (X - c)
        local = (P.rotation[i].T @ (p - P.center[i]).T).T
        h = P.half[i]
        if P.kind[i] == shapes.BOX:
            inside |= (local.abs() <= h).all(-1)
        else:
            inside |= ((local[:, 0] / h[0]) ** 2 + (local[:, 2] / h[2]) ** 2 <= 1) & (local[:, 1].abs() <= h[1])
    ref = inside.reshape(R, R, R).float()
    got = sh.voxels(R, supersample=1, thicken=False)
    assert (got != ref).float().mean() < 1e-3  # only float ties on boundaries may differ
    assert ref.sum() > 0


def test_voxels_fractional_and_binary_agree():
    sh = shapes.random_shape("table", 3)
    frac = sh.voxels(32, fractional=True)
    binary = sh.voxels(32)
    assert frac.shape == binary.shape == (32, 32, 32) and binary.dtype == torch.float32
    assert float(frac.min()) >= 0 and float(frac.max()) <= 1
    assert torch.equal(frac > 0, binary > 0)
    assert set(torch.unique(binary).tolist()) <= {0.0, 1.0}
    # fractions are multiples of 1/8 with 2^3 sub-cells
    torch.testing.assert_close(frac * 8, (frac * 8).round())
    # thin parts survive thanks to thickening: bookcase backs are thinner than a sub-cell at 32^3
    bc = shapes.make_shape("bookcase", {"height": 2.0, "board": 0.015})
    k_back = (bc.parts.center[bc.part_names.index("back")][2] + 0.5) * 32
    assert bc.voxels(32)[int(k_back)].sum() > 0


def test_voxels_agree_with_the_mesh_voxelizer():
    """The analytic path and lessons.io.voxelize (ray-parity interior of the mesh) agree."""
    io = pytest.importorskip("lessons.io", reason="lessons/io.py (voxelize) is not there yet")
    for c in CATS:
        sh = shapes.random_shape(c, 1)
        ours = sh.voxels(32, supersample=1, thicken=False)
        theirs = io.voxelize(sh.vertices, sh.faces, 32, normalize=False, surface="none")
        assert _iou(ours, theirs.float()) > 0.95, c
        # the default (conservative) grid lies inside io's conservative one (surface overlap)
        cons = io.voxelize(sh.vertices, sh.faces, 32, normalize=False).float()
        default = sh.voxels(32)
        assert (default * cons).sum() / default.sum() > 0.95, c


@pytest.mark.parametrize("category", CATS)
def test_no_half_turn_symmetry(category):
    """Turned by 180 degrees about y (x -> -x, z -> -z: flip W and D), no shape matches itself."""
    for s in range(6):
        v = shapes.random_shape(category, s).voxels(32)
        assert _iou(v, v.flip(0).flip(2)) < 0.95, (category, s)


def test_determinism_by_seed():
    for c in CATS:
        a, b = shapes.random_shape(c, 7), shapes.random_shape(c, 7)
        assert torch.equal(a.vertices, b.vertices) and torch.equal(a.faces, b.faces)
        assert a.params == b.params and torch.equal(a.keypoints, b.keypoints)
        assert shapes.random_shape(c, 8).params != a.params
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert shapes.sample_params("sofa", g1) == shapes.sample_params("sofa", g2)


def test_params_within_ranges_and_variants_appear():
    seen = {}
    for s in range(60):
        p = shapes.random_shape("chair", s).params
        for spec in shapes.PARAM_SPECS["chair"]:
            assert spec.low <= p[spec.name] <= spec.high
            if spec.integer:
                assert isinstance(p[spec.name], int)
                seen.setdefault(spec.name, set()).add(p[spec.name])
    assert seen["leg_style"] == {0, 1, 2} and seen["back_style"] == {0, 1, 2} and seen["has_arms"] == {0, 1}


def test_splits_disjoint_deterministic_and_by_parameters():
    for c in ("chair", "table"):
        tr = shapes.shape_seeds(c, "train", 60)
        va = shapes.shape_seeds(c, "val", 8)
        te = shapes.shape_seeds(c, "test", 8)
        assert len(tr) == 60 and len(set(tr)) == 60
        assert not set(tr) & set(te) and not set(tr) & set(va) and not set(va) & set(te)
        assert shapes.shape_seeds(c, "test", 8) == te
        key = lambda s: shapes.param_key(c, shapes.random_shape(c, s).params)  # noqa: E731
        assert not {key(s) for s in tr} & {key(s) for s in te}
        for s in te:
            assert shapes.split_of(c, shapes.random_shape(c, s).params) == "test"
    # about 80 / 10 / 10
    counts = {s: 0 for s in shapes.SPLITS}
    for seed in range(400):
        counts[shapes.split_of("bed", shapes.random_shape("bed", seed).params)] += 1
    assert 0.72 < counts["train"] / 400 < 0.88 and counts["test"] > 15 and counts["val"] > 15


def test_param_key_quantises():
    p = shapes.default_params("chair")
    q = dict(p, seat_width=p["seat_width"] + 1e-4)
    assert shapes.param_key("chair", p) == shapes.param_key("chair", q)
    r = dict(p, has_arms=1 - p["has_arms"])
    assert shapes.param_key("chair", p) != shapes.param_key("chair", r)


def test_shape_batch_and_voxel_dataset():
    batch = shapes.shape_batch("sofa", [0, 1, 2])
    assert [s.seed for s in batch] == [0, 1, 2] and all(s.category == "sofa" for s in batch)
    mixed = shapes.shape_batch(["bed", "desk"], [4, 4])
    assert [s.category for s in mixed] == ["bed", "desk"]
    vox, labels = shapes.voxel_dataset(["chair", "bookcase"], "val", 3, resolution=16)
    assert vox.shape == (6, 1, 16, 16, 16) and vox.dtype == torch.float32
    assert labels.tolist() == [CATS.index("chair")] * 3 + [CATS.index("bookcase")] * 3
    seeds = shapes.shape_seeds("chair", "val", 3)
    assert torch.equal(vox[0, 0], shapes.random_shape("chair", seeds[0]).voxels(16))


def test_point_cloud_on_the_surface():
    pytest.importorskip("lessons.mesh")
    sh = shapes.random_shape("chair", 2)
    pts = sh.point_cloud(500, torch.Generator().manual_seed(0))
    assert pts.shape == (500, 3)
    grown = shapes.Parts(sh.parts.kind, sh.parts.center, sh.parts.half + 1e-4, sh.parts.rotation, sh.parts.names)
    shrunk = shapes.Parts(sh.parts.kind, sh.parts.center, (sh.parts.half - 2e-3).clamp_min(0), sh.parts.rotation, sh.parts.names)
    assert bool(grown.contains(pts).any(-1).all())  # in some part ...
    assert grown.contains(pts).any(-1).float().mean() > shrunk.contains(pts).any(-1).float().mean() + 0.3  # ... at its skin


def test_parts_contains_batch_shapes():
    sh = shapes.random_shape("bed", 0)
    for shape in ((3,), (4, 3), (2, 5, 3)):
        out = sh.parts.contains(torch.zeros(shape))
        assert out.shape == shape[:-1] + (len(sh.parts),) and out.dtype == torch.bool


def test_voxels_on_device(device):
    sh = shapes.random_shape("desk", 0)
    torch.testing.assert_close(sh.voxels(16, device=device).cpu(), sh.voxels(16))


def test_shape_errors():
    with pytest.raises(ValueError, match="category"):
        shapes.random_shape("lamp", 0)
    with pytest.raises(ValueError, match="category"):
        shapes.sample_params("lamp")
    with pytest.raises(ValueError, match="seed"):
        shapes.random_shape("chair", -1)
    with pytest.raises(ValueError, match="unknown name"):
        shapes.make_shape("chair", {"wings": 2})
    with pytest.raises(ValueError, match="split"):
        shapes.shape_seeds("chair", "holdout", 3)
    sh = shapes.random_shape("chair", 0)
    for bad in (0, -4, 2.5):
        with pytest.raises(ValueError, match="resolution"):
            sh.voxels(bad)
    with pytest.raises(ValueError, match="supersample"):
        sh.voxels(16, supersample=0)
    with pytest.raises(ValueError, match="points"):
        sh.parts.contains(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="name"):
        sh.keypoint("nose")
    with pytest.raises(ValueError, match="one per seed"):
        shapes.shape_batch(["chair"], [0, 1])


# ----------------------------------------------------------------------------------------------
# textures
# ----------------------------------------------------------------------------------------------


def test_hsv_to_rgb_pins_and_reference():
    pins = {(0.0, 1.0, 1.0): (1, 0, 0), (1 / 3, 1.0, 1.0): (0, 1, 0), (2 / 3, 1.0, 1.0): (0, 0, 1), (0.5, 0.0, 0.4): (0.4, 0.4, 0.4)}
    for hsv, rgb in pins.items():
        torch.testing.assert_close(textures.hsv_to_rgb(torch.tensor(hsv)), torch.tensor(rgb, dtype=torch.float32), atol=1e-6, rtol=0)
    x = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = torch.tensor([[colorsys.hsv_to_rgb(*p.tolist()) for p in row] for row in x], dtype=torch.float64)
    torch.testing.assert_close(textures.hsv_to_rgb(x), ref)


def test_backgrounds_textured_fraction_and_variance(generator):
    n = 500
    bg, kind = textures.procedural_backgrounds(n, 32, 32, generator, return_kind=True)
    assert bg.shape == (n, 3, 32, 32) and float(bg.min()) >= 0 and float(bg.max()) <= 1
    std = bg.std(dim=(2, 3)).amax(1)  # (n,)
    flat = kind == 0
    assert abs(flat.float().mean().item() - 0.2) < 0.06
    assert float(std[flat].max()) < 1e-6  # flat means flat
    assert float(std[~flat].min()) > 0.02  # textured means spatial variation
    assert float(std[~flat].median()) > 0.08
    assert set(kind.tolist()) == set(range(len(textures.BACKGROUND_KINDS)))
    assert textures.procedural_backgrounds(20, 8, 8, generator, textured_fraction=0.0).std(dim=(2, 3)).max() < 1e-6


def test_backgrounds_deterministic_and_dtype():
    a = textures.procedural_backgrounds(12, 16, 24, torch.Generator().manual_seed(5))
    b = textures.procedural_backgrounds(12, 16, 24, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (12, 3, 16, 24)
    c = textures.procedural_backgrounds(12, 16, 24, torch.Generator().manual_seed(5), dtype=torch.float64)
    assert c.dtype == torch.float64
    torch.testing.assert_close(c.float(), a, atol=1e-5, rtol=0)


@pytest.mark.parametrize("maker", [textures.noise_texture, textures.stripes, textures.checkerboard, textures.blobs, textures.flat])
def test_each_pattern(maker, generator):
    x = maker(3, 20, 30, generator)
    assert x.shape == (3, 3, 20, 30) and float(x.min()) >= 0 and float(x.max()) <= 1


def test_noise_fields(generator):
    v = textures.value_noise(4, 16, 16, generator, octaves=3, channels=2)
    assert v.shape == (4, 2, 16, 16)
    torch.testing.assert_close(v.amin(dim=(2, 3)), torch.zeros(4, 2))
    torch.testing.assert_close(v.amax(dim=(2, 3)), torch.ones(4, 2))
    vol = textures.noise_volume(2, 8, generator)
    assert vol.shape == (2, 1, 8, 8, 8) and float(vol.min()) == 0 and float(vol.max()) == 1
    # spatially correlated: neighbours are closer than random pairs
    assert (v[..., 1:] - v[..., :-1]).abs().mean() < 0.5 * (v - v.flip(-1).flip(-2)).abs().mean()
    pal = textures.random_palette(100, generator, value=(0.5, 0.5), saturation=(0.0, 0.0))
    torch.testing.assert_close(pal, torch.full((100, 3), 0.5))


def test_backgrounds_on_device(device):
    x = textures.procedural_backgrounds(6, 8, 8, torch.Generator().manual_seed(0), device=device)
    y = textures.procedural_backgrounds(6, 8, 8, torch.Generator().manual_seed(0))
    assert x.device.type == device.type
    torch.testing.assert_close(x.cpu(), y, atol=1e-5, rtol=0)


def test_texture_errors(generator):
    with pytest.raises(ValueError, match="height"):
        textures.procedural_backgrounds(2, 0, 8, generator)
    with pytest.raises(ValueError, match="textured_fraction"):
        textures.procedural_backgrounds(2, 8, 8, generator, textured_fraction=1.5)
    with pytest.raises(ValueError, match="n"):
        textures.noise_texture(-1, 8, 8, generator)
    with pytest.raises(ValueError, match="hsv"):
        textures.hsv_to_rgb(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="saturation"):
        textures.random_palette(3, generator, saturation=(0.5, 2.0))


# ----------------------------------------------------------------------------------------------
# viewpoints and renders
# ----------------------------------------------------------------------------------------------


def test_viewpoint_prior_statistics(generator):
    n = 4000
    photo = renders.ViewpointPrior().sample(n, generator)
    uni = renders.ViewpointPrior(mode="uniform").sample(n, generator)
    for v in (photo, uni):
        assert set(v) == {"azimuth", "elevation", "inplane", "distance"} and all(x.shape == (n,) for x in v.values())
        assert float(v["azimuth"].min()) > -math.pi and float(v["azimuth"].max()) <= math.pi
        assert float(v["distance"].min()) >= 2.2 and float(v["distance"].max()) <= 3.2
    assert photo["azimuth"].abs().median() < 0.6 * uni["azimuth"].abs().median()
    assert abs(uni["azimuth"].abs().median().item() - math.pi / 2) < 0.15
    assert (photo["elevation"] > 0).float().mean() > 0.85
    assert ((photo["elevation"] > 0) & (photo["elevation"] < math.radians(30))).float().mean() > 0.6
    assert float(photo["inplane"].abs().max()) <= math.radians(15) + 1e-6
    assert abs(photo["inplane"].std().item() - math.radians(5)) < math.radians(1)
    # the three-quarter modes: more samples near +45 than near +100 degrees
    az = photo["azimuth"]
    near45 = ((az - math.radians(45)).abs() < math.radians(10)).sum()
    near100 = ((az - math.radians(100)).abs() < math.radians(10)).sum()
    assert near45 > 1.5 * near100


def test_von_mises_sampler_matches_its_moments(generator):
    """One von Mises component: circular mean mu, mean resultant length I1(k)/I0(k)."""
    prior = renders.ViewpointPrior(azimuth_modes=((0.5, 4.0, 1.0),), azimuth_uniform=0.0)
    az = prior.sample(20000, generator, dtype=torch.float64)["azimuth"]
    C, S = az.cos().mean(), az.sin().mean()
    k = torch.tensor(4.0, dtype=torch.float64)
    expected = torch.special.i1(k) / torch.special.i0(k)
    assert abs(torch.atan2(S, C).item() - 0.5) < 0.02
    assert abs(torch.hypot(C, S).item() - expected.item()) < 0.01
    # the density integrates to one and peaks at the mode
    grid = torch.linspace(-math.pi, math.pi, 2001, dtype=torch.float64)
    for p in (prior, renders.ViewpointPrior(), renders.ViewpointPrior(mode="uniform")):
        dens = p.azimuth_density(grid)
        assert abs(torch.trapezoid(dens, grid).item() - 1) < 1e-3
    assert prior.azimuth_density(torch.tensor([0.5])) > prior.azimuth_density(torch.tensor([2.0]))


@pytest.fixture(scope="module")
def rendered():
    """One shape per category, rendered with truncation at 48x48."""
    g = torch.Generator().manual_seed(0)
    shs = [shapes.random_shape(c, 3) for c in CATS]
    vp = renders.ViewpointPrior().sample(len(shs), g)
    return shs, renders.render_shapes(shs, vp, 48, g, truncation=0.25, texture=0.4)


def test_render_output_shapes(rendered):
    shs, out = rendered
    B, S, Kmax = len(shs), 48, max(len(s.keypoint_names) for s in shs)
    expected = {
        "image": (B, 3, S, S), "mask": (B, 1, S, S), "depth": (B, 1, S, S), "normals": (B, 3, S, S),
        "parts": (B, 1, S, S), "background": (B, 3, S, S), "keypoints_3d": (B, Kmax, 3),
        "keypoints_2d": (B, Kmax, 2), "keypoints_visible": (B, Kmax), "keypoints_valid": (B, Kmax),
        "num_keypoints": (B,), "viewpoint": (B, 3), "distance": (B,), "K": (B, 3, 3), "R": (B, 3, 3),
        "t": (B, 3), "crop": (B, 3), "category": (B,), "shape_seed": (B,),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    assert out["category"].tolist() == list(range(len(CATS)))
    assert out["keypoints_valid"].sum(1).tolist() == [len(s.keypoint_names) for s in shs]
    assert float(out["image"].min()) >= 0 and float(out["image"].max()) <= 1
    # the viewpoint label is the rotation's viewpoint (the crop only changes K)
    az, el, psi = geometry.viewpoint_from_rotation(out["R"])
    torch.testing.assert_close(torch.stack([az, el, psi], -1), out["viewpoint"], atol=1e-4, rtol=0)


def test_render_keypoint_labels_are_exact(rendered):
    shs, out = rendered
    pix, depth = geometry.project(out["keypoints_3d"], out["K"], out["R"], out["t"])
    valid = out["keypoints_valid"]
    torch.testing.assert_close(pix[valid], out["keypoints_2d"][valid])
    for b, sh in enumerate(shs):
        n = len(sh.keypoint_names)
        torch.testing.assert_close(out["keypoints_3d"][b, :n], sh.keypoints)
    assert bool((depth[valid] > 0).all())


def test_visible_keypoints_are_on_the_mask(rendered):
    _, out = rendered
    S = 48
    mask = F.max_pool2d(out["mask"], 3, stride=1, padding=1)[:, 0]  # within one pixel
    vis = out["keypoints_visible"]
    assert vis.any()
    b, k = vis.nonzero().unbind(1)
    uv = out["keypoints_2d"][b, k].floor().long()
    assert bool(((uv >= 0) & (uv < S)).all())
    assert bool((mask[b, uv[:, 1], uv[:, 0]] > 0).all())
    # outside the image is never visible
    pix = out["keypoints_2d"]
    outside = (pix < 0).any(-1) | (pix >= S).any(-1)
    assert not bool((vis & outside).any())


def test_mask_covers_the_object_and_composite_uses_the_background():
    g = torch.Generator().manual_seed(1)
    shs = [shapes.random_shape(c, 0) for c in CATS]
    vp = renders.ViewpointPrior().sample(len(shs), g)
    out = renders.render_shapes(shs, vp, 40, g)  # no truncation: the whole object is in view
    for b, sh in enumerate(shs):  # the centre of the biggest part projects onto the mask
        big = int(sh.parts.half.prod(-1).argmax())
        c = sh.parts.center[big].view(1, 1, 3)
        uv, _ = geometry.project(c, out["K"][b : b + 1], out["R"][b : b + 1], out["t"][b : b + 1])
        j, i = uv[0, 0].floor().long().tolist()
        assert out["mask"][b, 0, i, j] > 0.5, sh.category
    empty = out["mask"] == 0
    assert empty.any() and (out["mask"] == 1).any()
    bg, img = out["background"], out["image"]
    assert torch.equal(img.masked_select(empty.expand_as(img)), bg.masked_select(empty.expand_as(bg)))
    assert torch.equal(out["parts"] >= 0, out["depth"] > 0)
    assert bool((out["depth"][out["mask"] == 1] > 0).all())


def test_visibility_pin_front_and_back():
    """A chair seen from the front shows its seat front; seen from behind, its back hides it."""
    sh = shapes.make_shape("chair", {"back_style": 0, "back_tilt": 0.0, "has_arms": 0})
    names = sh.keypoint_names
    g = torch.Generator().manual_seed(0)
    for az, el, front_seen in ((0.0, 0.35, True), (math.pi, 0.05, False)):
        vp = {"azimuth": torch.tensor([az]), "elevation": torch.tensor([el]), "distance": torch.tensor([2.5])}
        vis = renders.render_shapes([sh], vp, 64, g, background=0.0)["keypoints_visible"][0]
        for n in ("seat_front_left", "seat_front_right"):
            assert bool(vis[names.index(n)]) == front_seen, (az, n)
        for n in ("back_top_left", "back_top_right"):  # the top of the back is seen from both sides
            assert bool(vis[names.index(n)])


def test_truncation_is_an_exact_crop():
    """Rendering with the cropped K equals cropping and resizing the full render (nearest)."""
    g = torch.Generator().manual_seed(2)
    sh = [shapes.random_shape("table", 1)]
    vp = {"azimuth": torch.tensor([0.4]), "elevation": torch.tensor([0.3]), "distance": torch.tensor([2.6])}
    K, R, t = renders.cameras(vp, 64)
    box = torch.tensor([[16.0, 8.0, 32.0]])  # a 32 px square at (16, 8), to 32 px: a pure shift
    K2 = renders.crop_intrinsics(K, box, 32)
    st = renders.shape_tensors(sh, generator=g)
    from lessons import render

    full = render.render_mesh(st["vertices"], st["faces"], K, R, t, 64, 64).alpha
    crop = render.render_mesh(st["vertices"], st["faces"], K2, R, t, 32, 32).alpha
    assert torch.equal(crop, full[:, :, 8:40, 16:48])
    # projections obey u' = (u - x0) S / L
    X = sh[0].keypoints[None]
    p, _ = geometry.project(X, K, R, t)
    p2, _ = geometry.project(X, K2, R, t)
    torch.testing.assert_close(p2, (p - box[:, None, :2]) * 32 / box[:, None, 2:])
    # truncate() keeps the box around the object when truncation = 0
    K3, box3 = renders.truncate(K, R, t, st["vertices"], st["num_vertices"], 64, 0.0, g)
    p3, _ = geometry.project(st["vertices"], K3, R, t)
    assert float(p3.min()) >= 0 and float(p3.max()) <= 64


def test_crop_intrinsics_gradcheck():
    K = geometry.intrinsics(torch.tensor([50.0], dtype=torch.float64), 32, 32).requires_grad_()
    box = torch.tensor([[3.0, 4.0, 20.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k, b: renders.crop_intrinsics(k, b, 32), (K, box))


def test_random_lights(generator):
    lights = renders.random_lights(300, generator)
    assert lights.positions.shape == (300, 6, 3) and lights.ambient.shape == (300, 3)
    r = lights.positions.norm(dim=-1)
    assert float(r.min()) >= 2.5 - 1e-5 and float(r.max()) <= 4.0 + 1e-5
    count = (lights.colors.abs().sum(-1) > 0).sum(-1)
    assert set(count.tolist()) == set(range(7))  # 0 to 6 lights
    assert float(lights.ambient.min()) >= 0.3 * 0.85 - 1e-6


def test_solid_texture_leaves_background_and_zero_strength(rendered):
    _, out = rendered
    B = out["image"].shape[0]
    rgb = torch.rand(B, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    vol = textures.noise_volume(B, 8, torch.Generator().manual_seed(0))
    args = (out["mask"], out["depth"], out["K"], out["R"], out["t"], vol)
    assert torch.equal(renders.apply_solid_texture(rgb, *args, strength=0.0), rgb)
    tex = renders.apply_solid_texture(rgb, *args, strength=0.8)
    empty = (out["mask"] == 0).expand_as(rgb)
    assert torch.equal(tex[empty], rgb[empty]) and not torch.equal(tex, rgb)


def test_shape_tensors_colours_follow_parts():
    shs = [shapes.random_shape("chair", 0), shapes.random_shape("bookcase", 0)]
    st = renders.shape_tensors(shs, "distinct", torch.Generator().manual_seed(0))
    assert st["faces"].shape[0] == 2
    for b, sh in enumerate(shs):
        assert bool((st["faces"][b, len(sh.faces) :] == -1).all()) and bool((st["face_part"][b, len(sh.faces) :] == -1).all())
    for b, sh in enumerate(shs):
        fp = st["face_part"][b, : len(sh.faces)]
        assert torch.equal(fp, sh.face_part)
        for p in range(len(sh.part_names)):
            cols = st["face_colors"][b, : len(sh.faces)][fp == p]
            assert torch.equal(cols, cols[:1].expand_as(cols))
    one = renders.shape_tensors(shs, torch.tensor([0.2, 0.4, 0.6]))
    valid = one["face_part"] >= 0
    torch.testing.assert_close(one["face_colors"][valid], torch.tensor([0.2, 0.4, 0.6]).expand(int(valid.sum()), 3))


def test_render_set_deterministic_and_labelled():
    kw = dict(categories=["chair", "table"], n=6, split="val", image_size=24, batch_size=4, antialias=1)
    a = renders.make_render_set(seed=3, **kw)
    b = renders.make_render_set(seed=3, **kw)
    c = renders.make_render_set(seed=4, **kw)
    assert set(a) == set(renders.DEFAULT_FIELDS)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["image"], c["image"])
    assert a["category"].tolist() == [CATS.index("chair"), CATS.index("table")] * 3
    assert a["shape_seed"][0::2].tolist() == shapes.shape_seeds("chair", "val", 3)
    ds = renders.RenderDataset.from_tensors(a)
    assert len(ds) == 6 and ds[2]["image"].shape == (3, 24, 24) and set(ds[0]) == set(a)
    more = renders.make_render_set(seed=3, fields=("image", "depth", "parts"), **kw)
    torch.testing.assert_close(more["image"], a["image"])


def test_render_on_device(device):
    g = torch.Generator().manual_seed(0)
    shs = [shapes.random_shape("sofa", 0)]
    vp = {"azimuth": torch.tensor([0.3]), "elevation": torch.tensor([0.2])}
    out = renders.render_shapes(shs, vp, 16, g, device=device, antialias=1)
    assert out["image"].device.type == device.type and out["mask"].sum() > 0


def test_render_errors():
    g = torch.Generator().manual_seed(0)
    sh = [shapes.random_shape("chair", 0)]
    vp = {"azimuth": torch.tensor([0.0]), "elevation": torch.tensor([0.1])}
    with pytest.raises(ValueError, match="image_size"):
        renders.render_shapes(sh, vp, 0, g)
    with pytest.raises(ValueError, match="truncation"):
        renders.render_shapes(sh, vp, 16, g, truncation=0.9)
    with pytest.raises(ValueError, match="viewpoints"):
        renders.render_shapes(sh, torch.zeros(2, 3), 16, g)
    with pytest.raises(ValueError, match="background"):
        renders.render_shapes(sh, vp, 16, g, background=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shapes"):
        renders.render_shapes([], vp, 16, g)
    with pytest.raises(ValueError, match="categories"):
        renders.make_render_set(["lamp"], n=2)
    with pytest.raises(ValueError, match="mode"):
        renders.ViewpointPrior(mode="orbit")
    with pytest.raises(ValueError, match="part_colors"):
        renders.shape_tensors(sh, "rainbow")
    with pytest.raises(ValueError, match="n"):
        renders.ViewpointPrior().sample(-1)


def test_make_render_set_hooks_draw_per_batch_and_transform():
    # shape_start counts shapes further along the split; batch_kwargs and transform see every batch.
    seen = []

    def flat_dark_background(batch, g):
        seen.append(len(batch))
        return dict(background=torch.full((3,), 0.25))

    def invert(out, g):
        out["image"] = 1 - out["image"]

    data = renders.make_render_set("chair", n=5, image_size=16, seed=0, batch_size=2, shape_start=50,
                                   batch_kwargs=flat_dark_background, transform=invert, antialias=1)
    assert seen == [2, 2, 1]
    assert data["shape_seed"].tolist() == shapes.shape_seeds("chair", "train", 5, start=50)
    outside = data["mask"][:, 0] == 0
    torch.testing.assert_close(data["image"].permute(0, 2, 3, 1)[outside], torch.full_like(data["image"].permute(0, 2, 3, 1)[outside], 0.75))  # 1 - 0.25: transformed
