"""Tests for lessons.data.scenes: rooms, camera rigs, rendering, and the depth they return."""

import math

import pytest
import torch
import torch.nn.functional as F

from lessons import geometry
from lessons.data import scenes

SIZE = 32


@pytest.fixture(scope="module")
def views():
    return scenes.make_scenes(2, "train", image_size=SIZE, supersample=1)


def test_make_scene_is_deterministic_and_splits_differ():
    a, b = scenes.make_scene(3, "train"), scenes.make_scene(3, "train")
    torch.testing.assert_close(a.vertices, b.vertices)
    torch.testing.assert_close(a.plane_textures, b.plane_textures)
    c = scenes.make_scene(3, "test")
    assert a.vertices.shape != c.vertices.shape or not torch.allclose(a.vertices, c.vertices)
    assert a.faces.shape[0] == a.face_surface.shape[0] == a.face_colors.shape[0]
    assert int(a.face_surface.max()) == 4 + len(a.categories)  # 5 planes, then one surface per object
    assert a.faces.min() >= 0 and a.faces.max() < a.vertices.shape[0]


def test_make_scene_furniture_stands_on_the_floor_inside_the_room():
    s = scenes.make_scene(5)
    w, zb, h, zf = s.room
    furniture = s.vertices[s.faces[s.face_surface >= 5].reshape(-1)]
    assert furniture.numel() > 0
    assert furniture[:, 1].min().abs() < 1e-4  # on the floor y = 0
    assert furniture[:, 0].abs().max() <= w + 1e-4
    assert furniture[:, 2].max() < -1.0 and furniture[:, 2].min() > zb


@pytest.mark.parametrize("bad", [dict(seed=-1), dict(seed=1.5), dict(seed=0, split="val"), dict(seed=0, texture_size=0)])
def test_make_scene_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="seed|split|texture_size"):
        scenes.make_scene(**bad)


@pytest.mark.parametrize("n, V", [(1, 4), (3, 4), (2, 3)])
def test_rig_cameras_shapes_and_target_between_inputs(n, V):
    K, R, t = scenes.rig_cameras(n, 40, n_inputs=V, generator=torch.Generator().manual_seed(1))
    assert K.shape == (n, V + 1, 3, 3) and R.shape == (n, V + 1, 3, 3) and t.shape == (n, V + 1, 3)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)
    C = geometry.camera_center(R, t)  # (n, 1+V, 3)
    # the target is the centroid of the inputs
    torch.testing.assert_close(C[:, 0], C[:, 1:].mean(1), atol=1e-5, rtol=0)
    # every input is off the target by about the baseline
    dist = (C[:, 1:] - C[:, :1]).norm(dim=-1)
    assert (dist > 0.2).all() and (dist < 0.6).all()
    # principal point at the centre
    torch.testing.assert_close(K[..., :2, 2], torch.full((n, V + 1, 2), 20.0))


def test_rig_cameras_look_into_the_room_with_up_up():
    K, R, t = scenes.rig_cameras(8, 32, generator=torch.Generator().manual_seed(2))
    forward = R[..., 2, :]  # the optical axis in world coordinates (third row of R)
    assert (forward[..., 2] < -0.9).all()  # into the room: world -z
    assert (forward[..., 1] < 0).all()  # pitched slightly down
    down = R[..., 1, :]  # camera +y (image down) in world coordinates
    assert (down[..., 1] < -0.9).all()  # world up is up in the image (a flipped y would fail)
    right = R[..., 0, :]
    assert (right[..., 0] > 0.9).all()  # camera x is world +x when looking down -z


def test_rig_cameras_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_inputs"):
        scenes.rig_cameras(1, 32, n_inputs=0)
    with pytest.raises(ValueError, match="image_size"):
        scenes.rig_cameras(1, -3)


def test_make_scenes_shapes_ranges_and_closed_room(views):
    assert views.images.shape == (2, 5, 3, SIZE, SIZE)
    assert views.depth.shape == (2, 5, 1, SIZE, SIZE)
    assert views.target.shape == (2, 3, SIZE, SIZE) and views.inputs.shape == (2, 4, 3, SIZE, SIZE)
    assert views.images.min() >= 0 and views.images.max() <= 1
    assert (views.depth > 0.5).all() and (views.depth < 9).all()  # every pixel sees a wall or an object
    # textured: plenty of spatial variation in every view
    assert (views.images.std(dim=(-1, -2)).mean(-1) > 0.05).all()
    # a view is a function of its index: the same scene rendered alone is identical
    again = scenes.make_scenes(1, "train", image_size=SIZE, supersample=1, start=1)
    torch.testing.assert_close(again.images[0], views.images[1])


def test_depth_is_correct_reprojection_colours_agree(views):
    """Unproject the target depth, reproject into each input: where the point is visible there
    (its depth matches the input's depth map), the colours agree; a wrong depth does not."""
    N, V1, _, H, W = views.images.shape
    pix = geometry.pixel_grid(H, W).reshape(1, -1, 2).expand(N, -1, -1)

    def error(scale):
        errs = []
        X = geometry.unproject(pix, views.target_depth.reshape(N, -1) * scale, views.K[:, 0], views.R[:, 0], views.t[:, 0])
        for v in range(1, V1):  # a loop over the four input views
            uv, z = geometry.project(X, views.K[:, v], views.R[:, v], views.t[:, v])
            grid = (uv / torch.tensor([W, H]) * 2 - 1).reshape(N, H, W, 2)
            col = F.grid_sample(views.images[:, v], grid, align_corners=False, padding_mode="zeros")
            dep = F.grid_sample(views.depth[:, v], grid, mode="nearest", align_corners=False)
            inside = (grid.abs() < 0.95).all(-1)[:, None]
            visible = inside & ((dep - z.reshape(N, 1, H, W)).abs() < 0.05 * z.reshape(N, 1, H, W))
            errs.append(((col - views.target).abs().mean(1, keepdim=True))[visible])
            assert visible.float().mean() > (0.4 if scale == 1 else 0.0)
        return torch.cat(errs).median()

    good, bad = error(1.0), error(1.25)
    assert good < 0.06, good
    assert bad > 1.5 * good


def test_render_views_rejects_bad_shapes():
    s = scenes.make_scene(0)
    K, R, t = scenes.rig_cameras(1, 16)
    with pytest.raises(ValueError, match="R"):
        scenes.render_views(s, K[0], R[0, :2], t[0], 16)
    with pytest.raises(ValueError, match="supersample"):
        scenes.render_views(s, K[0], R[0], t[0], 16, supersample=0)
    with pytest.raises(ValueError, match="split"):
        scenes.make_scenes(1, "validation")


def test_render_views_float64_matches_float32():
    s = scenes.make_scene(1)
    K, R, t = (x[0, :2] for x in scenes.rig_cameras(1, 16))
    a, da = scenes.render_views(s, K, R, t, 16, supersample=1)
    b, db = scenes.render_views(s, K.double(), R.double(), t.double(), 16, supersample=1)
    assert b.dtype == torch.float64
    close = (a.double() - b).abs().amax(1) < 1e-3
    assert close.float().mean() > 0.97  # only a few pixels on triangle edges may differ
    same = (da.double() - db).abs() < 1e-3
    assert same.float().mean() > 0.97
    assert math.isfinite(float(b.sum()))
