"""Tests for lessons.papers.interpreter (3D-INN): skeleton model, projection layer, heatmaps, nets."""

import math

import pytest
import torch

from lessons import config, geometry
from lessons.data import shapes
from lessons.papers import interpreter as inn


def chair_keypoints(n=60):
    return torch.stack([s.keypoints for s in shapes.shape_batch("chair", range(n))])  # (n, 10, 3)


@pytest.fixture(scope="module")
def bases():
    return inn.fit_base_shapes(chair_keypoints(), 4)  # (5, 10, 3)


def small_cfg(**kw):
    return config.resolve(inn.Config, "quick", **kw)


# ----------------------------------------------------------------------------------------------
# base shapes and the structure
# ----------------------------------------------------------------------------------------------


class TestBaseShapes:
    def test_mean_first_modes_orthogonal_unit_variance(self):
        kp = chair_keypoints()
        B = inn.fit_base_shapes(kp, 4)
        assert B.shape == (5, 10, 3) and B.dtype == kp.dtype
        torch.testing.assert_close(B[0], kp.mean(0), atol=1e-6, rtol=0)
        modes = B[1:].reshape(4, -1).double()
        gram = modes @ modes.T
        assert (gram - torch.diag(gram.diagonal())).abs().max() < 1e-6 * gram.diagonal().max()
        assert (gram.diagonal()[:-1] >= gram.diagonal()[1:]).all()  # sorted by variance
        # alpha_k of the fitting shapes have unit variance (B_k = sigma_k U_k)
        alpha = inn.structure_coefficients(kp.double(), B.double())
        torch.testing.assert_close(alpha[:, 1:].std(0), torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0)
        torch.testing.assert_close(alpha[:, 0], torch.ones(60, dtype=torch.float64))

    def test_all_modes_reconstruct_exactly(self):
        kp = chair_keypoints(12).double()
        B = inn.fit_base_shapes(kp, 11)  # N - 1 modes span every centred shape
        rec = inn.compose_structure(inn.structure_coefficients(kp, B), B)
        torch.testing.assert_close(rec, kp, atol=1e-9, rtol=0)

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"keypoints: expected shape \(N, J, 3\)"):
            inn.fit_base_shapes(torch.zeros(5, 10, 2), 2)
        with pytest.raises(ValueError, match="n_modes"):
            inn.fit_base_shapes(torch.zeros(5, 10, 3), 5)


class TestComposeStructure:
    @pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
    def test_matches_loop(self, batch, bases, generator):
        alpha = torch.randn(*batch, 5, generator=generator)
        Y = inn.compose_structure(alpha, bases)
        assert Y.shape == (*batch, 10, 3)
        flat = alpha.reshape(-1, 5)
        ref = torch.stack([sum(a[k] * bases[k] for k in range(5)) for a in flat]).reshape(*batch, 10, 3)
        torch.testing.assert_close(Y, ref, atol=1e-6, rtol=1e-5)

    def test_mean_shape_at_unit_alpha0(self, bases):
        torch.testing.assert_close(inn.compose_structure(torch.tensor([1.0, 0, 0, 0, 0]), bases), bases[0])

    def test_gradcheck(self, generator):
        alpha = torch.randn(2, 3, dtype=torch.float64, generator=generator, requires_grad=True)
        B = torch.randn(3, 4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
        assert torch.autograd.gradcheck(inn.compose_structure, (alpha, B))

    def test_bad_input(self, bases):
        with pytest.raises(ValueError, match=r"alpha: expected shape \(\*, M\) with \{'M': 5\}, received \(2, 4\)"):
            inn.compose_structure(torch.zeros(2, 4), bases)
        with pytest.raises(ValueError, match="alpha: expected a floating-point dtype"):
            inn.compose_structure(torch.zeros(2, 5, dtype=torch.int64), bases)


class TestProjectStructure:
    @pytest.mark.parametrize("batch", [(1,), (3,), (2, 2)])
    def test_matches_naive_pinhole(self, batch, bases, generator):
        alpha = torch.randn(*batch, 5, generator=generator, dtype=torch.float64)
        R = geometry.random_rotation(batch, generator, dtype=torch.float64)
        T = torch.randn(*batch, 3, generator=generator, dtype=torch.float64) * 0.1 + torch.tensor([0, 0, 2.0], dtype=torch.float64)
        K = geometry.intrinsics(torch.tensor(48.0, dtype=torch.float64), 32, 32).expand(*batch, 3, 3)
        pix, X_c = inn.project_structure(alpha, bases.double(), R, T, K)
        assert pix.shape == (*batch, 10, 2) and X_c.shape == (*batch, 10, 3)
        Y = inn.compose_structure(alpha, bases.double()).reshape(-1, 10, 3)
        Rf, Tf, Kf = R.reshape(-1, 3, 3), T.reshape(-1, 3), K.reshape(-1, 3, 3)
        ref = torch.empty(Y.shape[0], 10, 2, dtype=torch.float64)
        for b in range(Y.shape[0]):  # the naive loop: lambda (u, v, 1) = K (R Y_j + T)
            for j in range(10):
                x = Kf[b] @ (Rf[b] @ Y[b, j] + Tf[b])
                ref[b, j] = x[:2] / x[2]
        torch.testing.assert_close(pix, ref.reshape(*batch, 10, 2))

    def test_convention_pin_y_down(self):
        # a single base shape with one point at +x (right) and one at +y (up in the world);
        # camera at azimuth 0: the +x point is to the right of the centre (u > 16) and the
        # world-up point appears ABOVE the centre (v < 16) because image v grows downwards.
        B = torch.tensor([[[0.2, 0.0, 0.0], [0.0, 0.2, 0.0]]])
        R, T = geometry.camera_from_viewpoint(torch.tensor(0.0), torch.tensor(0.0), 0.0, 2.0)
        K = geometry.intrinsics(48.0, 32, 32)
        pix, _ = inn.project_structure(torch.ones(1), B, R, T, K)
        assert pix[0, 0] > 16 and abs(pix[0, 1] - 16) < 1e-5
        assert pix[1, 1] < 16 and abs(pix[1, 0] - 16) < 1e-5

    def test_gradcheck_through_6d_rotation(self, generator):
        B = torch.randn(3, 4, 3, dtype=torch.float64, generator=generator) * 0.2
        alpha = torch.randn(2, 3, dtype=torch.float64, generator=generator, requires_grad=True)
        r6 = torch.randn(2, 6, dtype=torch.float64, generator=generator, requires_grad=True)
        T = (torch.tensor([[0.1, -0.1, 2.0], [0.0, 0.2, 2.5]], dtype=torch.float64)).requires_grad_()
        K = geometry.intrinsics(torch.tensor(40.0, dtype=torch.float64), 32, 32).expand(2, 3, 3)

        def f(alpha, r6, T):
            return inn.project_structure(alpha, B, geometry.rotation_6d_to_matrix(r6), T, K)[0]

        assert torch.autograd.gradcheck(f, (alpha, r6, T))

    def test_bad_input(self, bases):
        with pytest.raises(ValueError, match=r"K: expected shape \(\*, 3, 3\), received \(3, 4\)"):
            inn.project_structure(torch.ones(5), bases, torch.eye(3), torch.zeros(3), torch.zeros(3, 4))
        with pytest.raises(ValueError, match=r"T: expected shape \(\*, 3\)"):
            inn.project_structure(torch.ones(5), bases, torch.eye(3), torch.zeros(2), torch.eye(3))


# ----------------------------------------------------------------------------------------------
# heatmaps
# ----------------------------------------------------------------------------------------------


class TestHeatmaps:
    @pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
    def test_normalised_and_soft_argmax_round_trip(self, batch, generator):
        pix = 10 + 12 * torch.rand(*batch, 4, 2, generator=generator, dtype=torch.float64)  # interior of a 32 px image
        H = inn.keypoint_heatmaps(pix, 16, 32, sigma=1.0)
        assert H.shape == (*batch, 4, 16, 16)
        torch.testing.assert_close(H.sum((-1, -2)), torch.ones(*batch, 4, dtype=torch.float64))
        torch.testing.assert_close(inn.soft_argmax(H, 32), pix, atol=1e-6, rtol=0)
        spread = inn.heatmap_spread(H, 32)  # a sampled Gaussian of std sigma * r = 2 pixels
        torch.testing.assert_close(spread, torch.full_like(spread, 2.0), atol=0.02, rtol=0)

    def test_pixel_centre_and_axis_convention(self):
        # keypoint at the centre of heatmap cell row 2, column 5 (cells of r = 2 image pixels):
        # u = (5 + 1/2) 2 = 11, v = (2 + 1/2) 2 = 5. The peak must be at [2, 5], not [5, 2].
        H = inn.keypoint_heatmaps(torch.tensor([[11.0, 5.0]]), 16, 32, sigma=0.5)
        i, j = divmod(int(H[0].argmax()), 16)
        assert (i, j) == (2, 5)
        assert H[0, 2, 4] == pytest.approx(float(H[0, 2, 6]), rel=1e-5)  # symmetric about the centre

    def test_soft_argmax_matches_loop(self, generator):
        H = torch.rand(2, 3, 4, 5, generator=generator, dtype=torch.float64)
        H = H / H.sum((-1, -2), keepdim=True)
        out = inn.soft_argmax(H, 20)  # cells of 4 x 4 pixels (w = 5 over 20 px)
        ref = torch.zeros(2, 3, 2, dtype=torch.float64)
        for b in range(2):
            for k in range(3):
                for i in range(4):
                    for j in range(5):
                        ref[b, k] += H[b, k, i, j] * torch.tensor([(j + 0.5) * 4, (i + 0.5) * 4], dtype=torch.float64)
        torch.testing.assert_close(out, ref)

    def test_gradcheck(self, generator):
        pix = (8 + 8 * torch.rand(1, 2, 2, generator=generator, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(lambda p: inn.keypoint_heatmaps(p, 6, 24, 1.0), (pix,))
        logits = torch.randn(1, 2, 4, 4, generator=generator, dtype=torch.float64, requires_grad=True)
        prob = lambda x: torch.softmax(x.flatten(-2), -1).view(x.shape)  # noqa: E731
        assert torch.autograd.gradcheck(lambda x: inn.soft_argmax(prob(x), 16), (logits,))
        assert torch.autograd.gradcheck(lambda x: inn.heatmap_spread(prob(x), 16), (logits,))

    def test_bad_input(self):
        with pytest.raises(ValueError, match="sigma"):
            inn.keypoint_heatmaps(torch.zeros(2, 2), 8, 16, sigma=0.0)
        with pytest.raises(ValueError, match=r"pixels: expected shape \(\*, J, 2\)"):
            inn.keypoint_heatmaps(torch.zeros(2, 3), 8, 16)
        with pytest.raises(ValueError, match=r"heatmaps: expected shape \(\*, J, h, w\)"):
            inn.soft_argmax(torch.zeros(4, 4), 16)


class TestAugment:
    def test_flip_permutation_chair(self):
        names = shapes.KEYPOINT_NAMES["chair"]
        perm = inn.flip_permutation(names)
        assert torch.equal(perm[perm], torch.arange(len(names)))  # an involution
        assert names[perm[names.index("seat_front_left")]] == "seat_front_right"
        assert names[perm[names.index("leg_back_right_bottom")]] == "leg_back_left_bottom"
        with pytest.raises(ValueError, match="mirror"):
            inn.flip_permutation(["a_left", "b"])

    def test_identity_without_randomness(self, generator):
        img = torch.rand(2, 3, 16, 16, generator=generator)
        pix = 16 * torch.rand(2, 4, 2, generator=generator)
        out, p = inn.augment(img, pix, generator, flip=None, shift=0.0, scale=0.0)
        torch.testing.assert_close(out, img)
        torch.testing.assert_close(p, pix)

    def test_keypoints_follow_the_image(self):
        # a bright pixel at each of two keypoints; after any mirror/shift/zoom the brightest
        # pixels sit at the moved keypoints (within a pixel), and the permutation follows.
        S, g = 32, torch.Generator().manual_seed(3)
        img = torch.zeros(6, 2, S, S)
        pix = torch.tensor([[12.5, 9.5], [20.5, 22.5]]).expand(6, 2, 2).clone()  # channel c marks keypoint c
        img[:, 0, 9, 12] = 1.0
        img[:, 1, 22, 20] = 1.0
        out, p = inn.augment(img, pix, g, flip=torch.tensor([1, 0]), shift=0.08, scale=0.1)
        swapped = 0
        for b in range(6):
            spots = []
            for c in range(2):
                i, j = divmod(int(out[b, c].argmax()), S)
                spots.append(torch.tensor([j + 0.5, i + 0.5]))
            same = all((spots[c] - p[b, c]).norm() < 1.5 for c in range(2))
            # mirrored: the spot of channel c (old keypoint c) is now labelled as its mirror 1 - c
            cross = all((spots[c] - p[b, 1 - c]).norm() < 1.5 for c in range(2))
            assert same or cross
            swapped += cross
        assert 0 < swapped < 6  # this seed mirrors some images and not others


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


class TestData:
    def test_random_structures(self, bases, generator):
        s = inn.random_structures(8, bases, 32, alpha_range=2.0, generator=generator)
        assert s["alpha"].shape == (8, 5) and s["pixels"].shape == (8, 10, 2) and s["points_cam"].shape == (8, 10, 3)
        assert torch.all(s["alpha"][:, 0] == 1) and s["alpha"][:, 1:].abs().max() <= 2.0
        pix, X = inn.project_structure(s["alpha"], bases, s["R"], s["T"], s["K"])
        torch.testing.assert_close(pix, s["pixels"])
        assert (X[..., 2] > 0).all()
        torch.testing.assert_close(torch.linalg.det(s["R"]), torch.ones(8))
        with pytest.raises(ValueError, match="n: expected a positive int"):
            inn.random_structures(0, bases, 32)

    def test_shifted_params_ranges(self, generator):
        for _ in range(5):
            p = inn.shifted_params("chair", generator)
            for name, (lo, hi) in inn.SHIFTED_RANGES["chair"].items():
                assert lo <= p[name] <= hi
            assert set(p) == {s.name for s in shapes.PARAM_SPECS["chair"]}

    def test_render_domain_labels_are_projections(self):
        d = inn.render_domain("chair", "shifted", "test", 2, 16, seed=1, prior=inn.viewpoint_prior(small_cfg()))
        assert d["image"].shape == (2, 3, 16, 16) and d["visible"].dtype == torch.bool
        pix, _ = geometry.project(d["keypoints_3d"], d["K"], d["R"], d["t"])
        torch.testing.assert_close(d["keypoints_2d"], pix)
        with pytest.raises(ValueError, match="domain"):
            inn.render_domain("chair", "target", "test", 2, 16)


# ----------------------------------------------------------------------------------------------
# networks, losses, metric
# ----------------------------------------------------------------------------------------------


class TestNetworks:
    @pytest.mark.parametrize("B", [1, 3])
    def test_shapes_and_outputs(self, B, bases):
        torch.manual_seed(0)
        net = inn.InterpreterNetwork(bases, 32, width=4, hidden=16).eval()
        K = geometry.intrinsics(48.0, 32, 32).expand(B, 3, 3)
        out = net(torch.rand(B, 3, 32, 32), K)
        assert out["logits"].shape == (B, 10, 16, 16) and out["heatmaps"].shape == (B, 10, 16, 16)
        torch.testing.assert_close(out["heatmaps"].sum((-1, -2)), torch.ones(B, 10))
        assert out["alpha"].shape == (B, 5) and torch.all(out["alpha"][:, 0] == 1)
        torch.testing.assert_close(out["R"] @ out["R"].transpose(-1, -2), torch.eye(3).expand(B, 3, 3), atol=1e-5, rtol=0)
        assert (out["T"][:, 2] > 0).all() and out["projected"].shape == (B, 10, 2)

    def test_gradient_reaches_the_estimator_through_the_projection_layer(self, bases):
        torch.manual_seed(0)
        net = inn.InterpreterNetwork(bases, 32, width=4, hidden=16)
        out = net(torch.rand(2, 3, 32, 32), geometry.intrinsics(48.0, 32, 32).expand(2, 3, 3))
        out["projected"].sum().backward()
        g = net.estimator.head.weight.grad
        assert g is not None and g.abs().sum() > 0 and torch.isfinite(g).all()

    def test_bad_input(self, bases):
        net = inn.InterpreterNetwork(bases, 32, width=4, hidden=16)
        with pytest.raises(ValueError, match="divisible by 16"):
            net.estimator(torch.zeros(1, 3, 24, 24))
        with pytest.raises(ValueError, match=r"K: expected shape \(B, 3, 3\) with \{'B': 2\}"):
            net(torch.zeros(2, 3, 32, 32), torch.zeros(3, 3, 3))


class TestLosses:
    def test_heatmap_loss_is_smallest_at_the_target(self):
        pix = torch.tensor([[[10.0, 7.0], [20.0, 25.0]]])
        target = inn.keypoint_heatmaps(pix, 16, 32, 1.0)
        at_target = inn.heatmap_loss((target + 1e-12).log(), pix, 32, 1.0)
        shifted = inn.heatmap_loss((target.roll(2, -1) + 1e-12).log(), pix, 32, 1.0)
        assert at_target["heatmap"] < shifted["heatmap"]
        assert at_target["pixel_error"] < 1e-2 and shifted["pixel_error"] > 3.5
        masked = inn.heatmap_loss((target.roll(2, -1) + 1e-12).log(), pix, 32, 1.0, mask=torch.tensor([[False, False]]))
        assert masked["heatmap"] == 0

    def test_interpreter_loss_zero_at_truth(self, bases, generator):
        s = inn.random_structures(4, bases, 32, generator=generator)
        terms = inn.interpreter_loss(s["alpha"], s["R"], s["T"], s, bases, small_cfg())
        assert set(terms) == {"rotation", "translation", "alpha", "keypoints_3d", "total"}
        assert float(terms["total"]) < 1e-10
        worse = inn.interpreter_loss(s["alpha"], s["R"].flip(0), s["T"], s, bases, small_cfg())
        assert worse["rotation"] > 0.1 and worse["keypoints_3d"] > 0

    def test_projection_loss(self):
        cfg = small_cfg()
        pix = torch.tensor([[[10.0, 7.0], [20.0, 25.0]]])
        out = {"projected": pix + torch.tensor([3.0, 4.0]), "logits": (inn.keypoint_heatmaps(pix, 16, 32, cfg.sigma) + 1e-12).log(),
               "alpha": torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])}
        terms = inn.projection_loss(out, pix, torch.ones(1, 2, dtype=torch.bool), 32, cfg)
        assert float(terms["projection"]) == pytest.approx(25 / 32**2)  # |(3, 4)|^2 / S^2
        assert float(terms["prior"]) == 0.0
        with pytest.raises(ValueError, match=r"mask: expected shape \(B, J\)"):
            inn.projection_loss(out, pix, torch.ones(2, dtype=torch.bool), 32, cfg)


class TestStructureError:
    def test_hand_value_and_invariances(self, generator):
        target = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 0.5]]])  # longest box side 2
        assert float(inn.structure_error(target + torch.tensor([0.3, -2, 5.0]), target)) == pytest.approx(0.0, abs=1e-6)
        moved = target.clone()
        moved[0, 1, 0] += 0.4  # one of 4 points moves by 0.4; the centroid by 0.1 (x)
        # centred errors: point 1 moves 0.3, the other three 0.1 -> mean 0.15, / size 2 = 0.075
        assert float(inn.structure_error(moved, target)) == pytest.approx(0.075, rel=1e-5)
        R = geometry.random_rotation((1,), generator)
        rotated = target @ R.transpose(-1, -2) * 1.5
        assert float(inn.structure_error(rotated, target)) > 0.1
        assert float(inn.structure_error(rotated, target, procrustes=True)) < 1e-5

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"target: expected shape \(B, J, 3\) with \{'B': 1, 'J': 4\}"):
            inn.structure_error(torch.zeros(1, 4, 3), torch.zeros(1, 5, 3))


# ----------------------------------------------------------------------------------------------
# training: overfit one batch; the interpreter beats the mean structure
# ----------------------------------------------------------------------------------------------


def test_estimator_overfits_one_batch():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(4, 3, 32, 32, generator=g)
    pix = 6 + 20 * torch.rand(4, 3, 2, generator=g)
    net = inn.KeypointEstimator(3, width=8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        terms = inn.heatmap_loss(net(img), pix, 32, 1.0)
        first = float(terms["pixel_error"]) if first is None else first
        opt.zero_grad()
        terms["heatmap"].backward()
        opt.step()
    assert float(terms["pixel_error"]) < 0.3 * first and float(terms["pixel_error"]) < 2.0


def test_interpreter_beats_the_mean_structure_on_synthetic_heatmaps(bases):
    cfg = small_cfg(steps_interpreter=250, batch_size=32, hidden=64)
    torch.manual_seed(0)
    model = inn.InterpreterNetwork(bases, cfg.image_size, width=4, hidden=cfg.hidden, depth=sum(cfg.distance_range) / 2)
    inn.train_interpreter(model, cfg, progress=False)
    test = inn.random_structures(256, bases, cfg.image_size, cfg.alpha_range, torch.Generator().manual_seed(9), inn.viewpoint_prior(cfg))
    maps = inn.keypoint_heatmaps(test["pixels"], cfg.heatmap_size, cfg.image_size, cfg.sigma)
    with torch.no_grad():
        alpha, R, T = model.interpreter(maps)
    X = geometry.transform_points(inn.compose_structure(alpha, bases), R, T)
    err = inn.structure_error(X, test["points_cam"]).mean()
    mean = test["points_cam"].mean(0, keepdim=True).expand_as(test["points_cam"]).contiguous()
    baseline = inn.structure_error(mean, test["points_cam"]).mean()
    assert err < 0.6 * baseline
    rot = torch.rad2deg(geometry.geodesic_distance(R, test["R"])).median()
    assert rot < 25.0


def test_baselines_and_evaluation(bases):
    d = {"keypoints_2d": torch.tensor([[[1.0, 1.0], [5.0, 5.0]]]).expand(3, 2, 2).clone(),
         "visible": torch.ones(3, 2, dtype=torch.bool)}
    assert inn.mean_layout_baseline(d, d) == 1.0  # every image shows the mean layout


def test_train_and_evaluate_smoke():
    # every step of the pipeline runs end to end on a tiny set and returns what it promises
    cfg = small_cfg(n_train=8, n_shift=8, n_pca_shapes=20, image_size=16, width=4, hidden=16, batch_size=4,
                    steps_heatmap=2, steps_interpreter=2, steps_end_to_end=2)
    prior = inn.viewpoint_prior(cfg)
    src = inn.render_domain("chair", "source", "train", 8, 16, 0, prior)
    shf = inn.render_domain("chair", "shifted", "train", 8, 16, 0, prior)
    model, hist = inn.train(cfg, src, shf, progress=False, device="cpu")
    assert {"heatmap", "interpreter", "end_to_end", "projection"} <= set(hist.keys())
    r2, r3 = inn.evaluate_2d(model, shf), inn.evaluate_3d(model, shf)
    assert 0.0 <= r2["pck_heatmap"] <= 1.0 and 0.0 <= r2["pck_projected"] <= 1.0
    assert r3["error_3d"] > 0 and 0.0 <= r3["rotation_deg"] <= 180.0
    assert 0.0 <= inn.mean_structure_baseline(src, shf)
