"""Tests of lessons.mesh: normals, areas, volumes, primitives, padding, voxel surfaces, sampling."""

import math

import pytest
import torch

from lessons import geometry, mesh


def tetrahedron(dtype=torch.float64):
    v = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return v, f


def edge_counts(faces):
    """Directed edges of a face list, counted (a closed consistently wound mesh: each once, its twin once)."""
    edges = {}
    for a, b, c in faces.tolist():
        for e in ((a, b), (b, c), (c, a)):
            edges[e] = edges.get(e, 0) + 1
    return edges


def assert_closed_outward(v, f, centre):
    edges = edge_counts(f)
    assert all(n == 1 for n in edges.values())
    assert all(edges.get((b, a)) == 1 for a, b in edges)
    n = mesh.face_normals(v, f)
    centroid = v[f].mean(dim=1)
    assert ((n * (centroid - centre)).sum(-1) > 0).all()


# ------------------------------------------------------------------------------ normals, areas


def test_face_normal_convention_ccw_points_up():
    """Convention pin: (0,0,0), (1,0,0), (0,1,0) is counter-clockwise seen from +z, so n = +z."""
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    torch.testing.assert_close(mesh.face_normals(v, torch.tensor([[0, 1, 2]])), torch.tensor([[0.0, 0, 1]]))
    torch.testing.assert_close(mesh.face_normals(v, torch.tensor([[0, 2, 1]])), torch.tensor([[0.0, 0, -1]]))
    torch.testing.assert_close(mesh.face_areas(v, torch.tensor([[0, 1, 2]])), torch.tensor([0.5]))


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_face_normals_and_areas_match_loop_and_rotate(batch, dtype, device):
    g = torch.Generator().manual_seed(1)
    v0, f = mesh.box((0.1, -0.2, 0.3), (0.5, 0.7, 0.9), dtype=dtype)
    R = geometry.random_rotation(batch, generator=g, dtype=dtype)
    v = (v0 @ R.transpose(-1, -2) if batch else v0).to(device)
    f = f.to(device)
    n = mesh.face_normals(v, f)
    a = mesh.face_areas(v, f)
    assert n.shape == (*batch, 12, 3) and a.shape == (*batch, 12)
    # naive reference: one face at a time
    flat_v = v.reshape(-1, 8, 3)
    for b in range(flat_v.shape[0]):
        for k, (i, j, l) in enumerate(f.tolist()):
            c = torch.linalg.cross(flat_v[b, j] - flat_v[b, i], flat_v[b, l] - flat_v[b, i])
            torch.testing.assert_close(n.reshape(-1, 12, 3)[b, k], c / c.norm())
            torch.testing.assert_close(a.reshape(-1, 12)[b, k], c.norm() / 2)
    # areas do not change under rotation; normals rotate with the mesh
    torch.testing.assert_close(a.sum(-1), torch.full(batch, 2 * (0.5 * 0.7 + 0.7 * 0.9 + 0.5 * 0.9), dtype=dtype, device=device))
    if batch:
        n0 = mesh.face_normals(v0.to(device), f)
        torch.testing.assert_close(n, n0 @ R.to(device).transpose(-1, -2))


def test_batched_faces_and_padding_rows():
    v, f = tetrahedron()
    vb = torch.stack([v, 2 * v])
    fb = torch.stack([f, f.flip(-1)])
    n = mesh.face_normals(vb, fb)
    torch.testing.assert_close(n[0], mesh.face_normals(v, f))
    torch.testing.assert_close(n[1], -mesh.face_normals(v, f))
    padded = torch.cat([f, torch.full((2, 3), -1)])
    assert (mesh.face_normals(v, padded)[4:] == 0).all()
    assert (mesh.face_areas(v, padded)[4:] == 0).all()
    torch.testing.assert_close(mesh.mesh_volume(v, padded), mesh.mesh_volume(v, f))
    torch.testing.assert_close(mesh.vertex_normals(v, padded), mesh.vertex_normals(v, f))


def test_vertex_normals_area_weighted_loop_reference():
    v, f = mesh.cylinder((0.0, 0.0, 0.0), 0.3, 0.5, segments=7, dtype=torch.float64)
    acc = torch.zeros_like(v)
    for i, j, k in f.tolist():  # naive loop in the test
        c = torch.linalg.cross(v[j] - v[i], v[k] - v[i])
        acc[i] += c
        acc[j] += c
        acc[k] += c
    torch.testing.assert_close(mesh.vertex_normals(v, f), acc / acc.norm(dim=-1, keepdim=True))
    vb = torch.stack([v, v + 1])
    torch.testing.assert_close(mesh.vertex_normals(vb, f)[1], mesh.vertex_normals(v, f))
    # an unused vertex gets the zero vector, not NaN
    v2 = torch.cat([v, torch.ones(1, 3, dtype=v.dtype)])
    assert (mesh.vertex_normals(v2, f)[-1] == 0).all()


def test_face_vertices_any_channels_and_batched_faces():
    v, f = tetrahedron()
    corners = mesh.face_vertices(v, f)
    assert corners.shape == (4, 3, 3)
    torch.testing.assert_close(corners[3], v[[1, 2, 3]])
    colors = torch.arange(8.0).reshape(2, 4, 1)  # (B, V, C=1)
    fb = torch.stack([f, f.roll(1, dims=0)])
    out = mesh.face_vertices(colors, fb)
    assert out.shape == (2, 4, 3, 1)
    torch.testing.assert_close(out[1, 0, :, 0], colors[1, f[3], 0])
    with pytest.raises(ValueError, match=r"faces: expected shape"):
        mesh.face_vertices(colors, f.expand(3, 4, 3))


def test_gradcheck_normals_areas_volume():
    v, f = tetrahedron()
    v = (v + 0.1 * torch.randn(v.shape, generator=torch.Generator().manual_seed(0), dtype=v.dtype)).requires_grad_()
    for fn in (mesh.face_normals, mesh.face_areas, mesh.vertex_normals, mesh.mesh_volume):
        assert torch.autograd.gradcheck(lambda x: fn(x, f), (v,))


def test_finite_gradients_on_a_degenerate_triangle():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[0, 1, 2]])
    (mesh.face_normals(v, f).sum() + mesh.face_areas(v, f).sum() + mesh.vertex_normals(v, f).sum()).backward()
    assert torch.isfinite(v.grad).all()
    assert (mesh.face_normals(v, f) == 0).all()


# ------------------------------------------------------------------------------ primitives


def test_box_closed_outward_volume_bounds(dtype):
    c = torch.tensor([0.1, -0.2, 0.05], dtype=dtype)
    v, f = mesh.box(c, (0.4, 0.6, 0.2))
    assert v.shape == (8, 3) and f.shape == (12, 3) and f.dtype == torch.int64 and v.dtype == dtype
    assert_closed_outward(v, f, c)
    torch.testing.assert_close(mesh.mesh_volume(v, f), torch.tensor(0.4 * 0.6 * 0.2, dtype=dtype))
    torch.testing.assert_close(v.amin(0), c - torch.tensor([0.2, 0.3, 0.1], dtype=dtype))
    torch.testing.assert_close(v.amax(0), c + torch.tensor([0.2, 0.3, 0.1], dtype=dtype))


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_cylinder_closed_outward_volume_axis(axis):
    c = torch.tensor([0.1, 0.2, -0.1], dtype=torch.float64)
    S, r, h = 12, 0.3, 0.8
    v, f = mesh.cylinder(c, r, h, axis=axis, segments=S)
    assert v.shape == (2 * S + 2, 3) and f.shape == (4 * S, 3)
    assert_closed_outward(v, f, c)
    # volume of a prism over a regular S-gon: (S/2) r^2 sin(2 pi / S) h
    expected = 0.5 * S * r * r * math.sin(2 * math.pi / S) * h
    torch.testing.assert_close(mesh.mesh_volume(v, f), torch.tensor(expected, dtype=torch.float64))
    extent = v.amax(0) - v.amin(0)
    k = "xyz".index(axis)
    assert abs(extent[k].item() - h) < 1e-12  # the height runs along the named axis
    assert all(extent[i] <= 2 * r + 1e-12 for i in range(3) if i != k)


def test_merge_offsets_and_volume():
    a = mesh.box((-0.3, 0.0, 0.0), 0.2, dtype=torch.float64)
    b = mesh.cylinder((0.3, 0.0, 0.0), 0.1, 0.3, segments=8, dtype=torch.float64)
    v, f = mesh.merge([a, b])
    assert v.shape == (8 + 18, 3) and f.shape == (12 + 32, 3)
    torch.testing.assert_close(f[12:], b[1] + 8)
    torch.testing.assert_close(mesh.mesh_volume(v, f), mesh.mesh_volume(*a) + mesh.mesh_volume(*b))


def test_pad_meshes():
    a = mesh.box((0.0, 0.0, 0.0), 0.5)
    b = mesh.cylinder((0.0, 0.0, 0.0), 0.2, 0.4, segments=5)
    v, f, nf = mesh.pad_meshes([a, b])
    assert v.shape == (2, 12, 3) and f.shape == (2, 20, 3) and f.dtype == torch.int64
    assert nf.tolist() == [12, 20]
    assert (f[0, 12:] == -1).all() and (f[0, :12] == a[1]).all()
    torch.testing.assert_close(mesh.face_areas(v, f)[0, :12], mesh.face_areas(*a))
    assert (mesh.face_areas(v, f)[0, 12:] == 0).all()
    torch.testing.assert_close(mesh.mesh_volume(v, f), torch.stack([mesh.mesh_volume(*a), mesh.mesh_volume(*b)]))


# ------------------------------------------------------------------------------ voxels


def test_single_voxel_gives_12_outward_triangles_at_the_right_place():
    occ = torch.zeros(2, 3, 4, dtype=torch.bool)  # D, H, W = z, y, x
    occ[0, 1, 2] = True  # k, j, i
    v, f, idx = mesh.voxels_to_mesh(occ, return_voxel_index=True)
    assert f.shape == (12, 3) and v.shape == (8, 3)
    assert (idx == (0 * 3 + 1) * 4 + 2).all()
    # convention pin: x from i over W, y from j over H, z from k over D
    lo = torch.tensor([2 / 4 - 0.5, 1 / 3 - 0.5, 0 / 2 - 0.5])
    hi = torch.tensor([3 / 4 - 0.5, 2 / 3 - 0.5, 1 / 2 - 0.5])
    torch.testing.assert_close(v.amin(0), lo)
    torch.testing.assert_close(v.amax(0), hi)
    assert_closed_outward(v, f, (lo + hi) / 2)


def test_two_adjacent_voxels_share_a_face():
    occ = torch.zeros(3, 3, 3)
    occ[1, 1, 1] = occ[1, 1, 2] = 1.0
    v, f = mesh.voxels_to_mesh(occ)
    assert f.shape == (20, 3) and v.shape == (12, 3)
    torch.testing.assert_close(mesh.mesh_volume(v, f), torch.tensor(2 / 27))


def test_voxels_to_mesh_volume_and_area_of_a_random_grid():
    g = torch.Generator().manual_seed(3)
    occ = torch.rand(5, 6, 7, generator=g, dtype=torch.float64)
    v, f = mesh.voxels_to_mesh(occ, threshold=0.6)
    n = int((occ > 0.6).sum())
    torch.testing.assert_close(mesh.mesh_volume(v, f), torch.tensor(n / (5 * 6 * 7), dtype=torch.float64))
    assert v.dtype == torch.float64 and (v.abs() <= 0.5 + 1e-12).all()
    # every exposed face is an axis-aligned square: normals are +-unit axes
    nrm = mesh.face_normals(v, f)
    assert torch.allclose(nrm.abs().amax(-1), torch.ones(f.shape[0], dtype=torch.float64))
    empty_v, empty_f = mesh.voxels_to_mesh(torch.zeros(2, 2, 2))
    assert empty_v.shape == (0, 3) and empty_f.shape == (0, 3)


def test_voxels_to_padded_meshes_matches_single(device):
    g = torch.Generator().manual_seed(4)
    occ = (torch.rand(3, 4, 4, 4, generator=g) > 0.5).to(device)
    occ[2] = False  # an empty grid pads to nothing
    v, f, idx = mesh.voxels_to_padded_meshes(occ)
    assert v.shape[0] == 3 and f.shape[1] == idx.shape[1]
    assert (f[2] == -1).all() and (idx[2] == -1).all()
    for b in range(2):
        vs, fs, ids = mesh.voxels_to_mesh(occ[b], return_voxel_index=True)
        torch.testing.assert_close(mesh.mesh_volume(v[b], f[b]), mesh.mesh_volume(vs, fs))
        torch.testing.assert_close(mesh.face_areas(v[b], f[b]).sum(), mesh.face_areas(vs, fs).sum())
        assert sorted(idx[b][idx[b] >= 0].tolist()) == sorted(ids.tolist())


# ------------------------------------------------------------------------------ sampling


def test_sample_points_on_surface_and_normals(device):
    v, f = mesh.box((0.1, 0.0, -0.1), (0.3, 0.5, 0.7), dtype=torch.float64, device=device)
    p, n, fi = mesh.sample_points(v, f, 2000, generator=torch.Generator().manual_seed(0), return_normals=True, return_face_index=True)
    assert p.shape == (2000, 3) and n.shape == (2000, 3) and fi.shape == (2000,)
    # each point lies on the plane of its face and inside the triangle
    tri = v[f[fi]]
    dist = ((p - tri[:, 0]) * n).sum(-1)
    assert dist.abs().max() < 1e-12
    torch.testing.assert_close(n, mesh.face_normals(v, f)[fi])
    e1, e2, d = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], p - tri[:, 0]
    area2 = torch.linalg.cross(e1, e2).norm(dim=-1)
    b1 = (torch.linalg.cross(d, e2) * n).sum(-1) / area2
    b2 = (torch.linalg.cross(e1, d) * n).sum(-1) / area2
    assert (b1 >= -1e-12).all() and (b2 >= -1e-12).all() and (b1 + b2 <= 1 + 1e-12).all()


def test_sample_points_area_proportional_and_uniform():
    # two faces, areas 1 and 3
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    n = 20000
    p, fi = mesh.sample_points(v, f, n, generator=torch.Generator().manual_seed(0), return_face_index=True)
    frac = (fi == 1).double().mean().item()
    assert abs(frac - 0.75) < 4 * math.sqrt(0.75 * 0.25 / n)  # 4 sigma
    # uniform inside a triangle: the mean is the centroid (without the sqrt it would lean to v0)
    mean0 = p[fi == 0].mean(0)
    torch.testing.assert_close(mean0, v[:3].mean(0), atol=0.02, rtol=0)


def test_sample_points_reproducible_and_differentiable():
    v, f = tetrahedron()
    a = mesh.sample_points(v, f, 50, generator=torch.Generator().manual_seed(7))
    b = mesh.sample_points(v, f, 50, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)
    vv = v.clone().requires_grad_()
    mesh.sample_points(vv, f, 50, generator=torch.Generator().manual_seed(7)).sum().backward()
    torch.testing.assert_close(vv.grad.sum(0), torch.full((3,), 50.0, dtype=torch.float64))  # weights sum to 1


# ------------------------------------------------------------------------------ errors


def test_errors_name_the_argument_and_shapes():
    v, f = tetrahedron()
    with pytest.raises(ValueError, match=r"vertices: expected shape \(\*, V, 3\).*received \(4, 2\)"):
        mesh.face_normals(v[:, :2], f)
    with pytest.raises(ValueError, match=r"faces: expected shape \(F, 3\).*received \(4, 4\)"):
        mesh.face_areas(v, torch.zeros(4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"faces: expected dtype"):
        mesh.face_normals(v, f.double())
    with pytest.raises(ValueError, match=r"faces: expected shape .*received \(3, 4, 3\)"):
        mesh.face_normals(torch.zeros(2, 4, 3), f.expand(3, 4, 3))
    with pytest.raises(ValueError, match=r"occupancy: expected shape \(D, H, W\), received \(1, 2, 2, 2\)"):
        mesh.voxels_to_mesh(torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"center: expected shape \(3\), received \(2,\)"):
        mesh.box((0.0, 0.0), 1.0)
    with pytest.raises(ValueError, match=r"axis"):
        mesh.cylinder(axis="w")
    with pytest.raises(ValueError, match=r"area 0"):
        mesh.sample_points(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 5)
    with pytest.raises(ValueError, match=r"meshes"):
        mesh.pad_meshes([])
