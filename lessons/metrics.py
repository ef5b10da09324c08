"""The numbers each chapter reports: how papers measure 3D reconstruction, pose and images.

=================  ===========================================  ==============================
metric             what it measures                             used by
=================  ===========================================  ==============================
voxel IoU          overlap of occupied voxels                   PTN, 3D-R2N2, 3D-VAE-GAN
voxel AP           area under the precision-recall curve of     3D-GAN / 3D-VAE-GAN (IKEA),
                   voxel occupancy scores                       3D-R2N2
Acc_pi/6, MedErr   geodesic viewpoint error                     Render for CNN
PCK                2D keypoints within alpha * size             3D Interpreter Network
MPJPE, P-MPJPE     mean 3D joint error, before / after a        AIGN, self-supervised mocap
                   similarity (Procrustes) alignment
PSNR, SSIM         image fidelity                               DeepStereo, AIGN (images)
=================  ===========================================  ==============================

Every function is batched torch: it runs on the device and in the dtype of its inputs, and
returns one value per batch element where that is how papers average (then ``.mean()`` gives
the table entry). Inputs are checked with :mod:`lessons.checks`; a mismatch raises a
``ValueError`` naming the argument, the expected and the received shape.

Choices written down once (tests pin each):

* IoU of two empty grids is 1 (the prediction is exactly right).
* AP is the "all points" interpolated AP of PASCAL VOC 2010+: precision is made monotone,
  ``p_interp(r) = max_{r' >= r} p(r')``, then summed over the recall steps. Tied scores form one
  operating point. It is ``NaN`` when there are no positives.
* ``acc_at_threshold`` counts errors ``<= threshold``; median is the usual (averaging) median.
* PSNR clamps the MSE at ``1e-10 * max_val**2``, so identical images give 100 dB, not ``inf``.
* SSIM uses a Gaussian window (11 taps, sigma 1.5), K1 = 0.01, K2 = 0.03, and by default only
  the ``'valid'`` part of the filtered maps, as Wang et al.'s reference MATLAB code does
  (``padding='reflect'`` keeps the image size, as ``kornia.metrics.ssim``'s ``'same'``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lessons.checks import ShapeError, check_floating, check_same_device, check_shape

__all__ = [
    "voxel_iou",
    "average_precision",
    "voxel_average_precision",
    "geodesic_errors",
    "acc_at_threshold",
    "median_error",
    "viewpoint_metrics",
    "pck",
    "mpjpe",
    "procrustes_align",
    "p_mpjpe",
    "psnr",
    "ssim",
]


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str, min_dim: int = 1) -> None:
    """Raise ``ShapeError`` unless ``a`` and ``b`` are tensors of one shape with ``min_dim`` dims."""
    for x, name in ((a, name_a), (b, name_b)):
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"{name}: expected a torch.Tensor, received {type(x).__name__}")
    if a.dim() < min_dim:
        raise ShapeError(f"{name_a}: expected at least {min_dim} dimensions (B, ...), received {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ShapeError(f"{name_b}: expected shape {tuple(a.shape)} (the shape of {name_a}), received {tuple(b.shape)}")
    check_same_device(**{name_a: a, name_b: b})


def _occupied(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boolean occupancy: a bool tensor as it is, numbers ``>= threshold``."""
    return x if x.dtype == torch.bool else x >= threshold


# --------------------------------------------------------------------------------------------
# Voxels: IoU and average precision
# --------------------------------------------------------------------------------------------


def voxel_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    r"""Intersection over union of occupied voxels, one value per shape.

    .. math::
        \mathrm{IoU} = \frac{|\{p \ge t\} \cap \{y \ge \tfrac12\}|}{|\{p \ge t\} \cup \{y \ge \tfrac12\}|}

    A bool ``pred`` or ``target`` is used as it is; a float ``pred`` is occupied where
    ``pred >= threshold`` and a float ``target`` where ``target >= 0.5``. The IoU of two empty
    grids is defined as 1 (nothing to find, nothing predicted). Not differentiable (it
    thresholds); train with a soft loss and report this.

    Shapes:
        pred: ``(B, ...)`` probabilities or bool, e.g. ``(B, D, H, W)`` or ``(B, 1, D, H, W)``
        target: ``(B, ...)`` bool or float in {0, 1}, the shape of ``pred``
        returns: ``(B,)`` in ``[0, 1]``, float (the dtype of a float ``pred``, else float32)

    Raises:
        ValueError: the shapes differ, ``pred`` has no batch dimension, or the devices differ.
    """
    _check_same_shape(pred, target, "pred", "target", min_dim=1)
    p = _occupied(pred, threshold).reshape(pred.shape[0], -1)  # (B, N)
    y = _occupied(target, 0.5).reshape(target.shape[0], -1)  # (B, N)
    dtype = pred.dtype if pred.is_floating_point() else torch.get_default_dtype()
    inter = (p & y).sum(-1).to(dtype)  # (B,)
    union = (p | y).sum(-1).to(dtype)  # (B,)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Interpolated AP along the last axis: ``(..., N), (..., N) -> (...)``."""
    dtype = scores.dtype if scores.is_floating_point() else torch.get_default_dtype()
    s, order = scores.sort(dim=-1, descending=True, stable=True)
    y = labels.gather(-1, order).to(dtype)  # positives in rank order
    tp = y.cumsum(-1)
    rank = torch.arange(1, y.shape[-1] + 1, device=y.device, dtype=dtype)
    precision = tp / rank
    # Only the last element of a run of tied scores is an operating point of the classifier.
    last = torch.ones_like(s, dtype=torch.bool)
    last[..., :-1] = s[..., :-1] != s[..., 1:]
    precision = torch.where(last, precision, torch.zeros_like(precision))
    # p_interp(k) = max_{j >= k} p(j): a reverse cumulative max. For an element inside a tie run it
    # equals p_interp at the run's end, because the zeros in between cannot raise the max.
    p_interp = precision.flip(-1).cummax(-1).values.flip(-1)
    positives = tp[..., -1]
    # AP = sum over recall steps (r_k - r_{k-1}) p_interp(r_k); each positive adds 1/P of recall.
    ap = (y * p_interp).sum(-1) / positives.clamp_min(1)
    return torch.where(positives > 0, ap, torch.full_like(ap, float("nan")))


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Area under the precision-recall curve: the "all points" interpolated AP (PASCAL VOC 2010+).

    Rank by decreasing score; at the :math:`k`-th operating point precision is
    :math:`p_k = TP_k / k` and recall :math:`r_k = TP_k / P`. Precision is made monotone,
    :math:`\hat p(r) = \max_{r' \ge r} p(r')`, and summed over the recall steps:

    .. math::
        \mathrm{AP} = \sum_k (r_k - r_{k-1})\, \hat p(r_k).

    Tied scores form a single operating point (as scikit-learn does). This is *not*
    scikit-learn's ``average_precision_score``, which sums the raw :math:`p_k` (no monotone
    envelope); the two agree when precision never rises. ``NaN`` when there are no positives.

    Shapes:
        scores: ``(N,)`` any real numbers, higher = more likely positive
        labels: ``(N,)`` bool (or 0/1 numbers)
        returns: ``()`` in ``[0, 1]``

    Raises:
        ValueError: ``scores`` is not 1-D, ``labels`` has another shape, or devices differ.
    """
    dims = check_shape(scores, "N", "scores")
    check_shape(labels, "N", "labels", dims)
    check_same_device(scores=scores, labels=labels)
    return _average_precision(scores, labels.bool())


def voxel_average_precision(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Average precision of voxel occupancy, one value per shape (3D-GAN, 3D-R2N2).

    Every voxel of one shape is a detection with score ``pred`` and label ``target``; the AP is
    :func:`average_precision` over them. Average the result over the shapes of a category for
    the per-category AP tables of 3D-VAE-GAN. ``NaN`` for an empty target shape.

    Shapes:
        pred: ``(B, ...)`` occupancy probabilities (or logits: only the order matters), e.g. ``(B, D, H, W)``
        target: ``(B, ...)`` bool or {0, 1}, the shape of ``pred``
        returns: ``(B,)``

    Raises:
        ValueError: the shapes differ, ``pred`` has no batch dimension, or devices differ.
    """
    _check_same_shape(pred, target, "pred", "target", min_dim=1)
    y = _occupied(target, 0.5)
    return _average_precision(pred.reshape(pred.shape[0], -1), y.reshape(y.shape[0], -1))  # (B,)


# --------------------------------------------------------------------------------------------
# Viewpoint: geodesic error, Acc_pi/6, MedErr (Render for CNN)
# --------------------------------------------------------------------------------------------


def _geodesic_fallback(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle of ``R1^T R2`` via atan2 (accurate near 0 and pi). Used only without lessons.geometry."""
    M = R1.transpose(-1, -2) @ R2
    cos2 = M.diagonal(dim1=-2, dim2=-1).sum(-1) - 1  # 2 cos(theta)
    sin2 = torch.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1)
    return torch.atan2(torch.linalg.vector_norm(sin2, dim=-1), cos2)  # 2 sin(theta), 2 cos(theta)


def _geodesic_distance(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    try:
        from lessons import geometry
    except ModuleNotFoundError as err:  # geometry.py not there: only then fall back
        if err.name not in ("lessons.geometry",):
            raise
        return _geodesic_fallback(R1, R2)
    return geometry.geodesic_distance(R1, R2)


def geodesic_errors(R_pred: torch.Tensor, R_true: torch.Tensor) -> torch.Tensor:
    r"""Rotation error :math:`d(\R_1, \R_2) = \arccos\big((\operatorname{tr}(\R_1^\top\R_2) - 1)/2\big)`, radians.

    Computed by ``lessons.geometry.geodesic_distance``.

    Shapes:
        R_pred: ``(..., 3, 3)``
        R_true: ``(..., 3, 3)``, the same leading shape
        returns: ``(...)`` in ``[0, pi]``

    Raises:
        ValueError: a shape is not ``(..., 3, 3)`` or the leading shapes differ.
    """
    dims = check_shape(R_pred, "*batch 3 3", "R_pred")
    check_shape(R_true, "*batch 3 3", "R_true", dims)
    check_same_device(R_pred=R_pred, R_true=R_true)
    return _geodesic_distance(R_pred, R_true)


def _check_errors(errors: torch.Tensor) -> None:
    check_floating(errors, "errors")
    if errors.numel() == 0:
        raise ShapeError(f"errors: expected at least one error, received shape {tuple(errors.shape)}")


def acc_at_threshold(errors: torch.Tensor, threshold: float = math.pi / 6) -> torch.Tensor:
    r"""Fraction of errors at most ``threshold``: Render for CNN's :math:`\mathrm{Acc}_{\pi/6}`.

    .. math:: \mathrm{Acc}_\tau = \frac{1}{N} \sum_i [e_i \le \tau]

    Shapes:
        errors: ``(N,)`` (any shape: every element counts), radians for viewpoints
        returns: ``()`` in ``[0, 1]``

    Raises:
        ValueError: ``errors`` is not a non-empty floating-point tensor.
    """
    _check_errors(errors)
    return (errors <= threshold).to(errors.dtype).mean()


def median_error(errors: torch.Tensor) -> torch.Tensor:
    r"""Median of the errors (the mean of the two middle ones for an even count, as numpy).

    Render for CNN's MedErr is this, in degrees, of the geodesic errors.

    Shapes:
        errors: ``(N,)`` (any shape: every element counts)
        returns: ``()``

    Raises:
        ValueError: ``errors`` is not a non-empty floating-point tensor.
    """
    _check_errors(errors)
    return torch.quantile(errors.reshape(-1), 0.5)


def viewpoint_metrics(R_pred: torch.Tensor, R_true: torch.Tensor) -> dict:
    r"""Render for CNN's two numbers: :math:`\mathrm{Acc}_{\pi/6}` and MedErr in degrees.

    Shapes:
        R_pred: ``(N, 3, 3)`` (any leading shape)
        R_true: ``(N, 3, 3)``
        returns: ``{"acc_pi6": float, "med_err_deg": float}``

    Raises:
        ValueError: a shape is not ``(..., 3, 3)`` or the leading shapes differ, or ``N = 0``.
    """
    errors = geodesic_errors(R_pred, R_true).reshape(-1)  # (N,)
    return {
        "acc_pi6": float(acc_at_threshold(errors, math.pi / 6)),
        "med_err_deg": math.degrees(float(median_error(errors))),
    }


# --------------------------------------------------------------------------------------------
# Keypoints and joints: PCK, MPJPE, P-MPJPE
# --------------------------------------------------------------------------------------------


def pck(
    pred: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.1,
    size: torch.Tensor | float | None = None,
    visible: torch.Tensor | None = None,
    per_keypoint: bool = False,
) -> torch.Tensor:
    r"""Percentage of correct keypoints: :math:`\lVert \hat{\vb x}_k - \vb x_k \rVert \le \alpha\, s`.

    .. math::
        \mathrm{PCK}_\alpha = \frac{\sum_{b,k} v_{bk}\,[\lVert \hat{\vb x}_{bk} - \vb x_{bk}\rVert \le \alpha s_b]}{\sum_{b,k} v_{bk}}

    The reference size :math:`s_b` is, as in the 3D Interpreter Network (after Long et al.),
    :math:`\max(h, w)` of the object's bounding box. Pass it as ``size`` (a float, e.g. the
    image side, or one value per image); with ``size=None`` the box is that of the visible
    target keypoints, a proxy for the object box when only keypoints are known.

    Shapes:
        pred: ``(B, K, 2)`` pixels
        target: ``(B, K, 2)`` pixels
        size: ``(B,)``, a float, or ``None``
        visible: ``(B, K)`` bool, or ``None`` (all visible)
        returns: ``()`` the fraction of visible keypoints that are correct, or ``(K,)`` per
        keypoint with ``per_keypoint=True`` (``NaN`` where a keypoint is never visible)

    Raises:
        ValueError: a shape or dtype is wrong, ``alpha < 0``, or a device differs.
    """
    dims = check_shape(pred, "B K 2", "pred")
    check_shape(target, "B K 2", "target", dims)
    check_floating(pred, "pred")
    check_floating(target, "target")
    check_same_device(pred=pred, target=target)
    if alpha < 0:
        raise ValueError(f"alpha: expected a non-negative number, received {alpha}")
    if visible is None:
        visible = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device)
    else:
        check_shape(visible, "B K", "visible", dims)
        check_same_device(pred=pred, visible=visible)
        visible = visible.bool()
    if size is None:
        big = torch.finfo(target.dtype).max
        lo = torch.where(visible[..., None], target, torch.full_like(target, big)).amin(1)  # (B, 2)
        hi = torch.where(visible[..., None], target, torch.full_like(target, -big)).amax(1)  # (B, 2)
        size = (hi - lo).amax(-1).clamp_min(0)  # (B,)
    elif isinstance(size, torch.Tensor):
        check_shape(size, "B", "size", dims)
        check_same_device(pred=pred, size=size)
    else:
        size = torch.full(pred.shape[:1], float(size), dtype=pred.dtype, device=pred.device)
    dist = torch.linalg.vector_norm(pred - target, dim=-1)  # (B, K)
    correct = (dist <= alpha * size[:, None]) & visible
    if per_keypoint:
        return correct.sum(0).to(pred.dtype) / visible.sum(0).to(pred.dtype)  # (K,)
    return correct.sum().to(pred.dtype) / visible.sum().to(pred.dtype)


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Mean per-joint position error: :math:`\frac1J \sum_j \lVert \hat{\vb X}_j - \vb X_j \rVert_2`.

    In the units of the inputs (the papers use millimetres). No alignment: for the
    root-relative protocol subtract the root joint from both first.

    Shapes:
        pred: ``(B, J, 3)`` (any leading shape ``(..., J, 3)``)
        target: ``(B, J, 3)``
        returns: ``(B,)``

    Raises:
        ValueError: the shapes differ or are not ``(..., J, 3)``.
    """
    dims = check_shape(pred, "*batch J 3", "pred")
    check_shape(target, "*batch J 3", "target", dims)
    check_same_device(pred=pred, target=target)
    return torch.linalg.vector_norm(pred - target, dim=-1).mean(-1)  # (...)


def procrustes_align(pred: torch.Tensor, target: torch.Tensor, return_transform: bool = False):
    r"""Align ``pred`` to ``target`` by the best similarity transform (Umeyama 1991).

    Finds scale :math:`s > 0`, rotation :math:`\R \in SO(3)` and translation :math:`\vb t`
    minimising :math:`\sum_j \lVert s\R\hat{\vb X}_j + \vb t - \vb X_j\rVert^2`. With centred
    points :math:`\vb x_j, \vb y_j` and :math:`\mathbf H = \sum_j \vb x_j \vb y_j^\top = \mathbf U
    \mathbf S \mathbf V^\top`:

    .. math::
        \R = \mathbf V \mathbf D \mathbf U^\top,\quad
        \mathbf D = \operatorname{diag}(1, 1, \operatorname{sign}\det(\mathbf V\mathbf U^\top)),\quad
        s = \frac{\operatorname{tr}(\mathbf D\mathbf S)}{\sum_j\lVert\vb x_j\rVert^2},\quad
        \vb t = \bar{\vb X} - s\R\bar{\hat{\vb X}}.

    :math:`\mathbf D` is the sign fix: without it the SVD may return a reflection
    (:math:`\det = -1`), which would "align" a mirrored skeleton perfectly.

    Shapes:
        pred: ``(B, J, 3)`` (any leading shape), ``J >= 3`` for a unique rotation
        target: ``(B, J, 3)``
        returns: aligned ``pred`` ``(B, J, 3)``; with ``return_transform=True`` also
        ``(s (B,), R (B, 3, 3), t (B, 3))`` such that ``aligned = s * pred @ R^T + t``

    Raises:
        ValueError: the shapes differ or are not ``(..., J, 3)``.
    """
    dims = check_shape(pred, "*batch J 3", "pred")
    check_shape(target, "*batch J 3", "target", dims)
    check_floating(pred, "pred")
    check_same_device(pred=pred, target=target)
    mu_p = pred.mean(-2, keepdim=True)  # (..., 1, 3)
    mu_t = target.mean(-2, keepdim=True)  # (..., 1, 3)
    x, y = pred - mu_p, target - mu_t
    H = x.transpose(-1, -2) @ y  # (..., 3, 3)
    U, S, Vh = torch.linalg.svd(H)
    V = Vh.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones_like(S)
    D = torch.cat([D[..., :2], d[..., None]], -1)  # (..., 3)
    R = (V * D[..., None, :]) @ U.transpose(-1, -2)  # (..., 3, 3)
    var = (x * x).sum((-1, -2))
    s = (D * S).sum(-1) / var.clamp_min(torch.finfo(var.dtype).tiny)  # (...)
    t = mu_t[..., 0, :] - s[..., None] * (R @ mu_p[..., 0, :, None])[..., 0]  # (..., 3)
    aligned = s[..., None, None] * (pred @ R.transpose(-1, -2)) + t[..., None, :]
    if return_transform:
        return aligned, (s, R, t)
    return aligned


def p_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""MPJPE after Procrustes alignment (scale, rotation, translation) of ``pred`` to ``target``.

    Always ``<= mpjpe(pred, target)`` up to rounding: the identity is one of the transforms the
    alignment minimises over (it minimises the squared error, so this holds for the mean of
    squares exactly and for the mean of norms in practice).

    Shapes:
        pred: ``(B, J, 3)`` (any leading shape)
        target: ``(B, J, 3)``
        returns: ``(B,)``

    Raises:
        ValueError: the shapes differ or are not ``(..., J, 3)``.
    """
    return mpjpe(procrustes_align(pred, target), target)


# --------------------------------------------------------------------------------------------
# Images: PSNR and SSIM
# --------------------------------------------------------------------------------------------


def _check_images(pred: torch.Tensor, target: torch.Tensor) -> dict:
    dims = check_shape(pred, "B C H W", "pred")
    check_shape(target, "B C H W", "target", dims)
    check_floating(pred, "pred")
    check_floating(target, "target")
    check_same_device(pred=pred, target=target)
    return dims


def psnr(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    r"""Peak signal-to-noise ratio per image, in dB.

    .. math::
        \mathrm{PSNR} = 10 \log_{10} \frac{L^2}{\max(\mathrm{MSE}, 10^{-10} L^2)},\qquad
        \mathrm{MSE} = \frac{1}{CHW}\sum_{c,i,j} (\hat I_{cij} - I_{cij})^2

    with :math:`L` = ``max_val``. The clamp caps identical images at 100 dB instead of ``inf``
    (and keeps the gradient finite). Average the returned values over images for a table (not
    the PSNR of the pooled MSE, which ``kornia.metrics.psnr`` returns).

    Shapes:
        pred: ``(B, C, H, W)``
        target: ``(B, C, H, W)``
        returns: ``(B,)``

    Raises:
        ValueError: shapes differ or are not 4-D, a dtype is not floating, ``max_val <= 0``.
    """
    _check_images(pred, target)
    if max_val <= 0:
        raise ValueError(f"max_val: expected a positive number, received {max_val}")
    mse = (pred - target).pow(2).mean((1, 2, 3))  # (B,)
    return 10 * torch.log10(max_val**2 / mse.clamp_min(1e-10 * max_val**2))


def _gaussian_window(window: int, sigma: float, device, dtype) -> torch.Tensor:
    """Sampled Gaussian ``exp(-n^2 / 2 sigma^2)`` at integer offsets from the centre, summing to 1."""
    n = torch.arange(window, device=device, dtype=dtype) - (window - 1) / 2
    g = torch.exp(-(n**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    max_val: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    padding: str = "valid",
) -> torch.Tensor:
    r"""Structural similarity (Wang et al. 2004), averaged over channels and pixels of each image.

    Local statistics use a Gaussian window :math:`w` (``window`` taps, std ``sigma``), applied
    as two 1D depthwise convolutions: :math:`\mu_x = w * x`, :math:`\sigma_x^2 = w * x^2 -
    \mu_x^2`, :math:`\sigma_{xy} = w * (xy) - \mu_x\mu_y`. Then

    .. math::
        \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
        {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},\quad
        C_1 = (0.01 L)^2,\ C_2 = (0.03 L)^2

    with :math:`L` = ``max_val``, and the map is averaged. ``padding='valid'`` (default) keeps
    only pixels whose window lies inside the image, as the authors' MATLAB code and
    scikit-image do; ``padding='reflect'`` reflects the border and averages over every pixel,
    as ``kornia.metrics.ssim(..., padding='same')`` does. :math:`\mathrm{SSIM}(x, x) = 1`.
    On CUDA the moments are filtered in float64 (TF32 convolutions or autocast would spoil
    the cancellation in :math:`\sigma^2`); the result has the inputs' dtype.

    Shapes:
        pred: ``(B, C, H, W)``, ``H, W >= window`` for ``'valid'``, ``> window // 2`` for ``'reflect'``
        target: ``(B, C, H, W)``
        returns: ``(B,)`` in ``[-1, 1]``

    Raises:
        ValueError: shapes differ or are not 4-D, dtype not floating, ``window`` not a positive
            odd integer, ``sigma <= 0``, ``max_val <= 0``, unknown ``padding``, image too small.
    """
    dims = _check_images(pred, target)
    if not (isinstance(window, int) and window > 0 and window % 2 == 1):
        raise ValueError(f"window: expected a positive odd integer, received {window!r}")
    if sigma <= 0:
        raise ValueError(f"sigma: expected a positive number, received {sigma}")
    if max_val <= 0:
        raise ValueError(f"max_val: expected a positive number, received {max_val}")
    if padding not in ("valid", "reflect"):
        raise ValueError(f"padding: expected 'valid' or 'reflect', received {padding!r}")
    H, W, r = dims["H"], dims["W"], window // 2
    if (padding == "valid" and min(H, W) < window) or (padding == "reflect" and min(H, W) <= r):
        need = f">= {window}" if padding == "valid" else f"> {r}"
        raise ShapeError(f"pred: expected H and W {need} for padding={padding!r} and window={window}, received {tuple(pred.shape)}")
    C = dims["C"]
    out_dtype = torch.promote_types(pred.dtype, target.dtype)
    # sigma^2 = E[x^2] - mu^2 cancels: on CUDA filter in float64, out of reach of TF32
    # convolutions and of autocast (which never lowers float64); elsewhere in >= float32.
    work = torch.float64 if pred.device.type == "cuda" else torch.promote_types(out_dtype, torch.float32)
    x, y = pred.to(work), target.to(work)
    g = _gaussian_window(window, sigma, pred.device, work)
    # The five moments of every channel, filtered together: x, y, x^2, y^2, xy.
    maps = torch.cat([x, y, x * x, y * y, x * y], 1)  # (B, 5C, H, W)
    if padding == "reflect":
        maps = F.pad(maps, (r, r, r, r), mode="reflect")
    maps = F.conv2d(maps, g.view(1, 1, 1, -1).expand(5 * C, 1, 1, window), groups=5 * C)  # (B, 5C, H', W - 2r)
    maps = F.conv2d(maps, g.view(1, 1, -1, 1).expand(5 * C, 1, window, 1), groups=5 * C)  # (B, 5C, H - 2r, W - 2r)
    mu_x, mu_y, xx, yy, xy = maps.chunk(5, dim=1)  # each (B, C, H', W')
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_xy = mu_x * mu_y
    mu_xx, mu_yy = mu_x * mu_x, mu_y * mu_y
    num = (2 * mu_xy + c1) * (2 * (xy - mu_xy) + c2)
    den = (mu_xx + mu_yy + c1) * ((xx - mu_xx) + (yy - mu_yy) + c2)
    return (num / den).mean((1, 2, 3)).to(out_dtype)  # (B,)
