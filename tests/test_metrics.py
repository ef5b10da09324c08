"""Tests for lessons.metrics: every metric against a value worked out by hand in a comment."""

import math

import numpy as np
import pytest
import torch

from lessons import metrics


def rodrigues(axis, angle, dtype=torch.float64):
    """R = I + sin(a) [k]x + (1 - cos(a)) [k]x^2 for a unit axis k (a test-side reference)."""
    k = torch.as_tensor(axis, dtype=dtype)
    k = k / k.norm()
    Kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=dtype)
    return torch.eye(3, dtype=dtype) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx


def random_rotations(n, generator, dtype=torch.float64):
    q = torch.randn(n, 4, generator=generator, dtype=dtype)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(n, 3, 3)


# --------------------------------------------------------------------------------------------
# voxel_iou
# --------------------------------------------------------------------------------------------


class TestVoxelIoU:
    def test_hand_value(self, device, dtype):
        # 2x2x2 grid. pred >= 0.5 at voxels {0, 1, 2} (0.5 itself counts), target at {1, 2, 3, 4}.
        # intersection {1, 2} = 2, union {0, 1, 2, 3, 4} = 5, IoU = 2/5 = 0.4.
        pred = torch.tensor([0.9, 0.5, 0.7, 0.49, 0.1, 0.0, 0.2, 0.3], dtype=dtype, device=device).view(1, 2, 2, 2)
        target = torch.tensor([0, 1, 1, 1, 1, 0, 0, 0], dtype=torch.bool, device=device).view(1, 2, 2, 2)
        iou = metrics.voxel_iou(pred, target)
        assert iou.shape == (1,) and iou.dtype == dtype and iou.device == pred.device
        torch.testing.assert_close(iou, torch.tensor([0.4], dtype=dtype, device=device))
        # threshold 0.3: pred occupied at {0, 1, 2, 3, 7}; inter {1, 2, 3} = 3; union {0..4, 7} = 6 -> 0.5
        torch.testing.assert_close(metrics.voxel_iou(pred, target, threshold=0.3), torch.tensor([0.5], dtype=dtype, device=device))

    def test_empty_vs_empty_is_one_and_disjoint_is_zero(self):
        empty = torch.zeros(2, 4, 4, 4)
        full = torch.ones(2, 4, 4, 4)
        assert metrics.voxel_iou(empty, empty.bool()).tolist() == [1.0, 1.0]
        assert metrics.voxel_iou(empty, full).tolist() == [0.0, 0.0]
        assert metrics.voxel_iou(full, empty).tolist() == [0.0, 0.0]
        assert metrics.voxel_iou(full, full).tolist() == [1.0, 1.0]

    @pytest.mark.parametrize("shape", [(3, 5), (3, 4, 4, 4), (3, 1, 4, 5, 6)])
    def test_batch_shapes_match_loop_symmetric_bounded(self, shape, generator):
        a = torch.rand(shape, generator=generator) > 0.5
        b = torch.rand(shape, generator=generator) > 0.5
        iou = metrics.voxel_iou(a, b)
        assert iou.shape == (shape[0],)
        for i in range(shape[0]):  # naive reference
            inter = sum(bool(x) and bool(y) for x, y in zip(a[i].flatten(), b[i].flatten()))
            union = sum(bool(x) or bool(y) for x, y in zip(a[i].flatten(), b[i].flatten()))
            assert iou[i].item() == pytest.approx(inter / union)
        torch.testing.assert_close(iou, metrics.voxel_iou(b, a))
        assert ((iou >= 0) & (iou <= 1)).all()
        # float target in {0, 1} means the same as bool
        torch.testing.assert_close(iou, metrics.voxel_iou(a, b.float()))

    def test_errors(self):
        with pytest.raises(ValueError, match=r"target: expected shape \(2, 4, 4, 4\).*received \(2, 4, 4\)"):
            metrics.voxel_iou(torch.rand(2, 4, 4, 4), torch.rand(2, 4, 4))
        with pytest.raises(ValueError, match="pred: expected a torch.Tensor"):
            metrics.voxel_iou(np.zeros((2, 3)), torch.zeros(2, 3))


# --------------------------------------------------------------------------------------------
# average precision
# --------------------------------------------------------------------------------------------


def ap_reference(scores, labels):
    """All-points interpolated AP by its definition: one operating point per distinct score."""
    s, y = list(map(float, scores)), list(map(bool, labels))
    P = sum(y)
    points = []
    for th in sorted(set(s), reverse=True):
        kept = [yy for ss, yy in zip(s, y) if ss >= th]
        points.append((sum(kept) / P, sum(kept) / len(kept)))  # (recall, precision)
    ap, prev_r = 0.0, 0.0
    for k, (r, _) in enumerate(points):
        ap += (r - prev_r) * max(p for _, p in points[k:])
        prev_r = r
    return ap


class TestAveragePrecision:
    def test_hand_value_brief_example(self, device, dtype):
        # scores 0.9 0.8 0.7 0.6, labels 1 0 1 0, P = 2.
        # rank 1: TP=1 precision 1/1, recall 1/2;  rank 2: precision 1/2, recall 1/2
        # rank 3: TP=2 precision 2/3, recall 1;    rank 4: precision 2/4, recall 1
        # AP = (1/2 - 0) * max(1, 1/2, 2/3, 1/2) + (1 - 1/2) * max(2/3, 1/2) = 1/2 + 1/3 = 5/6
        s = torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=dtype, device=device)
        y = torch.tensor([1, 0, 1, 0], dtype=torch.bool, device=device)
        ap = metrics.average_precision(s, y)
        assert ap.shape == () and ap.dtype == dtype
        assert ap.item() == pytest.approx(5 / 6)

    def test_interpolated_not_raw_precision(self):
        # labels 1 0 1 1 in rank order, P = 3: precisions 1, 1/2, 2/3, 3/4 at recalls 1/3, 1/3, 2/3, 1.
        # interpolated (this module): 1/3 * 1 + 1/3 * max(2/3, 3/4) + 1/3 * 3/4 = 1/3 * (1 + 3/4 + 3/4) = 5/6
        # scikit-learn's raw sum would be 1/3 * (1 + 2/3 + 3/4) = 29/36 = 0.8056: not what we compute.
        ap = metrics.average_precision(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([True, False, True, True]))
        assert ap.item() == pytest.approx(5 / 6)
        assert ap.item() != pytest.approx(29 / 36, abs=1e-3)

    def test_tied_scores_are_one_operating_point(self):
        # scores 0.9, 0.5, 0.5, 0.1 with labels 1, 1, 0, 0 (P = 2): thresholds 0.9 -> (R 1/2, P 1);
        # 0.5 -> 2 of 3 kept are positive (R 1, P 2/3); 0.1 -> (R 1, P 1/2).
        # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6 whichever order the tied pair is listed in (not 1.0).
        for order in ([0, 1, 2, 3], [0, 2, 1, 3], [3, 2, 1, 0]):
            s = torch.tensor([0.9, 0.5, 0.5, 0.1])[order]
            y = torch.tensor([True, True, False, False])[order]
            assert metrics.average_precision(s, y).item() == pytest.approx(5 / 6)

    def test_extremes(self):
        y = torch.tensor([True, True, False, False, False])
        assert metrics.average_precision(torch.tensor([5.0, 4, 3, 2, 1]), y).item() == 1.0
        # worst ranking: positives last. precisions 1/4, 2/5 at recalls 1/2, 1: AP = 1/2*2/5 + 1/2*2/5 = 0.4
        assert metrics.average_precision(torch.tensor([1.0, 2, 3, 4, 5]), y).item() == pytest.approx(0.4)
        assert metrics.average_precision(torch.rand(5), torch.ones(5, dtype=torch.bool)).item() == 1.0
        assert torch.isnan(metrics.average_precision(torch.rand(5), torch.zeros(5, dtype=torch.bool)))

    @pytest.mark.parametrize("n", [1, 7, 50])
    def test_matches_reference_with_ties_and_monotone_invariance(self, n, generator):
        for _ in range(3):
            s = (torch.rand(n, generator=generator) * 5).round() / 5  # many ties
            y = torch.rand(n, generator=generator) > 0.6
            y[0] = True
            ap = metrics.average_precision(s, y)
            assert ap.item() == pytest.approx(ap_reference(s, y))
            # only the order of the scores matters (probabilities or logits)
            torch.testing.assert_close(metrics.average_precision(torch.logit(s.clamp(0.01, 0.99)), y), ap)

    def test_voxel_ap_per_shape(self, device):
        # shape 0 is the brief example (AP 5/6); shape 1 is perfectly ranked (AP 1).
        pred = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]], device=device).view(2, 1, 2, 2)
        target = torch.tensor([[1, 0, 1, 0], [0, 0, 1, 1]], device=device).float().view(2, 1, 2, 2)
        ap = metrics.voxel_average_precision(pred, target)
        assert ap.shape == (2,)
        torch.testing.assert_close(ap, torch.tensor([5 / 6, 1.0], device=device))

    def test_voxel_ap_matches_loop(self, generator):
        pred = torch.rand(3, 4, 4, 4, generator=generator)
        target = (pred + 0.5 * torch.rand(3, 4, 4, 4, generator=generator)) > 0.8
        ap = metrics.voxel_average_precision(pred, target)
        for b in range(3):
            assert ap[b].item() == pytest.approx(metrics.average_precision(pred[b].flatten(), target[b].flatten()).item())
        assert ((ap > 0) & (ap <= 1)).all()

    def test_errors(self):
        with pytest.raises(ValueError, match=r"scores: expected shape \(N\), received \(2, 3\)"):
            metrics.average_precision(torch.rand(2, 3), torch.ones(2, 3, dtype=torch.bool))
        with pytest.raises(ValueError, match=r"labels: expected shape \(N\).*received \(4,\)"):
            metrics.average_precision(torch.rand(3), torch.ones(4, dtype=torch.bool))
        with pytest.raises(ValueError, match="target: expected shape"):
            metrics.voxel_average_precision(torch.rand(2, 4, 4, 4), torch.rand(2, 4, 4, 5))


# --------------------------------------------------------------------------------------------
# viewpoint
# --------------------------------------------------------------------------------------------


class TestViewpoint:
    def test_acc_and_median_hand_values(self, dtype):
        # pi/6 = 0.5236: 0.1 and 0.5 are within, 0.6 and 1.0 are not -> 2/4
        e = torch.tensor([0.1, 0.5, 0.6, 1.0], dtype=dtype)
        assert metrics.acc_at_threshold(e).item() == pytest.approx(0.5)
        assert metrics.acc_at_threshold(e, threshold=0.6).item() == pytest.approx(0.75)  # 0.6 <= 0.6 counts
        # median of an even count averages the two middle values: (0.5 + 0.6) / 2 = 0.55
        # (torch.median would give the lower one, 0.5)
        assert metrics.median_error(e).item() == pytest.approx(0.55)
        assert metrics.median_error(torch.tensor([3.0, 1.0, 2.0])).item() == 2.0

    def test_viewpoint_metrics_hand_value(self, generator):
        # errors 10, 20, 40, 90 degrees about assorted axes, applied to random true rotations:
        # d(R_true, R_true @ R_delta) = angle(R_delta). Acc_pi/6 = 2/4; MedErr = (20 + 40) / 2 = 30 deg.
        R_true = random_rotations(4, generator)
        angles = [10, 20, 40, 90]
        axes = [(0, 1, 0), (1, 0, 0), (1, 2, 3), (0, 0, 1)]
        deltas = torch.stack([rodrigues(a, math.radians(d)) for a, d in zip(axes, angles)])
        out = metrics.viewpoint_metrics(R_true @ deltas, R_true)
        assert set(out) == {"acc_pi6", "med_err_deg"}
        assert isinstance(out["acc_pi6"], float) and isinstance(out["med_err_deg"], float)
        assert out["acc_pi6"] == pytest.approx(0.5)
        assert out["med_err_deg"] == pytest.approx(30.0, abs=1e-6)

    def test_geodesic_errors_properties(self, generator):
        R = random_rotations(6, generator)
        e = metrics.geodesic_errors(R, R)
        assert e.shape == (6,) and e.abs().max() < 1e-6
        # a half turn is the largest error, pi
        Rpi = R @ rodrigues((1, 1, 0), math.pi)
        torch.testing.assert_close(metrics.geodesic_errors(Rpi, R), torch.full((6,), math.pi, dtype=torch.float64))
        # batch shapes: (2, 3, 3, 3) of errors equals the flat computation
        R2 = random_rotations(6, generator)
        torch.testing.assert_close(metrics.geodesic_errors(R.view(2, 3, 3, 3), R2.view(2, 3, 3, 3)).flatten(), metrics.geodesic_errors(R, R2))
        # convention pin: the error is the angle of R1^T R2, matching scipy's rotation magnitude
        from scipy.spatial.transform import Rotation

        ref = Rotation.from_matrix((R.transpose(-1, -2) @ R2).numpy()).magnitude()
        np.testing.assert_allclose(metrics.geodesic_errors(R, R2).numpy(), ref, atol=1e-6)
        # and the private fallback agrees with whatever geometry provides
        np.testing.assert_allclose(metrics._geodesic_fallback(R, R2).numpy(), ref, atol=1e-10)

    def test_uses_geometry_geodesic_distance(self, generator):
        geometry = pytest.importorskip("lessons.geometry")
        R1, R2 = random_rotations(5, generator), random_rotations(5, generator)
        torch.testing.assert_close(metrics.geodesic_errors(R1, R2), geometry.geodesic_distance(R1, R2), rtol=0, atol=0)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"R_true: expected shape \(\*batch, 3, 3\).*received \(5, 3, 3\)"):
            metrics.viewpoint_metrics(torch.eye(3).expand(4, 3, 3), torch.eye(3).expand(5, 3, 3))
        with pytest.raises(ValueError, match=r"R_pred: expected shape \(\*batch, 3, 3\), received \(4, 3\)"):
            metrics.geodesic_errors(torch.zeros(4, 3), torch.zeros(4, 3))
        with pytest.raises(ValueError, match="errors: expected a floating-point dtype"):
            metrics.acc_at_threshold(torch.tensor([1, 2]))
        with pytest.raises(ValueError, match="errors: expected at least one"):
            metrics.median_error(torch.zeros(0))


# --------------------------------------------------------------------------------------------
# PCK
# --------------------------------------------------------------------------------------------


class TestPCK:
    def setup_method(self):
        # Target keypoints: the corners of a 40 x 100 box (so max(h, w) = 100).
        self.target = torch.tensor([[[0.0, 0.0], [40.0, 0.0], [0.0, 100.0], [40.0, 100.0], [20.0, 50.0]]])
        # offsets of length 0, 3, 5 (3-4-5), 12, 10 (6-8-10)
        off = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [3.0, 4.0], [0.0, -12.0], [6.0, 8.0]]])
        self.pred = self.target + off

    def test_hand_value(self, device, dtype):
        pred, target = self.pred.to(device, dtype), self.target.to(device, dtype)
        # alpha 0.1, size 100 -> threshold 10: distances 0, 3, 5, 10 pass (10 <= 10), 12 fails -> 4/5
        p = metrics.pck(pred, target, alpha=0.1, size=100.0)
        assert p.shape == () and p.dtype == dtype
        assert p.item() == pytest.approx(0.8)
        # alpha 0.04 -> threshold 4: 0 and 3 pass -> 2/5
        assert metrics.pck(pred, target, alpha=0.04, size=torch.tensor([100.0], device=device, dtype=dtype)).item() == pytest.approx(0.4)
        # size None: the box of the target keypoints is 40 x 100 -> the same as size 100
        assert metrics.pck(pred, target, alpha=0.1).item() == pytest.approx(0.8)

    def test_visible_and_per_keypoint(self):
        pred = torch.cat([self.pred, self.target])  # image 1 is perfect
        target = torch.cat([self.target, self.target])
        visible = torch.tensor([[1, 1, 1, 0, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
        # image 0 without keypoint 3 (the 12-pixel miss): 4 of 4; image 1: 4 of 4 -> 8/8
        assert metrics.pck(pred, target, 0.1, 100.0, visible).item() == 1.0
        # per keypoint over both images, all visible: k3 is right in 1 of 2 -> [1, 1, 1, 0.5, 1]
        per = metrics.pck(pred, target, 0.1, 100.0, per_keypoint=True)
        torch.testing.assert_close(per, torch.tensor([1.0, 1.0, 1.0, 0.5, 1.0]))
        # a keypoint never visible has no PCK
        vis = torch.ones(2, 5, dtype=torch.bool)
        vis[:, 0] = False
        assert torch.isnan(metrics.pck(pred, target, 0.1, 100.0, vis, per_keypoint=True)[0])

    def test_per_image_size(self):
        # the same 12-pixel miss is right for a 200-pixel object (threshold 20), wrong for 100
        pred = self.pred.expand(2, 5, 2)
        target = self.target.expand(2, 5, 2)
        per = metrics.pck(pred, target, 0.1, torch.tensor([100.0, 200.0]), per_keypoint=True)
        torch.testing.assert_close(per, torch.tensor([1.0, 1.0, 1.0, 0.5, 1.0]))

    def test_monotone_in_alpha(self, generator):
        target = torch.rand(4, 8, 2, generator=generator) * 64
        pred = target + torch.randn(4, 8, 2, generator=generator) * 4
        values = [metrics.pck(pred, target, a, 64.0).item() for a in (0.0, 0.02, 0.05, 0.1, 0.2, 1.0)]
        assert values == sorted(values)
        assert values[-1] == 1.0 and values[0] == 0.0

    def test_errors(self):
        with pytest.raises(ValueError, match=r"pred: expected shape \(B, K, 2\), received \(1, 5, 3\)"):
            metrics.pck(torch.zeros(1, 5, 3), torch.zeros(1, 5, 3), 0.1, 10.0)
        with pytest.raises(ValueError, match=r"visible: expected shape \(B, K\).*received \(1, 4\)"):
            metrics.pck(self.pred, self.target, 0.1, 10.0, torch.ones(1, 4, dtype=torch.bool))
        with pytest.raises(ValueError, match=r"size: expected shape \(B\).*received \(2,\)"):
            metrics.pck(self.pred, self.target, 0.1, torch.ones(2))
        with pytest.raises(ValueError, match="alpha"):
            metrics.pck(self.pred, self.target, -0.1, 10.0)


# --------------------------------------------------------------------------------------------
# MPJPE, Procrustes, P-MPJPE
# --------------------------------------------------------------------------------------------


class TestMPJPE:
    def test_hand_value(self, device, dtype):
        target = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 2.0, 0.0]]], device=device, dtype=dtype)
        # offsets (3, 4, 0) -> 5, (0, 0, 0) -> 0, (1, 2, 2) -> 3; mean (5 + 0 + 3) / 3 = 8/3
        off = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 2.0]]], device=device, dtype=dtype)
        e = metrics.mpjpe(target + off, target)
        assert e.shape == (1,) and e.dtype == dtype
        assert e.item() == pytest.approx(8 / 3)

    @pytest.mark.parametrize("lead", [(2,), (2, 3), ()])
    def test_batch_shapes(self, lead, generator):
        a = torch.randn(*lead, 5, 3, generator=generator)
        b = torch.randn(*lead, 5, 3, generator=generator)
        e = metrics.mpjpe(a, b)
        assert e.shape == lead
        torch.testing.assert_close(e, (a - b).norm(dim=-1).mean(-1))

    def test_gradcheck_and_finite_at_zero(self, generator):
        a = torch.randn(2, 4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
        b = torch.randn(2, 4, 3, generator=generator, dtype=torch.float64)
        assert torch.autograd.gradcheck(metrics.mpjpe, (a, b))
        x = b.clone().requires_grad_(True)  # pred == target: the norm's kink
        metrics.mpjpe(x, b).sum().backward()
        assert torch.isfinite(x.grad).all()

    def test_errors(self):
        with pytest.raises(ValueError, match=r"target: expected shape \(\*batch, J, 3\).*received \(2, 4, 3\)"):
            metrics.mpjpe(torch.zeros(2, 5, 3), torch.zeros(2, 4, 3))
        with pytest.raises(ValueError, match=r"pred: expected shape \(\*batch, J, 3\), received \(2, 5, 2\)"):
            metrics.p_mpjpe(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2))


class TestProcrustes:
    def test_similar_copy_aligns_exactly(self, device, generator):
        # target = s R pred + t with s = 2.5, R = 70 degrees about (1, 2, 3), t = (1, -2, 0.5):
        # the alignment recovers (s, R, t) and the error after alignment is 0.
        pred = torch.randn(1, 6, 3, generator=generator, dtype=torch.float64)
        R = rodrigues((1, 2, 3), math.radians(70))
        t = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        target = 2.5 * pred @ R.T + t
        pred, target = pred.to(device), target.to(device)
        aligned, (s_hat, R_hat, t_hat) = metrics.procrustes_align(pred, target, return_transform=True)
        torch.testing.assert_close(aligned, target)
        torch.testing.assert_close(s_hat, torch.tensor([2.5], dtype=torch.float64, device=device))
        torch.testing.assert_close(R_hat[0], R.to(device))  # not R^T: pins the row-vector convention
        torch.testing.assert_close(t_hat[0], t.to(device))
        assert metrics.p_mpjpe(pred, target).item() < 1e-10
        assert metrics.mpjpe(pred, target).item() > 1.0

    def test_reflection_is_not_used(self, generator):
        # a mirrored skeleton (x -> -x) cannot be aligned by a rotation: error stays > 0, det R = +1,
        # while scipy's orthogonal Procrustes (which allows reflections) would reach 0.
        from scipy.linalg import orthogonal_procrustes

        pred = torch.randn(1, 8, 3, generator=generator, dtype=torch.float64)
        pred = pred - pred.mean(1, keepdim=True)
        mirror = pred * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
        Q, _ = orthogonal_procrustes(pred[0].numpy(), mirror[0].numpy())
        assert np.linalg.det(Q) == pytest.approx(-1.0)
        assert np.abs(pred[0].numpy() @ Q - mirror[0].numpy()).max() < 1e-10
        _, (_, R, _) = metrics.procrustes_align(pred, mirror, return_transform=True)
        assert torch.linalg.det(R).item() == pytest.approx(1.0)
        assert metrics.p_mpjpe(pred, mirror).item() > 0.05

    def test_matches_scipy_procrustes(self, generator):
        # scipy.spatial.procrustes standardises both sets (centre, unit Frobenius norm) and fits a
        # scaled orthogonal map of the second onto the first: that is our alignment, expressed in
        # the target's standardised frame. Noise keeps a rotation (not a reflection) the optimum.
        from scipy.spatial import procrustes

        target = torch.randn(10, 3, generator=generator, dtype=torch.float64)
        pred = 0.7 * target @ rodrigues((0, 1, 1), 1.0).T + 0.05 * torch.randn(10, 3, generator=generator, dtype=torch.float64) + 3.0
        std_target, std_pred, disparity = procrustes(target.numpy(), pred.numpy())
        aligned = metrics.procrustes_align(pred[None], target[None])[0]
        centred = target - target.mean(0)
        ours = (aligned - target.mean(0)) / centred.norm()
        np.testing.assert_allclose(ours.numpy(), std_pred, atol=1e-10)
        np.testing.assert_allclose(((ours - centred / centred.norm()) ** 2).sum().item(), disparity, atol=1e-12)

    @pytest.mark.parametrize("lead", [(3,), (2, 2)])
    def test_batch_rotation_property_and_bound(self, lead, generator):
        pred = torch.randn(*lead, 7, 3, generator=generator, dtype=torch.float64)
        target = torch.randn(*lead, 7, 3, generator=generator, dtype=torch.float64)
        aligned, (s, R, t) = metrics.procrustes_align(pred, target, return_transform=True)
        assert aligned.shape == pred.shape and s.shape == lead and R.shape == (*lead, 3, 3) and t.shape == (*lead, 3)
        torch.testing.assert_close(torch.linalg.det(R), torch.ones(lead, dtype=torch.float64))
        torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(*lead, 3, 3))
        assert (s > 0).all()
        # each batch element aligned alone gives the same result
        flat_p, flat_t = pred.reshape(-1, 7, 3), target.reshape(-1, 7, 3)
        for i in range(flat_p.shape[0]):
            torch.testing.assert_close(aligned.reshape(-1, 7, 3)[i], metrics.procrustes_align(flat_p[i : i + 1], flat_t[i : i + 1])[0])
        assert (metrics.p_mpjpe(pred, target) <= metrics.mpjpe(pred, target) + 1e-12).all()
        # the squared error is minimal: a slightly perturbed transform does worse
        worse = 1.01 * s[..., None, None] * pred @ (R @ rodrigues((1, 0, 0), 0.01)).transpose(-1, -2) + t[..., None, :]
        assert (((worse - target) ** 2).sum((-1, -2)) > ((aligned - target) ** 2).sum((-1, -2))).all()

    def test_gradcheck(self, generator):
        pred = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
        target = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64)
        assert torch.autograd.gradcheck(metrics.p_mpjpe, (pred, target))


# --------------------------------------------------------------------------------------------
# PSNR and SSIM
# --------------------------------------------------------------------------------------------


class TestPSNR:
    def test_hand_value(self, device, dtype):
        # image 0: error 0.1 everywhere -> MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
        # image 1: error 0.5 everywhere -> MSE 0.25 -> 10 log10(1 / 0.25) = 6.0206 dB
        target = torch.zeros(2, 3, 4, 5, device=device, dtype=dtype)
        pred = torch.stack([torch.full((3, 4, 5), 0.1), torch.full((3, 4, 5), 0.5)]).to(device, dtype)
        p = metrics.psnr(pred, target)
        assert p.shape == (2,) and p.dtype == dtype
        torch.testing.assert_close(p, torch.tensor([20.0, 10 * math.log10(4)], device=device, dtype=dtype))
        # max_val 2: 10 log10(4 / 0.01) = 26.0206
        assert metrics.psnr(pred, target, max_val=2.0)[0].item() == pytest.approx(10 * math.log10(400), rel=1e-5)

    def test_identical_is_100_db_with_finite_gradient(self):
        x = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
        p = metrics.psnr(x, x.detach())
        assert p.tolist() == pytest.approx([100.0, 100.0])
        # the cap is relative to the data range: images in [0, 255] are capped at 100 dB too
        assert metrics.psnr(255 * x.detach(), 255 * x.detach(), max_val=255.0).tolist() == pytest.approx([100.0, 100.0])
        p.sum().backward()
        assert torch.isfinite(x.grad).all()

    def test_matches_kornia_per_image(self, generator):
        import kornia

        pred = torch.rand(3, 3, 8, 8, generator=generator, dtype=torch.float64)
        target = torch.rand(3, 3, 8, 8, generator=generator, dtype=torch.float64)
        ref = torch.stack([kornia.metrics.psnr(pred[i], target[i], 1.0) for i in range(3)])
        torch.testing.assert_close(metrics.psnr(pred, target), ref)

    def test_gradcheck(self, generator):
        a = torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64, requires_grad=True)
        b = torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64)
        assert torch.autograd.gradcheck(metrics.psnr, (a, b))

    def test_errors(self):
        with pytest.raises(ValueError, match=r"pred: expected shape \(B, C, H, W\), received \(3, 8, 8\)"):
            metrics.psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 8))
        with pytest.raises(ValueError, match=r"target: expected shape \(B, C, H, W\).*received \(1, 3, 8, 7\)"):
            metrics.psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 7))
        with pytest.raises(ValueError, match="pred: expected a floating-point dtype"):
            metrics.psnr(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), torch.zeros(1, 1, 2, 2))
        with pytest.raises(ValueError, match="max_val"):
            metrics.psnr(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2), max_val=0)


class TestSSIM:
    @pytest.mark.parametrize("padding", ["valid", "reflect"])
    def test_identical_is_exactly_one(self, padding, device, dtype, generator):
        x = torch.rand(2, 3, 16, 16, generator=generator).to(device, dtype)
        s = metrics.ssim(x, x, padding=padding)
        assert s.shape == (2,) and s.dtype == dtype
        if device.type == "cpu":
            assert torch.equal(s, torch.ones(2, device=device, dtype=dtype))
        else:  # filtered in float64 on CUDA; identical channels should still give exactly 1
            torch.testing.assert_close(s, torch.ones(2, device=device, dtype=dtype), rtol=0, atol=1e-12)

    def test_constant_images_hand_value(self):
        # x = 0.2 and y = 0.4 everywhere: all local variances and the covariance are 0, so
        # SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * (0 + C2) / (0 + C2), C1 = 1e-4:
        # (0.16 + 0.0001) / (0.04 + 0.16 + 0.0001) = 0.1601 / 0.2001 = 0.800099950...
        x = torch.full((1, 1, 12, 12), 0.2, dtype=torch.float64)
        y = torch.full((1, 1, 12, 12), 0.4, dtype=torch.float64)
        assert metrics.ssim(x, y).item() == pytest.approx(0.1601 / 0.2001, abs=1e-9)
        # max_val 2 -> C1 = (0.02)^2 = 4e-4: (0.16 + 0.0004) / (0.2 + 0.0004) = 0.1604 / 0.2004
        assert metrics.ssim(x, y, max_val=2.0).item() == pytest.approx(0.1604 / 0.2004, abs=1e-9)

    @pytest.mark.parametrize("window", [11, 7])
    def test_matches_kornia(self, window, generator):
        import kornia

        x = torch.rand(2, 3, 20, 24, generator=generator, dtype=torch.float64)
        y = (x + 0.2 * torch.randn(2, 3, 20, 24, generator=generator, dtype=torch.float64)).clamp(0, 1)
        # kornia returns the map; eps=0.0 leaves the formula unchanged; its 'same' pads with 'reflect'
        ref_valid = kornia.metrics.ssim(x, y, window, 1.0, eps=0.0, padding="valid").mean((1, 2, 3))
        ref_same = kornia.metrics.ssim(x, y, window, 1.0, eps=0.0, padding="same").mean((1, 2, 3))
        torch.testing.assert_close(metrics.ssim(x, y, window=window), ref_valid)
        torch.testing.assert_close(metrics.ssim(x, y, window=window, padding="reflect"), ref_same)
        assert not torch.allclose(ref_valid, ref_same)  # the two paddings are really different

    def test_decreases_with_noise_and_symmetric(self, generator):
        x = torch.rand(1, 3, 24, 24, generator=generator)
        noise = torch.randn(1, 3, 24, 24, generator=generator)
        values = [metrics.ssim(x, x + sigma * noise).item() for sigma in (0.0, 0.02, 0.05, 0.1, 0.3)]
        assert values[0] == 1.0
        assert all(a > b for a, b in zip(values, values[1:]))
        y = x + 0.1 * noise
        torch.testing.assert_close(metrics.ssim(x, y), metrics.ssim(y, x))

    def test_gradcheck(self, generator):
        a = torch.rand(1, 2, 7, 8, generator=generator, dtype=torch.float64, requires_grad=True)
        b = torch.rand(1, 2, 7, 8, generator=generator, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda p: metrics.ssim(p, b, window=5), (a,))
        assert torch.autograd.gradcheck(lambda p: metrics.ssim(p, b, window=5, padding="reflect"), (a,))

    def test_errors(self):
        x = torch.rand(1, 1, 8, 8)
        with pytest.raises(ValueError, match="window: expected a positive odd integer, received 4"):
            metrics.ssim(x, x, window=4)
        with pytest.raises(ValueError, match=r"pred: expected H and W >= 11.*received \(1, 1, 8, 8\)"):
            metrics.ssim(x, x)
        with pytest.raises(ValueError, match="padding"):
            metrics.ssim(x, x, window=5, padding="zeros")
        with pytest.raises(ValueError, match=r"target: expected shape \(B, C, H, W\)"):
            metrics.ssim(x, torch.rand(1, 2, 8, 8), window=5)
        with pytest.raises(ValueError, match="sigma"):
            metrics.ssim(x, x, window=5, sigma=0.0)
