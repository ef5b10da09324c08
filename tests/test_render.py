"""Tests of lessons.render: rasterizer, shading, compositing, mesh/voxel renders, PTN projector."""

import math

import pytest
import torch

from lessons import geometry, mesh, render


def camera(B, azimuth, elevation, distance, size, focal, dtype=torch.float32, device="cpu", inplane=0.0):
    full = lambda x: torch.full((B,), float(x), dtype=dtype)  # noqa: E731
    R, t = geometry.camera_from_viewpoint(full(azimuth), full(elevation), full(inplane), full(distance))
    K = geometry.intrinsics(full(focal), size, size)
    return K.to(device), R.to(device), t.to(device)


def iou(a, b):
    a, b = a.bool(), b.bool()
    return (a & b).sum().item() / max((a | b).sum().item(), 1)


def voxel_centres(res, dtype=torch.float32):
    c = (torch.arange(res, dtype=dtype) + 0.5) / res - 0.5
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")  # D, H, W = z, y, x
    return x, y, z


# ------------------------------------------------------------------------------ rasterizer


def naive_rasterize(vertices, faces, K, R, t, H, W):
    """Reference: loop over pixels and triangles, intersect the pixel's ray with each plane."""
    Kinv = torch.linalg.inv(K)
    Xc = vertices @ R.T + t  # camera frame
    face_index = torch.full((H, W), -1, dtype=torch.int64)
    depth = torch.zeros(H, W, dtype=vertices.dtype)
    bary = torch.zeros(H, W, 3, dtype=vertices.dtype)
    for i in range(H):
        for j in range(W):
            ray = Kinv @ torch.tensor([j + 0.5, i + 0.5, 1.0], dtype=vertices.dtype)  # z component 1
            best = math.inf
            for f, (a, b, c) in enumerate(faces.tolist()):
                A, B_, C = Xc[a], Xc[b], Xc[c]
                # solve  lam * ray = A + b1 (B - A) + b2 (C - A)
                M = torch.stack([ray, A - B_, A - C], dim=1)
                lam, b1, b2 = torch.linalg.solve(M, A).tolist()
                b0 = 1 - b1 - b2
                if min(b0, b1, b2) >= 0 and 0 < lam < best:
                    best = lam
                    face_index[i, j] = f
                    depth[i, j] = lam
                    bary[i, j] = torch.tensor([b0, b1, b2], dtype=vertices.dtype)
    return face_index, bary, depth


def test_rasterize_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    dtype = torch.float64
    # three overlapping triangles, one wound each way, one piercing another
    v = torch.tensor(
        [[-0.4, -0.3, 0.1], [0.4, -0.2, -0.2], [0.0, 0.45, 0.0],
         [-0.3, 0.3, -0.3], [-0.1, -0.4, 0.3], [0.45, 0.25, 0.2],
         [-0.45, 0.05, -0.1], [0.2, 0.1, 0.35], [0.1, -0.35, -0.3]],
        dtype=dtype,
    ) + 0.01 * torch.randn(9, 3, generator=g, dtype=dtype)
    f = torch.tensor([[0, 1, 2], [3, 5, 4], [6, 7, 8]])
    K, R, t = camera(1, 0.3, 0.2, 2.0, 16, 30.0, dtype)
    frag = render.rasterize(v[None], f, K, R, t, 16, 16)
    fi, bary, depth = naive_rasterize(v, f, K[0], R[0], t[0], 16, 16)
    assert (frag.face_index[0] == fi).all()
    assert (fi >= 0).sum() > 60 and len(set(fi[fi >= 0].tolist())) == 3  # all three faces are seen
    torch.testing.assert_close(frag.depth[0], depth)
    torch.testing.assert_close(frag.bary[0], bary)


def test_rasterize_batch_shapes_and_batched_faces(dtype, device):
    v, f = mesh.box((0.0, 0.0, 0.0), 0.6, dtype=dtype, device=device)
    for B in (1, 3):
        K, R, t = camera(B, 0.5, 0.3, 2.0, 12, 14.0, dtype, device)
        frag = render.rasterize(v.expand(B, -1, -1), f, K, R, t, 12, 10)
        assert frag.face_index.shape == (B, 12, 10) and frag.face_index.dtype == torch.int64
        assert frag.bary.shape == (B, 12, 10, 3) and frag.depth.shape == (B, 12, 10) and frag.depth.dtype == dtype
        frag2 = render.rasterize(v.expand(B, -1, -1), f.expand(B, -1, -1), K, R, t, 12, 10)
        assert (frag.face_index == frag2.face_index).all()
        hit = frag.face_index >= 0
        torch.testing.assert_close(frag.bary.sum(-1)[hit], torch.ones_like(frag.depth[hit]))
        assert (frag.depth[~hit] == 0).all() and (frag.bary[~hit] == 0).all()


def test_rasterize_projects_where_geometry_projects():
    """Convention pin: world +x is to the right, world +y is up (smaller v) at azimuth 0."""
    v = torch.tensor([[0.30, 0.30, 0.0], [0.36, 0.30, 0.0], [0.30, 0.36, 0.0]])
    K, R, t = camera(1, 0.0, 0.0, 2.0, 32, 40.0)
    frag = render.rasterize(v[None], torch.tensor([[0, 1, 2]]), K, R, t, 32, 32)
    rows, cols = (frag.face_index[0] == 0).nonzero(as_tuple=True)
    assert rows.numel() > 0
    assert (cols >= 16).all() and (rows < 16).all()  # upper right quadrant
    px, _ = geometry.project(v[None], K, R, t)
    # every covered pixel centre lies inside the projected bounding box
    assert (cols + 0.5 >= px[0, :, 0].min()).all() and (cols + 0.5 <= px[0, :, 0].max()).all()
    assert (rows + 0.5 >= px[0, :, 1].min()).all() and (rows + 0.5 <= px[0, :, 1].max()).all()


def test_chunking_does_not_change_the_result(monkeypatch):
    v, f = mesh.merge([mesh.box((0.0, 0.0, 0.0), 0.8), mesh.cylinder((0.1, 0.0, 0.2), 0.2, 0.5, segments=9)])
    K, R, t = camera(2, 0.5, 0.4, 1.5, 24, 30.0)
    whole = render.rasterize(v.expand(2, -1, -1), f, K, R, t, 24, 24)
    monkeypatch.setattr(render, "_CHUNK_CPU", 7)  # fewer candidates than one big triangle covers
    monkeypatch.setattr(render, "_CHUNK_CUDA", 7)
    chunked = render.rasterize(v.expand(2, -1, -1), f, K, R, t, 24, 24)
    assert (whole.face_index == chunked.face_index).all() and (whole.face_index >= 0).sum() > 300
    torch.testing.assert_close(whole.depth, chunked.depth)


def test_cull_backfaces_and_near_plane():
    v, f = mesh.box((0.0, 0.0, 0.0), 0.5)
    K, R, t = camera(1, 0.0, 0.0, 2.0, 16, 20.0)
    both = render.rasterize(v[None], f, K, R, t, 16, 16)
    front = render.rasterize(v[None], f, K, R, t, 16, 16, cull_backfaces=True)
    inverted = render.rasterize(v[None], f.flip(-1), K, R, t, 16, 16, cull_backfaces=True)
    assert (front.face_index == both.face_index).all()  # a closed outward mesh: the same picture
    # inside out, only the far (back) wall faces the camera: deeper
    hit = both.face_index >= 0
    torch.testing.assert_close(both.depth[hit], torch.full_like(both.depth[hit], 1.75))
    # the back wall spans 20 * 0.25 / 2.25 = 2.2 px around the centre: pixels 6..9
    torch.testing.assert_close(inverted.depth[0, 6:10, 6:10], torch.full((4, 4), 2.25))
    assert ((inverted.depth[hit] > 1.75) & (inverted.depth[hit] <= 2.25 + 1e-6)).all()  # back and side walls
    # a camera inside the box: faces behind it are dropped, not drawn mirrored
    K2, R2, t2 = camera(1, 0.0, 0.0, 0.1, 16, 4.0)
    inside = render.rasterize(v[None], f, K2, R2, t2, 16, 16)
    hit2 = inside.face_index >= 0
    assert hit2.any() and (inside.depth[hit2] > 0).all()


def test_rasterize_gradcheck_depth_in_vertices():
    v = torch.tensor([[-0.4, -0.3, 0.1], [0.4, -0.2, -0.2], [0.0, 0.45, 0.0]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[0, 1, 2]])
    K, R, t = camera(1, 0.3, 0.2, 2.0, 5, 9.0, torch.float64)

    def fn(x):
        frag = render.rasterize(x[None], f, K, R, t, 5, 5)
        return frag.depth, frag.bary

    assert (render.rasterize(v[None], f, K, R, t, 5, 5).face_index >= 0).sum() >= 5
    assert torch.autograd.gradcheck(fn, (v,))


# ------------------------------------------------------------------------------ shading


def test_shade_lambertian_values_shapes_and_gradcheck():
    lights = render.PointLights(
        positions=torch.tensor([[[0.0, 0.0, 1e4], [1e4, 0.0, 0.0]]], dtype=torch.float64),
        colors=torch.tensor([[[0.5, 0.5, 0.5], [0.0, 0.2, 0.0]]], dtype=torch.float64),
        ambient=torch.tensor([[0.1, 0.1, 0.1]], dtype=torch.float64),
    )
    theta = 0.7
    n = torch.tensor([[math.sin(theta), 0.0, math.cos(theta)]], dtype=torch.float64)  # (B=1, 3)
    rho = torch.tensor([[0.8, 0.6, 0.4]], dtype=torch.float64)
    out = render.shade_lambertian(n, torch.zeros_like(n), rho, lights)
    expected = rho * (0.1 + 0.5 * math.cos(theta) + torch.tensor([0.0, 0.2, 0.0], dtype=torch.float64) * math.sin(theta))
    torch.testing.assert_close(out, expected)
    # (B, H, W, 3) channels last; a light behind gives only ambient
    nb = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand(1, 2, 3, 3)
    back = render.shade_lambertian(nb, torch.zeros_like(nb), torch.ones_like(nb), lights)
    torch.testing.assert_close(back, torch.full((1, 2, 3, 3), 0.1, dtype=torch.float64))
    # L = 0: ambient only
    amb = render.PointLights(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), torch.tensor([[0.2, 0.3, 0.4]] * 2))
    out0 = render.shade_lambertian(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.ones(2, 5, 3), amb)
    torch.testing.assert_close(out0, torch.tensor([0.2, 0.3, 0.4]).expand(2, 5, 3))
    # one light set is shared by the whole batch
    shared = render.shade_lambertian(n.expand(4, 3), torch.zeros(4, 3, dtype=torch.float64), rho.expand(4, 3), lights)
    torch.testing.assert_close(shared, expected.expand(4, 3))
    g = torch.Generator().manual_seed(0)
    args = [torch.randn(1, 4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    near = render.PointLights(torch.tensor([[[0.0, 1.0, 2.0]]], dtype=torch.float64), torch.ones(1, 1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda a, b, c: render.shade_lambertian(a, b, c, near), args)


def test_box_head_on_depth_normals_light():
    half = 0.25
    v, f = mesh.box((0.0, 0.0, 0.0), 2 * half)
    K, R, t = camera(1, 0.0, 0.0, 2.0, 32, 40.0)
    out = render.render_mesh(v[None], f, K, R, t, 32, 32)
    hit = out.alpha[0, 0] > 0
    torch.testing.assert_close(out.depth[0, 0][hit], torch.full_like(out.depth[0, 0][hit], 2.0 - half))
    assert (out.depth[0, 0][~hit] == 0).all() and (out.face_index[0, 0][~hit] == -1).all()
    # normals point at the camera (+z, world frame), 0 where empty
    n = out.normals[0].permute(1, 2, 0)[hit]
    torch.testing.assert_close(n, torch.tensor([0.0, 0.0, 1.0]).expand_as(n))
    # head light: grey * (ambient 0.3 + 0.7 cos), cos = 1 at the centre
    torch.testing.assert_close(out.rgb[0, :, 16, 16], torch.full((3,), 0.7), atol=1e-3, rtol=0)
    # silhouette: the front face, half-width f * half / (d - half) = 40 * 0.25 / 1.75 = 5.71 px
    # around 16, so the pixel centres j + 1/2 in [10.29, 21.71]: columns 10 to 21
    cols = hit.any(0).nonzero().squeeze(1)
    assert cols.min().item() == 10 and cols.max().item() == 21
    # no pinholes where the face's diagonal runs exactly through pixel centres
    assert hit.sum().item() == 12 * 12 and hit[10:22, 10:22].all()
    # a light behind the object: only ambient
    behind = render.default_lights(1, position=torch.tensor([0.0, 0.0, -5.0]))
    dark = render.render_mesh(v[None], f, K, R, t, 32, 32, lights=behind)
    torch.testing.assert_close(dark.rgb[0, :, 16, 16], torch.full((3,), 0.7 * 0.3))
    assert (dark.rgb[0][:, hit] == dark.rgb[0, :, 16, 16, None]).all()


def test_lambert_falls_off_with_cos():
    v, f = mesh.box((0.0, 0.0, 0.0), 0.5)
    lights = render.PointLights(torch.tensor([[[0.0, 0.0, 1e5]]]), torch.ones(1, 1, 3), torch.zeros(1, 3))
    K, R, t = camera(1, 0.0, 0.0, 3.0, 32, 40.0)
    for theta in (0.0, 0.4, 0.7):
        Ry = geometry.rotation_y(torch.tensor(theta))
        out = render.render_mesh((v @ Ry.T)[None], f, K, R, t, 32, 32, face_colors=torch.ones(1, 12, 3), lights=lights)
        # the pixel right of the image centre sees the front face, turned by theta
        assert out.face_index[0, 0, 16, 17] in (10, 11)
        torch.testing.assert_close(out.rgb[0, :, 16, 17], torch.full((3,), math.cos(theta)), atol=1e-4, rtol=0)


def test_vertex_and_face_colors():
    v, f = mesh.box((0.0, 0.0, 0.0), 0.5)
    K, R, t = camera(1, 0.0, 0.0, 2.0, 16, 20.0)
    amb = render.PointLights(torch.zeros(1, 0, 3), torch.zeros(1, 0, 3), torch.ones(1, 3))
    face_colors = torch.zeros(1, 12, 3)
    face_colors[0, 10:12] = torch.tensor([1.0, 0.0, 0.0])  # the +z faces are red
    out = render.render_mesh(v[None], f, K, R, t, 16, 16, face_colors=face_colors, lights=amb)
    hit = out.alpha[0, 0] > 0
    assert (out.rgb[0, 0][hit] == 1).all() and (out.rgb[0, 1:][:, hit] == 0).all()
    # vertex colours = the world x coordinate + 1/2: interpolated, grows to the right
    vc = (v[:, :1] + 0.5).expand(8, 3)[None]
    out = render.render_mesh(v[None], f, K, R, t, 16, 16, vertex_colors=vc, lights=amb)
    row = out.rgb[0, 0, 8][hit[8]]
    assert (row[1:] > row[:-1]).all() and row.min() > 0 and row.max() < 1


def test_render_mesh_dtypes_devices_and_gradients(dtype, device):
    v, f = mesh.cylinder((0.05, 0.0, 0.0), 0.3, 0.6, segments=7, dtype=dtype, device=device)
    K, R, t = camera(2, 0.4, 0.3, 2.0, 12, 14.0, dtype, device)
    vv = v.expand(2, -1, -1).clone().requires_grad_()
    out = render.render_mesh(vv, f, K, R, t, 12, 12, antialias=2)
    assert out.rgb.dtype == dtype and out.rgb.device.type == device.type and out.face_index.dtype == torch.int64
    assert out.rgb.shape == (2, 3, 12, 12) and out.alpha.shape == out.depth.shape == (2, 1, 12, 12)
    assert out.normals.shape == (2, 3, 12, 12) and out.face_index.shape == (2, 1, 12, 12)
    (out.rgb.sum() + out.depth.sum()).backward()
    assert torch.isfinite(vv.grad).all() and vv.grad.abs().sum() > 0


def test_render_mesh_gradcheck_in_vertices_and_colors():
    v = torch.tensor([[-0.4, -0.3, 0.1], [0.4, -0.2, -0.2], [0.0, 0.45, 0.0]], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([[[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.3, 0.3, 0.7]]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[0, 1, 2]])
    K, R, t = camera(1, 0.3, 0.2, 2.0, 5, 9.0, torch.float64)
    lights = render.PointLights(torch.tensor([[[0.5, 1.0, 2.0]]], dtype=torch.float64), torch.full((1, 1, 3), 0.6, dtype=torch.float64), torch.full((1, 3), 0.2, dtype=torch.float64))

    def fn(x, col):
        out = render.render_mesh(x[None], f, K, R, t, 5, 5, vertex_colors=col, lights=lights)
        return out.rgb, out.depth, out.normals

    assert torch.autograd.gradcheck(fn, (v, c))


def test_padding_ignored_and_batch_equals_single():
    a = mesh.box((0.1, 0.0, 0.0), 0.5)
    b = mesh.cylinder((0.0, 0.0, 0.1), 0.3, 0.6, segments=9)
    v, f, _ = mesh.pad_meshes([a, b])
    K, R, t = camera(2, 0.6, 0.3, 2.0, 24, 30.0)
    both = render.render_mesh(v, f, K, R, t, 24, 24)
    for i, (vi, fi) in enumerate((a, b)):
        one = render.render_mesh(vi[None], fi, K[i : i + 1], R[i : i + 1], t[i : i + 1], 24, 24)
        for x, y in zip(both, one):
            torch.testing.assert_close(x[i : i + 1], y)
    assert (both.face_index[0] < 12).all() and both.alpha[0].sum() > 0


def test_composite_and_antialias():
    fg = torch.tensor([0.2, 0.4, 0.6]).reshape(1, 3, 1, 1).expand(1, 3, 2, 2)
    alpha = torch.tensor([[0.0, 0.25], [0.5, 1.0]]).reshape(1, 1, 2, 2)
    bg = torch.tensor([1.0, 0.0, 0.5])
    out = render.composite(fg, alpha, bg)
    torch.testing.assert_close(out[0, :, 0, 1], 0.25 * torch.tensor([0.2, 0.4, 0.6]) + 0.75 * bg)
    torch.testing.assert_close(out[0, :, 0, 0], bg)
    torch.testing.assert_close(out[0, :, 1, 1], torch.tensor([0.2, 0.4, 0.6]))
    torch.testing.assert_close(render.composite(fg, alpha, bg.reshape(1, 3, 1, 1).expand(1, 3, 2, 2)), out)
    # antialias: fractional alpha at edges, in [0, 1], coverage ~ the projected area
    v, f = mesh.box((0.0, 0.0, 0.0), 0.5)
    K, R, t = camera(1, 0.4, 0.0, 2.0, 32, 37.0)
    hard = render.render_mesh(v[None], f, K, R, t, 32, 32)
    soft = render.render_mesh(v[None], f, K, R, t, 32, 32, antialias=4)
    fine = render.render_mesh(v[None], f, K * torch.tensor([[8.0], [8.0], [1.0]]), R, t, 256, 256)
    assert ((soft.alpha > 0) & (soft.alpha < 1)).sum() > 20
    assert soft.alpha.min() >= 0 and soft.alpha.max() <= 1
    assert set(hard.alpha.unique().tolist()) <= {0.0, 1.0}
    assert abs(soft.alpha.sum().item() - fine.alpha.sum().item() / 64) < 2.0
    # straight colour: a soft edge pixel has the surface's colour, not a darker one
    edge = (soft.alpha[0, 0] > 0.2) & (soft.alpha[0, 0] < 0.8)
    assert (soft.rgb[0].amax(0)[edge] > 0.2).all()


# ------------------------------------------------------------------------------ voxels and PTN


def blob(res=32, centre=(0.2, -0.1, 0.05), radius=0.12):
    x, y, z = voxel_centres(res)
    cx, cy, cz = centre
    return (((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) < radius**2).float()


def test_voxel_blob_lands_where_geometry_projects():
    centre = torch.tensor([0.2, -0.1, 0.05])
    occ = blob(centre=tuple(centre.tolist()))[None, None]  # (1, 1, D, H, W)
    K, R, t = camera(1, 0.5, 0.3, 2.5, 64, 80.0)
    px, _ = geometry.project(centre.reshape(1, 1, 3), K, R, t)
    ys, xs = torch.meshgrid(torch.arange(64.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
    for sil in (render.render_voxels(occ, K, R, t, 64, 64).alpha[0, 0], render.ptn_project(occ, K, R, t, 64, 64, depth_samples=64)[0, 0]):
        w = (sil > 0.5).float()
        assert w.sum() > 20
        centroid = torch.stack([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
        assert (centroid - px[0, 0]).norm() < 1.0


@pytest.mark.parametrize("shape", ["box", "cylinder"])
def test_mesh_voxel_and_ptn_silhouettes_agree(shape):
    res = 32
    x, y, z = voxel_centres(res)
    if shape == "box":  # faces on voxel boundaries: the voxelisation is exact
        lo, hi = torch.tensor([-6, -10, -4]) / 32, torch.tensor([10, 4, 8]) / 32
        v, f = mesh.box((lo + hi) / 2, hi - lo)
        occ = (x > lo[0]) & (x < hi[0]) & (y > lo[1]) & (y < hi[1]) & (z > lo[2]) & (z < hi[2])
    else:
        v, f = mesh.cylinder((0.05, 0.0, -0.05), 0.3, 0.7, axis="y", segments=48)
        occ = ((x - 0.05) ** 2 + (z + 0.05) ** 2 < 0.3**2) & (y.abs() < 0.35)
    views = torch.tensor([[0.3, 0.2], [2.0, 0.5], [-1.2, -0.3]])
    R, t = geometry.camera_from_viewpoint(views[:, 0], views[:, 1], torch.zeros(3), torch.full((3,), 2.2))
    K = geometry.intrinsics(torch.full((3,), 70.0), 64, 64)
    occ = occ.float().expand(3, 1, res, res, res)
    m = render.render_mesh(v.expand(3, -1, -1), f, K, R, t, 64, 64).alpha
    vox = render.render_voxels(occ, K, R, t, 64, 64).alpha
    ptn = render.ptn_project(occ, K, R, t, 64, 64, depth_samples=64) > 0.5
    for i in range(3):
        assert iou(m[i], vox[i]) >= (0.97 if shape == "box" else 0.9)
        assert iou(m[i], ptn[i]) >= 0.9


def test_render_voxels_colors_and_layouts():
    occ = torch.zeros(2, 4, 4, 4)
    occ[:, 1:3, 1:3, 0:2] = 1  # left half (small x) ...
    occ[:, 1:3, 1:3, 2:4] = 1  # ... and right half (large x)
    colors = torch.zeros(2, 3, 4, 4, 4)
    colors[:, 0, :, :, :2] = 1  # red on the left
    colors[:, 2, :, :, 2:] = 1  # blue on the right
    K, R, t = camera(2, 0.0, 0.0, 2.0, 32, 40.0)
    amb = render.PointLights(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), torch.ones(2, 3))
    out = render.render_voxels(occ, K, R, t, 32, 32, colors=colors, lights=amb)
    out5 = render.render_voxels(occ[:, None], K, R, t, 32, 32, colors=colors, lights=amb)
    torch.testing.assert_close(out.rgb, out5.rgb)
    row = out.rgb[0, :, 16]
    hit = out.alpha[0, 0, 16] > 0
    left, right = row[:, hit][:, :3], row[:, hit][:, -3:]
    assert (left[0] == 1).all() and (left[2] == 0).all() and (right[2] == 1).all() and (right[0] == 0).all()
    grey = render.render_voxels(occ, K, R, t, 32, 32, colors=torch.tensor([0.5, 0.5, 0.5]), lights=amb)
    assert set(grey.rgb[grey.alpha.expand(-1, 3, -1, -1) > 0].unique().tolist()) == {0.5}
    empty = render.render_voxels(torch.zeros(2, 4, 4, 4), K, R, t, 8, 8)
    assert (empty.alpha == 0).all() and (empty.face_index == -1).all()


def test_ptn_sampling_grid_round_trip():
    K, R, t = camera(2, 0.7, 0.4, 2.0, 6, 8.0, torch.float64)
    grid = render.ptn_sampling_grid(K, R, t, 6, 5, 4, near=1.5, far=2.5)
    assert grid.shape == (2, 4, 6, 5, 3)
    X = grid.reshape(2, -1, 3) / 2
    px, depth = geometry.project(X, K, R, t)
    centres = geometry.pixel_grid(6, 5, dtype=torch.float64).reshape(1, 1, -1, 2).expand(2, 4, -1, -1)
    torch.testing.assert_close(px, centres.reshape(2, -1, 2))
    torch.testing.assert_close(depth.reshape(2, 4, -1)[..., 0], torch.linspace(1.5, 2.5, 4, dtype=torch.float64).expand(2, 4))
    # the optical axis at depth d passes through the origin (grid coordinate 0)
    K2, R2, t2 = camera(1, 0.7, 0.4, 2.0, 6, 8.0, torch.float64)
    g2 = render.ptn_sampling_grid(K2, R2, t2, 6, 6, 3, near=1.0, far=3.0)
    torch.testing.assert_close(g2[0, 1, 2:4, 2:4].mean((0, 1)), torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("reduce", ["max", "ray"])
def test_ptn_project_gradcheck_and_gradient_support(reduce):
    g = torch.Generator().manual_seed(0)
    vol = torch.rand(1, 1, 4, 4, 4, generator=g, dtype=torch.float64).requires_grad_()
    # a narrow frustum: rays only reach the middle of the volume
    K, R, t = camera(1, 0.2, 0.1, 2.0, 5, 20.0, torch.float64)
    fn = lambda x: render.ptn_project(x, K, R, t, 5, 5, depth_samples=4, reduce=reduce)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (vol,))
    fn(vol).sum().backward()
    grad = vol.grad[0, 0]
    assert grad.abs().sum() > 0
    # voxels next to any sample point (the trilinear support) are the only ones with gradient
    grid = render.ptn_sampling_grid(K, R, t, 5, 5, 4)
    idx = ((grid.reshape(-1, 3) + 1) * 4 - 1) / 2  # continuous voxel index (x, y, z), align_corners=False
    support = torch.zeros(4, 4, 4, dtype=torch.bool)
    for x, y, z in idx.tolist():
        for i in (math.floor(x), math.floor(x) + 1):
            for j in (math.floor(y), math.floor(y) + 1):
                for k in (math.floor(z), math.floor(z) + 1):
                    if 0 <= i < 4 and 0 <= j < 4 and 0 <= k < 4:
                        support[k, j, i] = True
    assert not support.all()
    assert (grad[~support] == 0).all()


def test_ptn_project_reduce_and_camera_gradient():
    vol = blob(8, centre=(0.0, 0.0, 0.0), radius=0.3)[None, None].double()
    K, R, t = camera(1, 0.3, 0.2, 2.0, 8, 10.0, torch.float64)
    pmax = render.ptn_project(vol, K, R, t, 8, 8, depth_samples=16)
    pray = render.ptn_project(vol, K, R, t, 8, 8, depth_samples=16, reduce="ray")
    assert pmax.shape == (1, 1, 8, 8) and (pray >= pmax - 1e-12).all() and pmax.max() > 0.9
    # differentiable in the translation through the sampling grid
    tt = t.clone().requires_grad_()
    render.ptn_project(vol, K, R, tt, 8, 8, depth_samples=16, reduce="ray").sum().backward()
    assert torch.isfinite(tt.grad).all() and tt.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ errors


def test_errors_name_the_argument_and_shapes():
    v, f = mesh.box()
    K, R, t = camera(1, 0.0, 0.0, 2.0, 8, 10.0)
    with pytest.raises(ValueError, match=r"vertices: expected shape \(B, V, 3\), received \(8, 3\)"):
        render.rasterize(v, f, K, R, t, 8, 8)
    with pytest.raises(ValueError, match=r"K: expected shape \(B, 3, 3\).*received \(3, 3\)"):
        render.render_mesh(v[None], f, K[0], R, t, 8, 8)
    with pytest.raises(ValueError, match=r"t: expected shape \(B, 3\).*received \(2, 3\)"):
        render.render_mesh(v[None], f, K, R, t.expand(2, 3), 8, 8)
    with pytest.raises(ValueError, match=r"face_colors: expected shape \(B, F, 3\).*received \(1, 5, 3\)"):
        render.render_mesh(v[None], f, K, R, t, 8, 8, face_colors=torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match=r"antialias"):
        render.render_mesh(v[None], f, K, R, t, 8, 8, antialias=0)
    with pytest.raises(ValueError, match=r"height: expected a positive int"):
        render.rasterize(v[None], f, K, R, t, 0, 8)
    with pytest.raises(ValueError, match=r"volume: expected shape \(B, C, D, H, W\), received \(4, 4, 4\)"):
        render.ptn_project(torch.zeros(4, 4, 4), K, R, t, 8, 8)
    with pytest.raises(ValueError, match=r"reduce"):
        render.ptn_project(torch.zeros(1, 1, 4, 4, 4), K, R, t, 8, 8, reduce="sum")
    with pytest.raises(ValueError, match=r"occupancy: expected shape \(B, 1, D, H, W\), received \(1, 2, 4, 4, 4\)"):
        render.render_voxels(torch.zeros(1, 2, 4, 4, 4), K, R, t, 8, 8)
    with pytest.raises(ValueError, match=r"alpha: expected shape \(B, 1, H, W\).*received \(1, 3, 2, 2\)"):
        render.composite(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"background: expected shape \(C\).*received \(4,\)"):
        render.composite(torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(4))
    with pytest.raises(ValueError, match=r"colors: expected shape \(B, L, 3\).*received \(1, 2, 3\)"):
        render.PointLights(torch.zeros(1, 1, 3), torch.zeros(1, 2, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"lights: expected 1 or 3 light sets"):
        render.shade_lambertian(torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(3, 3), render.default_lights(2))
