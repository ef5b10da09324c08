"""Tests for lessons.papers.deepstereo: the plane sweep, the towers, the loss, baselines, training."""

import pytest
import torch

from lessons import geometry
from lessons.papers import deepstereo as ds


def _rig(B=2, V=3, size=16, dtype=torch.float64, seed=0):
    """Cameras around a target looking down +z: view 0 the target, views 1..V offset in x and y."""
    g = torch.Generator().manual_seed(seed)
    K = geometry.intrinsics(torch.tensor(14.0, dtype=dtype), size, size).expand(B, V + 1, 3, 3)
    angles = 0.05 * (2 * torch.rand(B, V + 1, 3, generator=g, dtype=dtype) - 1)
    angles[:, 0] = 0
    R = geometry.euler_to_matrix(angles)
    C = 0.3 * (2 * torch.rand(B, V + 1, 3, generator=g, dtype=dtype) - 1)
    C[:, 0] = 0
    t = -(R @ C[..., None])[..., 0]
    return K.contiguous(), R, t


# ---------------------------------------------------------------------------------------------
# planes and homographies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("D", [2, 5, 32])
def test_inverse_depth_planes_uniform_in_inverse_depth(D):
    d = ds.inverse_depth_planes(1.0, 8.0, D, dtype=torch.float64)
    assert d.shape == (D,)
    torch.testing.assert_close(d[[0, -1]], torch.tensor([1.0, 8.0], dtype=torch.float64))
    steps = (1 / d).diff()
    torch.testing.assert_close(steps, steps[:1].expand_as(steps))
    assert (d.diff() > 0).all()  # near to far


@pytest.mark.parametrize("args", [(0.0, 1.0, 4), (2.0, 1.0, 4), (1.0, 2.0, 1)])
def test_inverse_depth_planes_rejects(args):
    with pytest.raises(ValueError, match="near|planes"):
        ds.inverse_depth_planes(*args)


@pytest.mark.parametrize("B, V, D", [(1, 1, 2), (2, 3, 4)])
def test_sweep_homographies_against_naive_unproject_project(B, V, D):
    """Naive reference: for each view, plane and pixel, unproject the target pixel to the plane's
    depth, then project it into the input camera."""
    K, R, t = _rig(B, V)
    depths = ds.inverse_depth_planes(1.0, 6.0, D, dtype=torch.float64)
    H = ds.sweep_homographies(K, R, t, depths)
    assert H.shape == (B, V, D, 3, 3)
    pixels = torch.tensor([[0.5, 0.5], [8.0, 3.5], [15.5, 12.25]], dtype=torch.float64)
    for b in range(B):
        for v in range(V):
            for z in range(D):
                for p in pixels:  # the naive per-pixel route through the world
                    X = geometry.unproject(p[None], depths[z, None], K[b, 0], R[b, 0], t[b, 0])
                    uv, _ = geometry.project(X, K[b, v + 1], R[b, v + 1], t[b, v + 1])
                    torch.testing.assert_close(geometry.apply_homography(H[b, v, z], p[None]), uv)


def test_sweep_homographies_identity_for_the_target_itself_and_per_batch_depths():
    K, R, t = _rig(2, 2)
    K, R, t = (torch.cat([x[:, :1], x[:, :1]], 1) for x in (K, R, t))  # the "input" is the target
    H = ds.sweep_homographies(K, R, t, torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(H, torch.eye(3, dtype=torch.float64).expand_as(H))


def test_sweep_homographies_pins_the_direction_of_parallax():
    """An input camera to the RIGHT of the target (+x) sees a near point further LEFT (smaller u)."""
    K = geometry.intrinsics(torch.tensor(10.0, dtype=torch.float64), 16, 16).expand(1, 2, 3, 3)
    R = torch.eye(3, dtype=torch.float64).expand(1, 2, 3, 3)
    t = torch.tensor([[[0.0, 0.0, 0.0], [-0.5, 0.0, 0.0]]], dtype=torch.float64)  # C_1 = (0.5, 0, 0)
    H = ds.sweep_homographies(K, R, t, torch.tensor([1.0, 10.0], dtype=torch.float64))
    centre = torch.tensor([[8.0, 8.0]], dtype=torch.float64)
    near, far = geometry.apply_homography(H[0, 0], centre)
    torch.testing.assert_close(near, torch.tensor([[8.0 - 10 * 0.5 / 1.0, 8.0]], dtype=torch.float64))
    torch.testing.assert_close(far, torch.tensor([[8.0 - 10 * 0.5 / 10.0, 8.0]], dtype=torch.float64))


def test_sweep_homographies_rejects_bad_shapes():
    K, R, t = _rig(2, 2)
    with pytest.raises(ValueError, match="R"):
        ds.sweep_homographies(K, R[:, :2], t, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="N >= 2"):
        ds.sweep_homographies(K[:, :1], R[:, :1], t[:, :1], torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="depths"):
        ds.sweep_homographies(K, R, t, torch.ones(3, 4, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# the warp: plane-sweep volume
# ---------------------------------------------------------------------------------------------


def _ramp_images(B, V, size, dtype=torch.float64):
    """Images linear in (u, v): bilinear sampling reproduces them exactly inside the image."""
    g = geometry.pixel_grid(size, size, dtype=dtype)  # (H, W, 2)
    a = torch.linspace(0.5, 1.5, B * V * 3, dtype=dtype).reshape(B, V, 3, 1, 1)
    return a * g[..., 0] / size + (1 - a) * g[..., 1] / size, a  # (B, V, 3, H, W)


@pytest.mark.parametrize("B, V, D", [(1, 1, 3), (2, 3, 4)])
def test_plane_sweep_volume_against_the_analytic_image(B, V, D):
    size = 16
    K, R, t = _rig(B, V, size)
    depths = ds.inverse_depth_planes(1.5, 6.0, D, dtype=torch.float64)
    images, a = _ramp_images(B, V, size)
    H = ds.sweep_homographies(K, R, t, depths)
    psv, mask = ds.plane_sweep_volume(images, H, size, size)
    assert psv.shape == (B, D, V, 3, size, size) and mask.shape == (B, D, V, 1, size, size)
    grid = geometry.pixel_grid(size, size, dtype=torch.float64).reshape(-1, 2)
    uv = geometry.apply_homography(H, grid)  # (B, V, D, HW, 2)
    c = a[:, :, None, :, 0, 0, None]  # (B, V, 1, 3, 1): the ramp's coefficient per view and channel
    u, w = uv[..., None, :, 0], uv[..., None, :, 1]  # (B, V, D, 1, HW)
    ref = (c * u / size + (1 - c) * w / size).reshape(B, V, D, 3, size, size).transpose(1, 2)  # (B, D, V, 3, H, W)
    inside = ((uv > 1.0) & (uv < size - 1.0)).all(-1).reshape(B, V, D, size, size).transpose(1, 2)  # (B, D, V, H, W)
    assert inside.float().mean() > 0.3
    sel = inside[:, :, :, None].expand_as(psv)
    torch.testing.assert_close(psv[sel], ref[sel])
    # the mask is 1 where the sample is inside, 0 far outside
    assert (mask[:, :, :, 0][inside] == 1).all()
    outside = ((uv < -1) | (uv > size + 1)).any(-1).reshape(B, V, D, size, size).transpose(1, 2)
    assert (mask[:, :, :, 0][outside] == 0).all()


def test_plane_sweep_volume_matches_a_loop_over_planes():
    B, V, D, size = 2, 2, 3, 12
    K, R, t = _rig(B, V, size, dtype=torch.float32)
    images = torch.rand(B, V, 3, size, size, generator=torch.Generator().manual_seed(0))
    depths = ds.inverse_depth_planes(1.0, 5.0, D)
    H = ds.sweep_homographies(K, R, t, depths)
    psv, _ = ds.plane_sweep_volume(images, H, size, size)
    for z in range(D):  # the reference: one warp per plane and view
        for v in range(V):
            one = geometry.warp_homography(images[:, v], H[:, v, z], size, size)
            torch.testing.assert_close(psv[:, z, v], one)


def test_crop_homographies_give_the_window_of_the_full_volume():
    B, V, D, size = 2, 2, 3, 16
    K, R, t = _rig(B, V, size)
    images = torch.rand(B, V, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    H = ds.sweep_homographies(K, R, t, ds.inverse_depth_planes(1.0, 5.0, D, dtype=torch.float64))
    full, fmask = ds.plane_sweep_volume(images, H, size, size)
    offset = torch.tensor([[3, 5], [0, 9]])
    crop, cmask = ds.plane_sweep_volume(images, ds.crop_homographies(H, offset), 6, 7)
    for b in range(B):
        x0, y0 = offset[b].tolist()
        torch.testing.assert_close(crop[b], full[b, ..., y0 : y0 + 6, x0 : x0 + 7])
        torch.testing.assert_close(cmask[b], fmask[b, ..., y0 : y0 + 6, x0 : x0 + 7])
    with pytest.raises(ValueError, match="offset"):
        ds.crop_homographies(H, torch.zeros(3, 2))


def test_plane_sweep_volume_rejects_bad_shapes():
    K, R, t = _rig(2, 2)
    H = ds.sweep_homographies(K, R, t, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="H"):
        ds.plane_sweep_volume(torch.rand(2, 3, 3, 8, 8, dtype=torch.float64), H, 8, 8)


# ---------------------------------------------------------------------------------------------
# statistics, the weighted sum, expected depth
# ---------------------------------------------------------------------------------------------


def test_plane_statistics_against_a_loop():
    g = torch.Generator().manual_seed(2)
    psv = torch.rand(2, 3, 4, 3, 5, 5, generator=g, dtype=torch.float64)
    mask = (torch.rand(2, 3, 4, 1, 5, 5, generator=g) > 0.3).double()
    mean, var, count = ds.plane_statistics(psv, mask)
    b, z, i, j = 1, 2, 3, 4
    seen = [v for v in range(4) if mask[b, z, v, 0, i, j] > 0]
    cols = psv[b, z, seen, :, i, j]  # (n, 3)
    torch.testing.assert_close(mean[b, z, :, i, j], cols.mean(0))
    torch.testing.assert_close(var[b, z, 0, i, j], cols.var(0, unbiased=False).mean())
    assert count[b, z, 0, i, j] == len(seen)
    empty = torch.zeros_like(mask)
    m0, v0, c0 = ds.plane_statistics(psv, empty)
    assert (m0 == 0).all() and (v0 == 0).all() and (c0 == 0).all()


@pytest.mark.parametrize("B, D", [(1, 2), (3, 5)])
def test_synthesize_is_the_weighted_sum_and_gradchecks(B, D):
    g = torch.Generator().manual_seed(3)
    s = torch.softmax(torch.randn(B, D, 4, 3, generator=g, dtype=torch.float64), 1).requires_grad_()
    c = torch.rand(B, D, 3, 4, 3, generator=g, dtype=torch.float64).requires_grad_()
    out = ds.synthesize(s, c)
    assert out.shape == (B, 3, 4, 3)
    ref = sum(s[:, z, None] * c[:, z] for z in range(D))  # the sum written out
    torch.testing.assert_close(out, ref)
    onehot = torch.zeros(B, D, 4, 3, dtype=torch.float64)
    onehot[:, D - 1] = 1
    torch.testing.assert_close(ds.synthesize(onehot, c), c[:, D - 1])
    assert torch.autograd.gradcheck(ds.synthesize, (s, c))
    with pytest.raises(ValueError, match="colors"):
        ds.synthesize(s, c[:, :1])


def test_expected_depth_reads_the_plane_depth_and_gradchecks():
    depths = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    sel = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    sel[0, 1] = 1
    sel[1, 0], sel[1, 2] = 0.5, 0.5
    d = ds.expected_depth(sel, depths)
    assert d.shape == (2, 1, 2, 2)
    torch.testing.assert_close(d[0], torch.full((1, 2, 2), 2.0, dtype=torch.float64))
    torch.testing.assert_close(d[1], torch.full((1, 2, 2), 2.5, dtype=torch.float64))
    s = torch.softmax(torch.randn(2, 3, 2, 2, dtype=torch.float64), 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ds.expected_depth(x, depths), (s,))
    with pytest.raises(ValueError, match="depths"):
        ds.expected_depth(sel, torch.ones(4, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# towers and model
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("B, D, V, h", [(1, 3, 2, 8), (2, 5, 4, 6)])
def test_model_shapes_softmax_and_masked_blend(B, D, V, h):
    torch.manual_seed(0)
    model = ds.DeepStereo(n_inputs=V, width=8)
    psv = torch.rand(B, D, V, 3, h, h)
    mask = torch.ones(B, D, V, 1, h, h)
    out = model(psv, mask)
    assert out["rgb"].shape == (B, 3, h, h)
    assert out["selection"].shape == (B, D, h, h) and out["colors"].shape == (B, D, 3, h, h)
    torch.testing.assert_close(out["selection"].sum(1), torch.ones(B, h, h))
    # a colour is a convex blend of the inputs: inside their range
    assert (out["colors"] >= psv.amin(2) - 1e-6).all() and (out["colors"] <= psv.amax(2) + 1e-6).all()
    # only view 0 sees the point: the colour tower must return view 0's colour
    mask0 = torch.zeros_like(mask)
    mask0[:, :, 0] = 1
    out0 = model(psv, mask0)
    torch.testing.assert_close(out0["colors"], psv[:, :, 0])
    torch.testing.assert_close(out0["rgb"], ds.synthesize(out0["selection"], out0["colors"]))


def test_selection_tower_shares_weights_across_planes():
    """Without the across-depth layers, identical planes give identical features: permuting the
    planes of the input permutes the per-plane features."""
    torch.manual_seed(1)
    tower = ds.SelectionTower(c_in=5, width=4)
    x = torch.rand(1, 4, 5, 6, 6)
    perm = torch.tensor([2, 0, 3, 1])
    f = tower.per_plane(x[0])
    torch.testing.assert_close(tower.per_plane(x[0, perm]), f[perm])


def test_model_rejects_wrong_view_count_and_shapes():
    model = ds.DeepStereo(n_inputs=4, width=4)
    with pytest.raises(ValueError, match="V = 4"):
        model(torch.rand(1, 3, 2, 3, 6, 6), torch.ones(1, 3, 2, 1, 6, 6))
    with pytest.raises(ValueError, match="mask"):
        model(torch.rand(1, 3, 4, 3, 6, 6), torch.ones(1, 3, 4, 1, 5, 6))


def test_model_gradcheck_float64_tiny():
    torch.manual_seed(2)
    model = ds.DeepStereo(n_inputs=2, width=2).double()
    psv = torch.rand(1, 2, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(1, 2, 2, 1, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: model(p, mask)["rgb"], (psv,), atol=1e-5)


def test_loss_crops_the_context_and_rejects():
    pred = torch.zeros(1, 3, 6, 6)
    target = torch.zeros(1, 3, 6, 6)
    target[..., 0, :] = 1.0  # only the border row differs
    assert ds.loss(pred, target)["l1"] > 0
    assert ds.loss(pred, target, crop=1)["l1"] == 0
    torch.testing.assert_close(ds.loss(pred, target + 0.25, crop=2)["total"], torch.tensor(0.25))
    with pytest.raises(ValueError, match="crop"):
        ds.loss(pred, target, crop=3)
    with pytest.raises(ValueError, match="target"):
        ds.loss(pred, target[..., :5])


# ---------------------------------------------------------------------------------------------
# baselines and metrics
# ---------------------------------------------------------------------------------------------


def test_variance_stereo_and_single_plane_pick_the_agreeing_plane():
    g = torch.Generator().manual_seed(4)
    N, D, V, h = 2, 4, 3, 5
    psv = torch.rand(N, D, V, 3, h, h, generator=g)
    truth = torch.rand(N, 3, h, h, generator=g)
    psv[:, 2] = truth[:, None]  # all views agree on plane 2, and equal the target
    mask = torch.ones(N, D, V, 1, h, h)
    depths = torch.tensor([1.0, 2.0, 3.0, 4.0])
    img, depth = ds.variance_stereo(psv, mask, depths)
    torch.testing.assert_close(img, truth)
    torch.testing.assert_close(depth, torch.full((N, 1, h, h), 3.0))
    img1, best = ds.single_plane(psv, mask, truth)
    assert best.tolist() == [2, 2]
    torch.testing.assert_close(img1, truth)


def test_nearest_view_picks_the_closest_camera():
    from lessons.data import scenes

    K, R, t = _rig(2, 3, dtype=torch.float32)
    images = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1, 1, 1).expand(2, 4, 3, 2, 2).contiguous()
    views = scenes.SceneViews(images, torch.ones(2, 4, 1, 2, 2), K, R, t)
    C = geometry.camera_center(R, t)
    k = (C[:, 1:] - C[:, :1]).norm(dim=-1).argmin(1)
    out = ds.nearest_view(views)
    for b in range(2):
        assert float(out[b, 0, 0, 0]) == float(images[b, 1 + k[b], 0, 0, 0])


def test_depth_correlation_values():
    d = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(5)) + 1
    torch.testing.assert_close(ds.depth_correlation(d, 2 * d + 1), torch.ones(2))
    torch.testing.assert_close(ds.depth_correlation(-d, d), -torch.ones(2))
    torch.testing.assert_close(ds.depth_correlation(torch.ones_like(d), d), torch.zeros(2))
    with pytest.raises(ValueError, match="true"):
        ds.depth_correlation(d, d[:, :, :3])


# ---------------------------------------------------------------------------------------------
# data and training
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_views():
    from lessons.data import scenes

    return scenes.make_scenes(2, "train", image_size=24, supersample=1)


def test_sample_patches_cut_the_target_and_the_volume(tiny_views):
    depths = ds.inverse_depth_planes(0.9, 8.0, 4)
    g = torch.Generator().manual_seed(0)
    psv, mask, target = ds.sample_patches(tiny_views, depths, patch=8, context=0, batch=3, generator=g)
    assert psv.shape == (3, 4, 4, 3, 8, 8) and mask.shape == (3, 4, 4, 1, 8, 8) and target.shape == (3, 3, 8, 8)
    # with context 0, the patch must be a window of one target image and of its full volume
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(2, (3,), generator=g)
    x0 = torch.randint(24 - 8 + 1, (3,), generator=g)
    y0 = torch.randint(24 - 8 + 1, (3,), generator=g)
    v = tiny_views
    full, _ = ds.plane_sweep_volume(v.inputs, ds.sweep_homographies(v.K, v.R, v.t, depths), 24, 24)
    for b in range(3):
        i, x, y = int(idx[b]), int(x0[b]), int(y0[b])
        torch.testing.assert_close(target[b], v.target[i, :, y : y + 8, x : x + 8])
        torch.testing.assert_close(psv[b], full[i, ..., y : y + 8, x : x + 8], atol=1e-4, rtol=1e-4)
    _, _, tgt = ds.sample_patches(tiny_views, depths, patch=8, context=3, batch=2)
    assert tgt.shape == (2, 3, 14, 14)
    with pytest.raises(ValueError, match="patch"):
        ds.sample_patches(tiny_views, depths, patch=30, context=0, batch=1)


def test_overfits_one_batch(tiny_views):
    torch.manual_seed(0)
    depths = ds.inverse_depth_planes(0.9, 8.0, 6)
    psv, mask, target = ds.sample_patches(tiny_views, depths, 10, 3, 4, torch.Generator().manual_seed(1))
    model = ds.DeepStereo(4, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        terms = ds.loss(model(psv, mask)["rgb"], target, crop=3)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        first = float(terms["l1"].detach()) if first is None else first
    assert float(terms["l1"].detach()) < 0.6 * first


def test_config_profiles_resolve():
    from lessons import config

    for p in ("quick", "cpu", "gpu"):
        cfg = config.resolve(ds.Config, p)
        assert cfg.planes >= 8 and cfg.patch + 2 * cfg.context <= 2 * cfg.image_size


def test_short_training_beats_the_nearest_view_and_learns_to_trust_agreement(tiny_views):
    """The key claim in miniature: a few dozen steps already beat copying the nearest input, and
    the learned weight of the matching cost turns positive (agreement across inputs = depth)."""
    from lessons import config, metrics

    cfg = config.resolve(ds.Config, "quick", image_size=24, planes=8, patch=10, context=3, width=8, batch=4, steps=30)
    model, history = ds.train(cfg, tiny_views, device="cpu", progress=False)
    assert len(history["l1"]) > 3
    assert float(model.selection.cost_weight.detach()) > 0
    depths = ds.inverse_depth_planes(cfg.near, cfg.far, cfg.planes)
    out = ds.predict(model, tiny_views, depths)
    ours = metrics.psnr(out["rgb"], tiny_views.target).mean()
    nearest = metrics.psnr(ds.nearest_view(tiny_views), tiny_views.target).mean()
    assert ours > nearest + 2.0, (float(ours), float(nearest))
