"""Tests for lessons.viz: k3d scenes follow the course's conventions, snapshots render offline,
and the matplotlib/widget helpers build what they say."""

import base64
import html
import math
import re
import zlib

import msgpack
import numpy as np
import pytest
import torch

from lessons import viz
from lessons.checks import ShapeError

IDENT = np.eye(4, dtype=np.float32)


@pytest.fixture
def book(monkeypatch):
    """Pretend the book is being built."""
    monkeypatch.setenv(viz.BOOK_ENV_VAR, "1")
    monkeypatch.delenv(viz.JS_URL_ENV_VAR, raising=False)


@pytest.fixture
def live(monkeypatch):
    monkeypatch.delenv(viz.BOOK_ENV_VAR, raising=False)


@pytest.fixture
def shown(monkeypatch):
    """Capture what IPython.display.display receives."""
    seen = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: seen.extend(objs))
    return seen


def cam_plus_z(d=2.0, dtype=torch.float64):
    """OpenCV camera on the +z axis looking at the origin, world +y up (image y down)."""
    R = torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]], dtype=dtype)
    return R, torch.tensor([0.0, 0.0, d], dtype=dtype)  # t = -R C with C = (0, 0, d)


def rot_y(a, dtype=torch.float64):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=dtype)


def decode_snapshot(snippet: str) -> dict:
    """The msgpack payload k3d embeds in a book-mode snapshot iframe."""
    doc = html.unescape(re.search(r'srcdoc="([^"]*)"', snippet).group(1))
    data = re.search(r"var data_\d+ = '([^']*)'", doc).group(1)
    return msgpack.unpackb(zlib.decompress(base64.b64decode(data)))


# --------------------------------------------------------------------------------------------
# voxels


@pytest.mark.parametrize("shape", [(4, 5, 6), (1, 4, 5, 6)])
def test_show_voxels_single_voxel_position(shape):
    D, H, W = shape[-3:]
    occ = torch.zeros(shape)
    k, j, i = 3, 1, 4
    occ[..., k, j, i] = 1.0
    scene = viz.show_voxels(occ)
    (obj,) = scene.objects
    grid = np.asarray(obj.voxels)
    # k3d's voxels are indexed [z, y, x] like ours: the array goes in unchanged
    assert grid.shape == (D, H, W) and grid.dtype == np.uint8
    assert np.argwhere(grid).tolist() == [[k, j, i]]
    # k3d convention: with its default bounds [0, W, 0, H, 0, D], voxel [k, j, i] spans
    # [i, i+1] x [j, j+1] x [k, k+1]; map that centre back to k3d's object space and forward
    # through our object's model matrix, and it must land on the notation's voxel centre
    import k3d

    ref = k3d.voxels(grid)
    p_obj = np.linalg.inv(np.asarray(ref.model_matrix)) @ np.array([i + 0.5, j + 0.5, k + 0.5, 1.0])
    world = np.asarray(obj.model_matrix) @ p_obj
    expect = [(i + 0.5) / W - 0.5, (j + 0.5) / H - 0.5, (k + 0.5) / D - 0.5]
    np.testing.assert_allclose(world[:3], expect, atol=1e-6)
    np.testing.assert_allclose(np.asarray(obj.model_matrix), IDENT, atol=1e-7)  # bounds [-1/2, 1/2]^3


def test_show_voxels_y_up_and_camera():
    occ = torch.zeros(4, 4, 4, dtype=torch.bool)
    occ[:, -1] = True  # the top layer: largest y index
    scene = viz.show_voxels(occ)
    grid = np.asarray(scene.objects[0].voxels)
    assert grid[:, -1].all() and not grid[:, :-1].any()
    cam = np.asarray(scene.plot.camera)
    np.testing.assert_allclose(cam[6:], [0, 1, 0])  # k3d camera up = world +y
    assert scene.plot.camera_up_axis == "y" and not scene.plot.camera_auto_fit
    np.testing.assert_allclose(cam[3:6], [0, 0, 0], atol=1e-6)  # looks at the cube's centre
    az, el = scene.view
    eye = cam[:3] / np.linalg.norm(cam[:3])
    np.testing.assert_allclose(eye, [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)], atol=1e-6)


def test_show_voxels_threshold_and_numpy():
    occ = np.array([0.2, 0.6, 0.9, 0.5]).reshape(1, 2, 2)
    scene = viz.show_voxels(occ, threshold=0.55)
    np.testing.assert_array_equal(np.asarray(scene.objects[0].voxels).ravel(), [0, 1, 1, 0])


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4, 4), (1, 1, 4, 4, 4)])
def test_show_voxels_bad_shape(shape):
    with pytest.raises(ShapeError, match=r"occupancy: expected shape \(D, H, W\).*received"):
        viz.show_voxels(torch.zeros(shape))


# --------------------------------------------------------------------------------------------
# meshes, points, skeletons


def test_show_mesh_passes_vertices_unchanged(generator):
    v = torch.rand(7, 3, generator=generator, dtype=torch.float64) - 0.5
    f = torch.tensor([[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    cols = torch.zeros(7, 3)
    cols[:, 0] = 1.0
    cols[3] = torch.tensor([0.0, 0.0, 1.0])
    scene = viz.show_mesh(v, f, colors=cols)
    (m,) = scene.objects
    np.testing.assert_array_equal(np.asarray(m.vertices), v.numpy().astype(np.float32))
    np.testing.assert_array_equal(np.asarray(m.indices), f.numpy())
    colors = np.asarray(m.colors)
    assert colors[0] == 0xFF0000 and colors[3] == 0x0000FF
    np.testing.assert_allclose(np.asarray(m.model_matrix), IDENT)  # no hidden transform


def test_show_mesh_single_colour_and_add_to_scene():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    f = np.array([[0, 1, 2]])
    scene = viz.show_mesh(v, f, colors=(0.0, 1.0, 0.0))
    assert scene.objects[0].color == 0x00FF00
    again = viz.show_mesh(v, f, colors="red", wireframe=True, opacity=0.5, plot=scene)
    assert again is scene and len(scene.objects) == 2
    assert scene.objects[1].color == 0xFF0000 and scene.objects[1].wireframe


@pytest.mark.parametrize(
    "v, f, match",
    [
        (torch.zeros(4, 2), torch.zeros(1, 3).long(), r"vertices: expected shape \(V, 3\), received \(4, 2\)"),
        (torch.zeros(4, 3), torch.zeros(1, 4).long(), r"faces: expected shape \(F, 3\), received \(1, 4\)"),
        (torch.zeros(4, 3), torch.zeros(1, 3), r"faces: expected an integer dtype"),
        (torch.zeros(4, 3), torch.tensor([[0, 1, 4]]), r"faces: expected indices in \[0, 4\)"),
    ],
)
def test_show_mesh_bad_input(v, f, match):
    with pytest.raises(ValueError, match=match):
        viz.show_mesh(v, f)


def test_show_mesh_bad_colors():
    with pytest.raises(ValueError, match=r"colors: expected shape \(3, 3\), received \(2, 3\)"):
        viz.show_mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), colors=torch.zeros(2, 3))


@pytest.mark.parametrize("N", [1, 5, 40])
def test_show_points(N, generator):
    p = torch.randn(N, 3, generator=generator)
    scene = viz.show_points(p, colors=torch.ones(N, 3))
    (obj,) = scene.objects
    np.testing.assert_array_equal(np.asarray(obj.positions), p.numpy())
    assert (np.asarray(obj.colors) == 0xFFFFFF).all() and obj.point_size > 0


def test_show_points_bad_input():
    with pytest.raises(ValueError, match=r"points: expected shape \(N, 3\), received \(2, 5, 3\)"):
        viz.show_points(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="point_size: expected a positive size"):
        viz.show_points(torch.zeros(5, 3), point_size=0.0)
    with pytest.raises(ValueError, match="points: expected finite"):
        viz.show_points(torch.full((5, 3), float("nan")))


def test_show_skeleton():
    joints = torch.tensor([[0.0, 0, 0], [0, 0.5, 0], [0, 0.8, 0], [-0.3, 0.5, 0]])
    edges = [(0, 1), (1, 2), (1, 3)]
    scene = viz.show_skeleton(joints, edges, labels=["pelvis", "neck", "head", "l_hand"])
    names = [o.name for o in scene.objects]
    assert names[:2] == ["bones", "joints"] and len(names) == 2 + 4  # one label per joint
    bones = scene.objects[0]
    np.testing.assert_array_equal(np.asarray(bones.indices).reshape(-1, 2), np.array(edges))
    np.testing.assert_array_equal(np.asarray(bones.vertices), joints.numpy())
    assert scene.objects[2].text == "pelvis"
    assert scene.objects[2].position[1] > 0  # label lifted above its joint (+y up)


def test_show_skeleton_bad_input():
    j = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"edges: expected joint indices in \[0, 4\)"):
        viz.show_skeleton(j, [(0, 4)])
    with pytest.raises(ValueError, match=r"edges: expected shape \(E, 2\), received \(1, 3\)"):
        viz.show_skeleton(j, [(0, 1, 2)])
    with pytest.raises(ValueError, match="labels: expected 4 names"):
        viz.show_skeleton(j, [(0, 1)], labels=["a"])
    with pytest.raises(ValueError, match=r"joints: expected shape \(K, 3\)"):
        viz.show_skeleton(torch.zeros(4), [(0, 1)])


# --------------------------------------------------------------------------------------------
# cameras and planes


def project(X, R, t, K):
    """Pixels of world points: the naive x = K (R X + t), one point at a time."""
    out = []
    for x in X.reshape(-1, 3):
        h = K @ (R @ x + t)
        out.append(h[:2] / h[2])
    return torch.stack(out).reshape(*X.shape[:-1], 2)


def test_frustum_corners_pins_opencv():
    R, t = cam_plus_z(2.0)
    K = torch.tensor([[50.0, 0, 20], [0, 50.0, 10], [0, 0, 1]], dtype=torch.float64)  # W = 40, H = 20
    c = viz.frustum_corners(R, t, K, depth=0.5)
    assert c.shape == (4, 3)
    tl, tr, br, bl = c
    # the camera looks down -z from z = 2: corners sit at z = 1.5, the image's top (v = 0) is
    # world +y and its left (u = 0) is world -x
    torch.testing.assert_close(c[:, 2], torch.full((4,), 1.5, dtype=torch.float64))
    assert tl[0] < 0 and tl[1] > 0 and tr[0] > 0 and tr[1] > 0 and bl[1] < 0 and br[0] > 0
    torch.testing.assert_close(tr - tl, torch.tensor([40 / 50 * 0.5, 0, 0], dtype=torch.float64))


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_frustum_corners_round_trip(batch, dtype, device, generator):
    n = int(np.prod(batch)) if batch else 1
    ang = torch.rand(n, generator=generator, dtype=torch.float64) * 6
    R0, t0 = cam_plus_z(3.0)
    # a non-symmetric rotation: a transposed R would not round-trip
    tilt = torch.tensor([[1.0, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]], dtype=torch.float64)
    R = torch.stack([R0 @ rot_y(float(a)) @ tilt for a in ang])
    t = t0.expand(n, 3) + 0.1 * torch.randn(n, 3, generator=generator, dtype=torch.float64)
    K = torch.tensor([[60.0, 0.5, 33], [0, 55.0, 24], [0, 0, 1]], dtype=torch.float64)
    depth = 0.5 + torch.rand(n, generator=generator, dtype=torch.float64)
    R, t, depth = R.reshape(*batch, 3, 3), t.reshape(*batch, 3), depth.reshape(batch)
    args = [x.to(device=device, dtype=dtype) for x in (R, t, K, depth)]
    R_, t_, K_, d_ = args
    c = viz.frustum_corners(R_, t_, K_, None, d_)
    assert c.shape == (*batch, 4, 3) and c.dtype == dtype and c.device == device
    c = c.double().cpu()
    # naive loop: project each corner back with x = K (R X + t)
    for idx in np.ndindex(*batch):
        px = project(c[idx], R[idx], t[idx], K)
        torch.testing.assert_close(px, torch.tensor([[0.0, 0], [66, 0], [66, 48], [0, 48]], dtype=torch.float64),
                                   atol=1e-3 if dtype == torch.float32 else 1e-8, rtol=0)
        z = (R[idx] @ c[idx].T).T[:, 2] + t[idx][2]
        torch.testing.assert_close(z, depth[idx].expand(4), atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=0)


def test_frustum_corners_broadcasts_depths():
    R, t = cam_plus_z(2.0)
    c = viz.frustum_corners(R, t, None, (1, 1), torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64))
    assert c.shape == (3, 4, 3)
    torch.testing.assert_close(c[:, 0, 2], torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64))
    # planes grow linearly with depth (same frustum)
    torch.testing.assert_close(c[2, 1, 0] / c[0, 1, 0], torch.tensor(2.0, dtype=torch.float64))


def test_frustum_corners_gradcheck():
    R, t = cam_plus_z(2.0)
    R = (R @ rot_y(0.3)).requires_grad_()
    t = t.clone().requires_grad_()
    K = torch.tensor([[2.0, 0.1, 1], [0, 2.2, 0.8], [0, 0, 1]], dtype=torch.float64, requires_grad=True)
    d = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda R, t, K, d: viz.frustum_corners(R, t, K, None, d), (R, t, K, d))
    assert torch.autograd.gradcheck(lambda R, t, d: viz.frustum_corners(R, t, None, (3, 4), d), (R, t, d))


def test_frustum_corners_bad_input():
    R, t = cam_plus_z()
    with pytest.raises(ValueError, match=r"R: expected shape \(\*B, 3, 3\).*received \(3, 4\)"):
        viz.frustum_corners(torch.zeros(3, 4), t)
    with pytest.raises(ValueError, match=r"t: expected shape \(\*B, 3\)"):
        viz.frustum_corners(R, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"image_size: expected \(H, W\)"):
        viz.frustum_corners(R, t, None, (1, 2, 3))


def test_show_cameras_geometry():
    R0, t0 = cam_plus_z(2.0)
    R1 = R0 @ rot_y(-math.pi / 2)  # a camera on the +x axis, still looking at the origin
    R = torch.stack([R0, R1])
    C = torch.tensor([[0, 0, 2.0], [2.0, 0, 0]], dtype=torch.float64)
    t = -(R @ C[..., None])[..., 0]
    K = torch.tensor([[40.0, 0, 20], [0, 40, 15], [0, 0, 1]], dtype=torch.float64)
    scene = viz.show_cameras(R, t, K, size=0.3, colors=torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]))
    (lines,) = scene.objects
    verts = torch.as_tensor(np.asarray(lines.vertices), dtype=torch.float64).reshape(2, 6, 3)
    torch.testing.assert_close(verts[:, 0], C, atol=1e-6, rtol=0)  # centre -R^T t
    torch.testing.assert_close(verts[:, 1:5], viz.frustum_corners(R, t, K, None, 0.3), atol=1e-6, rtol=0)
    # the "up" marker sits above the image's top edge: negative v (image y points down)
    for n in range(2):
        u, v = project(verts[n, 5], R[n], t[n], K)
        assert v < 0 and abs(u - 20) < 1e-3
    assert np.asarray(lines.indices).size == 2 * 10 * 2
    np.testing.assert_array_equal(np.asarray(lines.colors), [0xFF0000] * 6 + [0x0000FF] * 6)


def test_show_cameras_single_and_bad():
    R, t = cam_plus_z()
    scene = viz.show_cameras(R, t)  # (3, 3) and (3,)
    assert np.asarray(scene.objects[0].vertices).shape == (6, 3)
    with pytest.raises(ValueError, match=r"t: expected shape \(N, 3\) with \{'N': 2\}, received \(3, 3\)"):
        viz.show_cameras(R.expand(2, 3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"K: expected shape \(N, 3, 3\)"):
        viz.show_cameras(R.expand(2, 3, 3), t.expand(2, 3), K=torch.eye(3).expand(3, 3, 3))


def test_show_planes():
    R, t = cam_plus_z()
    corners = viz.frustum_corners(R, t, None, (1, 1), torch.linspace(1.0, 2.0, 4, dtype=torch.float64))
    scene = viz.show_planes(corners)
    mesh, outline = scene.objects
    assert np.asarray(mesh.vertices).shape == (16, 3) and np.asarray(mesh.indices).size == 8 * 3
    assert np.asarray(outline.indices).size == 16 * 2
    with pytest.raises(ValueError, match=r"corners: expected shape \(P, 4, 3\), received \(4, 3\)"):
        viz.show_planes(corners[0])


# --------------------------------------------------------------------------------------------
# live widget or offline snapshot


def test_snapshot_book_mode_is_offline(book):
    scene = viz.show_voxels(torch.ones(2, 2, 2))
    viz.show_points(torch.zeros(3, 3) + 0.1, plot=scene)
    snip = viz.snapshot(scene)
    assert snip.startswith("<iframe") and "srcdoc=" in snip
    doc = html.unescape(re.search(r'srcdoc="([^"]*)"', snip).group(1))
    assert '<script src="../_k3d/require.js">' in doc and '<script src="../_k3d/standalone.js">' in doc
    assert "https://" not in doc and "unpkg" not in doc and "cdnjs" not in doc
    data = decode_snapshot(snip)
    assert len(data["objects"]) == 2
    np.testing.assert_allclose(data["plot"]["camera"], scene.plot.camera)
    assert data["plot"]["cameraUpAxis"] == "y"
    assert len(snip) < 60_000  # inline, not the 1.2 MB full snapshot


@pytest.mark.parametrize("url, prefix", [("/static/k3d", "/static/k3d/"),
                                         ("https://example.org/js/standalone.js", "https://example.org/js/")])
def test_snapshot_js_url_env(book, monkeypatch, url, prefix):
    monkeypatch.setenv(viz.JS_URL_ENV_VAR, url)
    doc = html.unescape(viz.snapshot(viz.show_points(torch.zeros(2, 3))))
    assert f'src="{prefix}standalone.js"' in doc and f"'{prefix}require.js'" in doc


def test_snapshot_full_is_self_contained(book):
    snip = viz.snapshot(viz.show_points(torch.zeros(2, 3)), kind="full")
    doc = html.unescape(re.search(r'srcdoc="([^"]*)"', snip).group(1))
    assert "_k3d/" not in doc and "window.k3dCompressed" in doc
    with pytest.raises(ValueError, match="kind: expected 'inline' or 'full'"):
        viz.snapshot(viz.show_points(torch.zeros(2, 3)), kind="png")


def test_scene_displays_snapshot_in_book_and_widget_live(book, monkeypatch):
    scene = viz.show_points(torch.zeros(2, 3))
    bundle = scene._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle and "<iframe" in bundle["text/html"]
    monkeypatch.delenv(viz.BOOK_ENV_VAR)
    live = viz.show_points(torch.zeros(2, 3))._repr_mimebundle_()
    data = live[0] if isinstance(live, tuple) else live  # (data, metadata) is allowed
    assert "application/vnd.jupyter.widget-view+json" in data and "text/html" not in data


def test_book_mode_opens_no_comms(monkeypatch):
    """In book mode no widget comm opens, so no 3D data lands in the saved widget state."""
    import comm

    opened = []
    real = comm.create_comm

    def spy(*args, **kwargs):
        opened.append(kwargs.get("target_name"))
        return real(*args, **kwargs)

    monkeypatch.setattr(comm, "create_comm", spy)
    monkeypatch.setenv(viz.BOOK_ENV_VAR, "1")
    viz.snapshot(viz.show_mesh(torch.eye(3), torch.tensor([[0, 1, 2]])))
    assert opened == [] and comm.create_comm is spy  # and the patch is undone
    monkeypatch.setenv(viz.BOOK_ENV_VAR, "0")
    viz.show_mesh(torch.eye(3), torch.tensor([[0, 1, 2]]))
    assert len(opened) >= 2  # the plot and the mesh


@pytest.mark.parametrize("env", ["0", "1"])
def test_show_without_front_end(monkeypatch, env, capsys):
    monkeypatch.setenv(viz.BOOK_ENV_VAR, env)
    scene = viz.show_voxels(torch.ones(2, 2, 2))
    viz.show(scene)
    viz.show(scene.plot, height=200, mode="snapshot")
    viz.show(scene, mode="live")
    assert scene.plot.height == 200
    with pytest.raises(ValueError, match="mode: expected 'auto', 'live' or 'snapshot', received 'x'"):
        viz.show(scene, mode="x")
    with pytest.raises(ValueError, match="scene: expected a viz.Scene or a k3d Plot, received int"):
        viz.show(3)


def test_k3d_assets(tmp_path):
    out = viz.k3d_assets(tmp_path / "_extra")
    assert out == tmp_path / "_extra" / "_k3d"
    js = (out / "standalone.js").read_bytes()
    assert len(js) > 1_000_000 and b'define("k3d"' in js[:1000]
    assert (out / "require.js").stat().st_size > 1000


# --------------------------------------------------------------------------------------------
# matplotlib fallbacks


def test_plot_voxels_axes_mapping():
    occ = torch.zeros(4, 5, 6)
    occ[3, 4, 5] = 1  # the (+x, +y, +z) corner voxel
    fig = viz.plot_voxels(occ)
    (ax,) = fig.axes
    assert ax.name == "3d" and ax.yaxis_inverted()  # world z inverted: not a mirror image
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("x", "z", "y (up)")
    faces = getattr(ax.collections[0], "_faces", None)
    if faces is None:
        pytest.skip("this matplotlib keeps no _faces on Poly3DCollection")
    lo, hi = np.asarray(faces).reshape(-1, 3).min(0), np.asarray(faces).reshape(-1, 3).max(0)
    # plot axes (X, Y, Z) = world (x, z, y); voxel [3, 4, 5] fills [5/6-1/2, 1/2] x [4/5-1/2, 1/2] x [3/4-1/2, 1/2]
    np.testing.assert_allclose(lo, [5 / 6 - 0.5, 3 / 4 - 0.5, 4 / 5 - 0.5])
    np.testing.assert_allclose(hi, [0.5, 0.5, 0.5])
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_voxels_bad_input():
    import matplotlib.pyplot as plt

    with pytest.raises(ValueError, match=r"occupancy: expected shape \(D, H, W\)"):
        viz.plot_voxels(torch.zeros(3, 3))
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax: expected a 3D axes"):
        viz.plot_voxels(torch.zeros(2, 2, 2), ax=ax)
    plt.close(fig)


@pytest.mark.parametrize("B, ncols", [(1, 8), (5, 2), (9, 4)])
def test_image_grid(B, ncols):
    import matplotlib.pyplot as plt

    fig = viz.image_grid(torch.rand(B, 3, 6, 7), titles=[str(b) for b in range(B)], ncols=ncols)
    assert len(fig.axes) == B
    assert fig.axes[-1].get_title() == str(B - 1)
    assert fig.axes[0].get_images()[0].get_array().shape == (6, 7, 3)
    plt.close(fig)


def test_image_grid_list_and_errors():
    import matplotlib.pyplot as plt

    fig = viz.image_grid([torch.rand(6, 7), np.random.rand(1, 6, 7) * 5, torch.rand(3, 4, 4)])
    assert len(fig.axes) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match=r"images\[0\]: expected shape \(C, H, W\) with C in \(1, 3, 4\)"):
        viz.image_grid(torch.rand(2, 2, 5, 5))
    with pytest.raises(ValueError, match=r"images: expected shape \(B, C, H, W\), received \(5, 5\)"):
        viz.image_grid(torch.rand(5, 5))
    with pytest.raises(ValueError, match="titles: expected 2 titles, received 1"):
        viz.image_grid(torch.rand(2, 1, 5, 5), titles=["a"])


def test_plot_curves_forms():
    import matplotlib.pyplot as plt

    fig = viz.plot_curves({"loss": [3.0, 2.0, 1.0], "acc": [0.1, 0.5, 0.9]}, logy=True)
    (ax,) = fig.axes
    assert [l.get_label() for l in ax.get_lines()] == ["loss", "acc"] and ax.get_yscale() == "log"
    plt.close(fig)
    hist = [{"step": 10, "loss": torch.tensor(2.0)}, {"step": 20, "loss": 1.0}, {"step": 30}]
    fig = viz.plot_curves(hist)
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [10, 20])  # steps as x; the missing value skipped
    np.testing.assert_array_equal(line.get_ydata(), [2.0, 1.0])
    fig2, ax2 = plt.subplots()
    assert viz.plot_curves({"a": [1, 2]}, ax=ax2) is fig2
    plt.close("all")
    with pytest.raises(ValueError, match=r"keys: expected names from \['a'\], received unknown \['b'\]"):
        viz.plot_curves({"a": [1, 2]}, keys=["b"])
    with pytest.raises(ValueError, match="history: expected a dict of lists or a list of dicts"):
        viz.plot_curves(3)


# --------------------------------------------------------------------------------------------
# source and widgets


def test_show_source(book, shown):
    viz.show_source(viz.frustum_corners)
    (src,) = shown
    assert "def frustum_corners(" in src.text and src.text.startswith("# lessons/viz.py, line ")
    md = src._repr_mimebundle_()["text/markdown"]
    assert md.startswith("```python\n") and md.rstrip().endswith("```") and "def frustum_corners(" in md


def test_show_source_live_and_method(live):
    bundle = viz.SourceCode(viz.Scene.fit)._repr_mimebundle_()
    assert "text/markdown" not in bundle and "fit" in bundle["text/html"]
    assert "\ndef fit(self)" in bundle["text/plain"]  # dedented method
    with pytest.raises(ValueError, match="obj: expected a Python function, class or module"):
        viz.SourceCode(3)


def test_sliders():
    import ipywidgets as widgets

    s = viz.slider("steps", 0, 10)
    assert isinstance(s, widgets.IntSlider) and s.value == 5
    f = viz.slider("scale", 0.5, 2.0, 1.0)
    assert isinstance(f, widgets.FloatSlider) and f.value == 1.0 and not f.continuous_update
    a = viz.angle_slider("azimuth", 30)
    assert "°" in a.description and (a.min, a.max, a.value) == (-180, 180, 30)
    with pytest.raises(ValueError, match="steps: expected min < max"):
        viz.slider("steps", 3, 3)
    with pytest.raises(ValueError, match=r"azimuth \(°\): expected value in \[-180.0, 180.0\], received 200.0"):
        viz.angle_slider("azimuth", 200)


def make_interactive(calls):
    import matplotlib.pyplot as plt

    def draw(azimuth, scale):
        calls.append((azimuth, scale))
        fig, ax = plt.subplots()
        ax.plot([0, scale], [0, azimuth])
        return fig

    return viz.interact_figure(draw, azimuth=viz.angle_slider("azimuth", 30), scale=viz.slider("scale", 0.5, 2.0, 1.0))


def test_interact_figure_book(book, shown):
    import ipywidgets as widgets

    calls = []
    w = make_interactive(calls)
    assert calls == []  # nothing drawn until displayed
    w._ipython_display_()
    controls, fig = shown
    assert isinstance(controls, widgets.VBox) and len(controls.children) == 2
    assert hasattr(fig, "savefig") and calls == [(30.0, 1.0)]  # the initial state, as a plain figure


def test_interact_figure_live(live, shown):
    calls = []
    w = make_interactive(calls)
    w._ipython_display_()
    fig, box = shown  # the Output widget captures the figure; then the box is displayed
    assert hasattr(fig, "savefig") and box.children[1] is w.output and calls == [(30.0, 1.0)]
    w.controls["scale"].value = 2.0  # a slider moves: the figure is redrawn
    assert calls[-1] == (30.0, 2.0)
    assert w.values == {"azimuth": 30.0, "scale": 2.0}


def test_interact_figure_bad():
    with pytest.raises(ValueError, match="controls: expected ipywidgets value widgets"):
        viz.interact_figure(lambda a: None, a=3)
    with pytest.raises(ValueError, match="controls: expected at least one"):
        viz.interact_figure(lambda: None)
