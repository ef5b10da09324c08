"""Tests of lessons.papers.render_for_cnn: bins, the geometry-aware loss, class-dependent heads, training."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from lessons import config, geometry
from lessons.data import renders, shapes
from lessons.papers import render_for_cnn as r4

DEG = math.pi / 180


def _tiny(**kw):
    base = dict(categories=("chair", "table"), image_size=16, channels=(8, 16), features=32, dropout=0.0,
                azimuth_bins=36, elevation_bins=18, inplane_bins=36, steps=60, batch_size=16, lr=3e-3)
    base.update(kw)
    return config.resolve(r4.Config, "quick", **base)


# --- bins -----------------------------------------------------------------------------------


def test_config_profiles_resolve():
    for p in config.PROFILES:
        cfg = config.resolve(r4.Config, p)
        assert cfg.image_size % 2 ** len(cfg.channels) == 0
        assert len(cfg.bins) == 3 and len(cfg.sigmas_deg) == 3


def test_class_index_maps_labels():
    labels = torch.tensor([shapes.CATEGORIES.index("table"), shapes.CATEGORIES.index("chair")])
    assert r4.class_index(labels, ("chair", "table")).tolist() == [1, 0]
    with pytest.raises(ValueError, match="sofa"):
        r4.class_index(torch.tensor([shapes.CATEGORIES.index("sofa")]), ("chair",))
    with pytest.raises(ValueError, match="labels"):
        r4.class_index(torch.tensor([1.0]), ("chair",))


def test_angle_to_bin_convention_pins():
    a = torch.tensor([0.0, -0.4, 0.4, 0.6, 180.0, -179.6, 359.0]) * DEG
    # 360 bins of 1 degree centred on whole degrees: 0 and +-0.4 are bin 0; 180 is bin 180
    assert r4.angle_to_bin(a, 360).tolist() == [0, 0, 0, 1, 180, 180, 359]
    # elevation: 180 bins over [-90, 90]: -90 -> 0, 0 -> 90, 89.9 -> 179 (clamped above)
    e = torch.tensor([-90.0, -89.5, 0.0, 0.5, 89.9, 95.0]) * DEG
    assert r4.angle_to_bin(e, 180, circular=False).tolist() == [0, 0, 90, 90, 179, 179]


@pytest.mark.parametrize("shape", [(5,), (2, 7)])
@pytest.mark.parametrize("B,circular", [(360, True), (24, True), (180, False), (18, False)])
def test_bin_round_trip(shape, B, circular):
    g = torch.Generator().manual_seed(B)
    span = 2 * math.pi if circular else math.pi
    a = (torch.rand(shape, generator=g, dtype=torch.float64) - 0.5) * span * 0.999
    i = r4.angle_to_bin(a, B, circular)
    c = r4.bin_to_angle(i, B, circular, torch.float64)
    w = span / B
    err = torch.remainder(c - a + math.pi, 2 * math.pi) - math.pi
    assert torch.all(err.abs() <= w / 2 + 1e-9)
    # a bin's centre falls in that bin
    assert torch.equal(r4.angle_to_bin(c, B, circular), i)


def test_viewpoint_bins_round_trip():
    vp = torch.tensor([[0.3, 0.2, -0.1], [-2.0, -0.5, 0.05]])
    idx = r4.viewpoint_to_bins(vp, (360, 180, 360))
    assert idx.shape == (2, 3) and idx.dtype == torch.int64
    back = r4.bins_to_viewpoint(idx, (360, 180, 360))
    assert (back - vp).abs().max() < 0.51 * DEG + 1e-6
    with pytest.raises(ValueError, match="viewpoint"):
        r4.viewpoint_to_bins(torch.zeros(2, 2), (360, 180, 360))
    with pytest.raises(ValueError, match="bins"):
        r4.viewpoint_to_bins(vp, (360, 180))


def test_bin_distance_against_a_loop():
    B = 12
    i = torch.arange(B)[:, None]
    j = torch.arange(B)[None]
    d = r4.bin_distance(i, j, B, circular=True)
    for a in range(B):
        for b in range(B):
            assert d[a, b] == min(abs(a - b), B - abs(a - b))
    assert r4.bin_distance(torch.tensor(0), torch.tensor(B - 1), B, True) == 1  # wraps
    assert r4.bin_distance(torch.tensor(0), torch.tensor(B - 1), B, False) == B - 1  # elevation does not


def test_soft_targets_values():
    w = r4.soft_targets(torch.tensor([0, 5]), 8, sigma=2.0)
    assert w.shape == (2, 8)
    torch.testing.assert_close(w[0, :3], torch.tensor([1.0, math.exp(-0.5), math.exp(-1.0)]))
    torch.testing.assert_close(w[0, 7], torch.tensor(math.exp(-0.5)))  # circular neighbour
    torch.testing.assert_close(w[1], w[0].roll(5))  # shift invariant on the circle
    one_hot = r4.soft_targets(torch.tensor([3]), 8, sigma=0.0)
    torch.testing.assert_close(one_hot, F.one_hot(torch.tensor([3]), 8).float())


# --- the loss -------------------------------------------------------------------------------


@pytest.mark.parametrize("N", [1, 4])
def test_geometry_aware_loss_against_a_loop(N):
    g = torch.Generator().manual_seed(N)
    B, sigma = 10, 1.5
    logits = torch.randn(N, B, generator=g, dtype=torch.float64)
    target = torch.randint(B, (N,), generator=g)
    got = r4.geometry_aware_loss(logits, target, sigma)
    total = 0.0
    for s in range(N):
        logp = logits[s] - torch.logsumexp(logits[s], 0)
        for v in range(B):
            d = min(abs(v - int(target[s])), B - abs(v - int(target[s])))
            total += -math.exp(-d / sigma) * float(logp[v])
    torch.testing.assert_close(got, torch.tensor(total / N, dtype=torch.float64))


def test_geometry_aware_loss_sigma_zero_is_cross_entropy():
    logits = torch.randn(6, 9)
    target = torch.randint(9, (6,))
    torch.testing.assert_close(r4.geometry_aware_loss(logits, target, 0.0), F.cross_entropy(logits, target))


def test_geometry_aware_loss_prefers_near_misses():
    # a confident prediction one bin off costs less than one half a circle off; for CE they are equal
    target = torch.tensor([0])
    near = torch.full((1, 36), -10.0)
    near[0, 1] = 10.0
    far = torch.full((1, 36), -10.0)
    far[0, 18] = 10.0
    assert r4.geometry_aware_loss(near, target, 2.0) < r4.geometry_aware_loss(far, target, 2.0)
    torch.testing.assert_close(r4.geometry_aware_loss(near, target, 0.0), r4.geometry_aware_loss(far, target, 0.0))


def test_geometry_aware_loss_gradcheck():
    logits = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 3, 6])
    assert torch.autograd.gradcheck(lambda x: r4.geometry_aware_loss(x, target, 1.0), (logits,))
    assert torch.autograd.gradcheck(lambda x: r4.geometry_aware_loss(x, target, 1.0, circular=False), (logits,))


def test_geometry_aware_loss_bad_input():
    with pytest.raises(ValueError, match=r"target: expected shape \(N\)"):
        r4.geometry_aware_loss(torch.randn(3, 5), torch.tensor([0, 1]), 1.0)
    with pytest.raises(ValueError, match="logits"):
        r4.geometry_aware_loss(torch.randn(3), torch.tensor([0, 1, 2]), 1.0)


def test_viewpoint_loss_terms():
    cfg = _tiny()
    N = 4
    logits = {name: torch.randn(N, b) for name, b in zip(r4.ANGLES, cfg.bins)}
    vp = torch.tensor([[0.1, 0.2, 0.0]] * N)
    out = r4.viewpoint_loss(logits, vp, cfg)
    torch.testing.assert_close(out["loss"], out["azimuth"] + out["elevation"] + out["inplane"])
    ce = r4.viewpoint_loss(logits, vp, dataclasses.replace(cfg, soft_loss=False))
    idx = r4.viewpoint_to_bins(vp, cfg.bins)
    torch.testing.assert_close(ce["azimuth"], F.cross_entropy(logits["azimuth"], idx[:, 0]))
    # sigma in degrees becomes bins: 5 degrees over 10-degree bins is half a bin
    w = r4.soft_targets(idx[:1, 0], 36, 0.5)
    ref = -(w * F.log_softmax(logits["azimuth"][:1], 1)).sum()
    one = r4.viewpoint_loss({k: v[:1] for k, v in logits.items()}, vp[:1], cfg)
    torch.testing.assert_close(one["azimuth"], ref)


# --- the network ----------------------------------------------------------------------------


@pytest.mark.parametrize("B", [1, 5])
def test_class_dependent_heads_match_a_loop(B):
    torch.manual_seed(0)
    bins = (6, 4, 5)
    heads = r4.ViewpointHeads(8, 3, bins, class_dependent=True)
    f = torch.randn(B, 8)
    c = torch.randint(3, (B,))
    out = heads(f, c)
    T = sum(bins)
    W, b = heads.linear.weight.view(3, T, 8), heads.linear.bias.view(3, T)
    for s in range(B):  # the naive reference: sample s uses its own class's layer
        ref = W[c[s]] @ f[s] + b[c[s]]
        torch.testing.assert_close(torch.cat([out[n][s] for n in r4.ANGLES]), ref)
    assert [out[n].shape for n in r4.ANGLES] == [(B, 6), (B, 4), (B, 5)]


def test_shared_heads_ignore_the_class():
    heads = r4.ViewpointHeads(8, 3, (6, 4, 5), class_dependent=False)
    f = torch.randn(2, 8)
    a, b = heads(f, torch.tensor([0, 0])), heads(f, torch.tensor([2, 1]))
    torch.testing.assert_close(a["azimuth"], b["azimuth"])
    assert heads.linear.out_features == 15


def test_heads_bad_input():
    heads = r4.ViewpointHeads(8, 3, (6, 4, 5))
    with pytest.raises(ValueError, match="category"):
        heads(torch.randn(2, 8), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"category: expected shape \(B\)"):
        heads(torch.randn(2, 8), torch.tensor([0]))


def test_model_shapes_and_trunk_check():
    cfg = _tiny()
    model = r4.RenderForCNN(cfg)
    out = model(torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 0]))
    assert [out[n].shape for n in r4.ANGLES] == [(3, 36), (3, 18), (3, 36)]
    with pytest.raises(ValueError, match="images"):
        model(torch.rand(3, 3, 20, 20), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="image_size"):
        r4.Trunk(20, (8, 16, 32))


# --- evaluation -----------------------------------------------------------------------------


def test_evaluate_viewpoints_known_errors():
    cats = ("chair", "table")
    labels = torch.tensor([shapes.CATEGORIES.index(c) for c in ("chair", "table", "chair", "table")])
    true = torch.tensor([[0.3, 0.2, 0.0], [1.0, 0.1, 0.05], [-2.0, 0.3, 0.0], [2.5, 0.0, 0.1]])
    perfect = r4.evaluate_viewpoints(true, true, labels, cats)
    assert perfect["mean"]["acc_pi6"] == 1.0 and perfect["mean"]["med_err_deg"] < 1e-3
    # a pure azimuth error of 45 degrees at elevation 0 and no roll is a 45-degree rotation
    t0 = true.clone()
    t0[:, 1:] = 0
    off = t0.clone()
    off[:, 0] += 45 * DEG
    res = r4.evaluate_viewpoints(off, t0, labels, cats)
    assert res["mean"]["acc_pi6"] == 0.0 and abs(res["mean"]["med_err_deg"] - 45) < 1e-4
    assert res["chair"]["n"] == 2 and res["table"]["acc_azimuth_pi6"] == 0.0
    # a (3,) prediction is broadcast (the constant baseline)
    const = r4.evaluate_viewpoints(r4.prior_mode(), true, labels, cats)
    assert 0 <= const["mean"]["acc_pi6"] <= 1
    with pytest.raises(ValueError, match="pred"):
        r4.evaluate_viewpoints(torch.zeros(3, 3), true, labels, cats)


def test_prior_mode_is_the_front_view():
    m = r4.prior_mode()
    assert m.shape == (3,) and m[0] == 0 and abs(float(m[1]) - 15 * DEG) < 1e-6 and m[2] == 0


def test_evaluation_uses_the_course_camera():
    # the geodesic error is that of geometry.camera_from_viewpoint's rotations (pins the convention)
    cats = ("chair",)
    lab = torch.tensor([shapes.CATEGORIES.index("chair")])
    a, b = torch.tensor([[0.2, 0.3, 0.1]]), torch.tensor([[0.9, -0.1, -0.2]])
    Ra, _ = geometry.camera_from_viewpoint(*a[0].double())
    Rb, _ = geometry.camera_from_viewpoint(*b[0].double())
    ref = math.degrees(float(geometry.geodesic_distance(Ra, Rb)))
    assert abs(r4.evaluate_viewpoints(a, b, lab, cats)["mean"]["med_err_deg"] - ref) < 1e-6


# --- training: overfit one batch; beat the trivial baseline ----------------------------------


def test_overfits_one_batch():
    cfg = _tiny(steps=80)
    data = renders.make_render_set(cfg.categories, n=16, image_size=16, seed=0, antialias=1, background=0.5)
    model, history = r4.train(cfg, data, progress=False, device="cpu")
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    res = r4.evaluate(model, data, cfg.categories)
    assert res["mean"]["acc_pi6"] >= 0.9
    pred = r4.predict(model, data["image"], data["category"], cfg.categories)
    assert pred["viewpoint"].shape == (16, 3)
    torch.testing.assert_close(pred["azimuth"].sum(1), torch.ones(16))


def test_train_mixes_sources_and_rejects_bad_data():
    cfg = _tiny(steps=2, batch_size=4)
    a = renders.make_render_set(cfg.categories, n=4, image_size=16, seed=0, antialias=1, background=0.5)
    b = renders.make_render_set(cfg.categories, n=4, image_size=16, seed=1, antialias=1, background=0.5)
    model, history = r4.train(cfg, [a, b], progress=False, device="cpu")
    assert len(history["loss"]) >= 1
    with pytest.raises(ValueError, match="viewpoint"):
        r4.train(cfg, {"image": a["image"], "category": a["category"]}, progress=False)


def test_beats_the_prior_mode_on_held_out_shapes():
    cfg = _tiny(image_size=32, channels=(8, 16, 32), features=64, azimuth_bins=360, elevation_bins=180,
                inplane_bins=360, steps=150, batch_size=32)
    kw = dict(image_size=32, antialias=1, background=0.5)
    train_set = renders.make_render_set(cfg.categories, n=800, seed=0, **kw)
    test_set = renders.make_render_set(cfg.categories, n=120, split="test", seed=1, **kw)
    model, _ = r4.train(cfg, train_set, progress=False, device="cpu")
    ours = r4.evaluate(model, test_set, cfg.categories)["mean"]
    base = r4.evaluate_viewpoints(r4.prior_mode(), test_set["viewpoint"], test_set["category"], cfg.categories)["mean"]
    assert ours["acc_pi6"] > base["acc_pi6"] + 0.1
    assert ours["med_err_deg"] < base["med_err_deg"]
