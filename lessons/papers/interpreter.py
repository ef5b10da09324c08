"""Single Image 3D Interpreter Network (3D-INN): 2D keypoint heatmaps -> 3D skeleton -> 2D again.

Wu, Xue, Lim, Tian, Tenenbaum, Torralba and Freeman, ECCV 2016 (``wu2016interpreter``).

**The problem.** 2D keypoints are easy to label in photographs; 3D keypoints are not. Synthetic
3D models give 3D structure for free, but rendered images do not look like photographs. 3D-INN
uses each source for what it is good at:

* a **skeleton model** of a category: the 3D keypoints ``Y`` (``J x 3``) of any object are a
  weighted sum of base shapes, ``Y = sum_k alpha_k B_k`` (``B_0`` the category's mean shape, the
  others its main modes of variation; Zhou et al. 2016);
* a **keypoint estimator** (a small encoder-decoder) that turns an image into one heatmap per
  keypoint, trained on images with 2D labels (**step 1**);
* a **3D interpreter** that reads the heatmaps and outputs the structure ``alpha``, the rotation
  ``R`` and the translation ``T``, trained on *synthetic heatmaps* drawn from random structures,
  random rotations and translations -- no image at all (**step 2**);
* a **projection layer** ``X = P(R sum_k alpha_k B_k + T)``, the pinhole camera
  ``lambda (u, v, 1)^T = K (R Y_j + T)``: differentiable, so the whole network can be
  fine-tuned end to end from 2D labels only, on images of a new domain (**step 3**).

What this module fixes (each choice is explained in the chapter):

* ``alpha_0 = 1`` and ``B_k = sigma_k U_k`` for ``k >= 1``: the mean shape plus the principal
  directions ``U_k`` of the category's keypoint configurations, scaled by their standard
  deviations, so ``alpha_k`` is in standard deviations. Fixing ``alpha_0`` fixes the object's
  scale; otherwise scale and depth would trade off (a twice bigger chair twice as far away
  projects to the same pixels).
* Heatmaps are **probability maps** (each channel sums to 1): the estimator's output is a
  softmax over the pixels, the synthetic heatmaps are normalised Gaussians, and the 2D keypoint
  is their mean (soft-argmax), which is differentiable.
* ``R`` is predicted in the **6D representation** (first two columns, Gram-Schmidt; Zhou et al.
  2019): continuous, unlike angles that jump at +-180 degrees of azimuth.
* The interpreter reads each heatmap's mean and spread (an MLP on ``4 J`` numbers) rather than
  the heatmap pixels with convolutions, as the paper does: cheaper, and enough for unimodal maps.
* The camera ``K`` is known (the renderer's), as it is for a photograph with EXIF data.
* Step 3 keeps step 2's loss on synthetic batches next to the 2D losses, so the interpreter
  does not forget 3D while it adapts to real heatmaps (``w_synthetic``; our choice).

Shapes: images ``(B, 3, S, S)``; heatmaps ``(B, J, h, h)`` with ``h = S / 2``; keypoints
``(B, J, 2)`` in pixels of the image (pixel centre of row ``i``, column ``j`` is
``(j + 1/2, i + 1/2)``), ``(B, J, 3)`` in 3D; base shapes ``(M + 1, J, 3)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from lessons import geometry, metrics
from lessons import train as train_mod
from lessons.checks import check_floating, check_shape
from lessons.data import renders
from lessons.data import shapes as shapes_mod

__all__ = [
    "Config",
    "fit_base_shapes",
    "compose_structure",
    "project_structure",
    "structure_coefficients",
    "keypoint_heatmaps",
    "soft_argmax",
    "heatmap_spread",
    "random_structures",
    "SHIFTED_RANGES",
    "shifted_params",
    "viewpoint_prior",
    "render_domain",
    "flip_permutation",
    "augment",
    "KeypointEstimator",
    "Interpreter",
    "InterpreterNetwork",
    "heatmap_loss",
    "interpreter_loss",
    "projection_loss",
    "structure_error",
    "train_heatmaps",
    "train_interpreter",
    "train_end_to_end",
    "train",
    "predict",
    "evaluate_2d",
    "evaluate_3d",
    "mean_layout_baseline",
    "mean_structure_baseline",
]


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass
class Config:
    """Sizes and weights. Defaults are the gpu profile; PROFILES holds the smaller ones."""

    category: str = "chair"          # paper: chairs (and cars, sofas, swivel chairs)
    n_modes: int = 6                 # base shapes besides the mean (paper: a handful per category)
    n_pca_shapes: int = 2000         # procedural shapes the base shapes are fitted to
    image_size: int = 64             # paper: 256 px input; here 64 (heatmaps at half of it)
    sigma: float = 1.0               # Gaussian std of a target heatmap, in heatmap pixels
    distance_range: tuple = (1.5, 2.1)  # camera distances: the object fills most of the image, as in a detection crop
    width: int = 32                  # channels at the keypoint estimator's first level
    hidden: int = 256                # interpreter MLP width
    n_train: int = 4000              # step 1: labelled images of the source domain
    n_shift: int = 2000              # step 3: shifted-domain images with 2D labels only
    n_test: int = 500                # test images per domain
    batch_size: int = 64
    steps_heatmap: int = 3000        # step 1 (Adam)
    steps_interpreter: int = 4000    # step 2
    steps_end_to_end: int = 1500     # step 3
    lr: float = 4e-3                 # steps 1 and 2 (Adam, one-cycle schedule)
    lr_end_to_end: float = 3e-4      # step 3: fine-tuning, smaller
    alpha_range: float = 2.5         # synthetic structures: alpha_k ~ U(-a, a) (std units)
    jitter: float = 0.6              # synthetic heatmaps: keypoint noise, heatmap pixels (std)
    w_rotation: float = 1.0          # step 2 loss weights
    w_translation: float = 1.0
    w_alpha: float = 0.1
    w_keypoints: float = 10.0
    w_projection: float = 1.0        # step 3: reprojection loss (2D labels through P)
    w_heatmap: float = 0.1           # step 3: the step-1 heatmap loss, kept as an anchor
    w_prior: float = 1e-3            # step 3: alpha_k^2, keeps the structure plausible
    w_synthetic: float = 1.0         # step 3: step 2's loss on a synthetic batch, so the interpreter keeps its 3D knowledge
    seed: int = 0
    # gpu sizes scaled from the cpu run. Measured here (one thread of a loaded 2-core machine):
    # step 1 at width 16, 64 px, batch 32 takes 0.28 s a step; the whole cpu profile 2.5 min of
    # CPU time, rendering 1800 images 13 s. The gpu step 1 (width 32, batch 64: ~8x the FLOPs)
    # takes ~10-20 ms on a T4, so 3000 steps ~1 min; step 2 is an MLP (4000 steps ~20 s); step 3
    # and its control 2 x 1500 steps ~1 min; 7000 renders on the CPU ~1 min: ~4-5 min in all.
    PROFILES: ClassVar[dict] = {
        "quick": dict(n_modes=4, n_pca_shapes=300, image_size=32, width=16, hidden=128, n_train=256,
                      n_shift=128, n_test=96, batch_size=32, steps_heatmap=300, steps_interpreter=400,
                      steps_end_to_end=80),
        "cpu": dict(n_pca_shapes=1000, width=16, n_train=900, n_shift=500, n_test=200, batch_size=32,
                    steps_heatmap=700, steps_interpreter=1500, steps_end_to_end=300),
    }

    @property
    def heatmap_size(self) -> int:
        """Heatmaps are half the image size (the estimator's output stride is 2)."""
        return self.image_size // 2


# ----------------------------------------------------------------------------------------------
# The skeleton model: base shapes and the structure X = P(R sum_k alpha_k B_k + T)
# ----------------------------------------------------------------------------------------------


def fit_base_shapes(keypoints: torch.Tensor, n_modes: int) -> torch.Tensor:
    """Base shapes by PCA: ``B_0`` the mean, ``B_k = sigma_k U_k`` the ``n_modes`` main modes.

    With ``Y_i`` the ``N`` keypoint sets flattened to ``3J``-vectors, ``B_0 = mean_i Y_i`` and
    ``Y_i - B_0 = sum_k c_ik U_k`` (``U_k`` the right singular vectors, orthonormal). Scaling by
    ``sigma_k = std_i(c_ik)`` makes coefficients ``alpha_k = c_k / sigma_k`` of unit variance.
    Each mode's sign is fixed so that its largest entry is positive (reproducible bases).

    Shapes:
        keypoints: ``(N, J, 3)``, ``N >= 2`` -> bases ``(n_modes + 1, J, 3)``

    Raises:
        ValueError: wrong shape, or ``n_modes`` outside ``[0, min(N - 1, 3J)]``.
    """
    check_shape(keypoints, "N J 3", "keypoints")
    check_floating(keypoints, "keypoints")
    N, J, _ = keypoints.shape
    if N < 2 or not isinstance(n_modes, int) or not 0 <= n_modes <= min(N - 1, 3 * J):
        raise ValueError(f"n_modes: expected an int in [0, {min(N - 1, 3 * J)}] with N >= 2 shapes, received {n_modes!r} (N = {N})")
    Y = keypoints.reshape(N, 3 * J).double()
    mean = Y.mean(0)
    _, S, Vh = torch.linalg.svd(Y - mean, full_matrices=False)  # S (min(N, 3J),), Vh (., 3J)
    U = Vh[:n_modes]  # (M, 3J)
    sign = torch.sign(U.gather(1, U.abs().argmax(1, keepdim=True)))  # (M, 1)
    sigma = S[:n_modes] / math.sqrt(N - 1)  # std of the coefficients
    modes = sign * U * sigma[:, None]
    return torch.cat([mean[None], modes]).reshape(n_modes + 1, J, 3).to(keypoints.dtype)


def compose_structure(alpha: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """The 3D structure ``Y = sum_k alpha_k B_k`` (object frame).

    Shapes:
        alpha: ``(..., M + 1)`` (``alpha_0`` multiplies the mean shape); bases ``(M + 1, J, 3)``
        -> ``(..., J, 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    dims = check_shape(bases, "M J 3", "bases")
    check_shape(alpha, "* M", "alpha", dims)
    check_floating(alpha, "alpha")
    check_floating(bases, "bases")
    return torch.einsum("...k,kjc->...jc", alpha, bases.to(alpha.dtype))


def project_structure(alpha: torch.Tensor, bases: torch.Tensor, R: torch.Tensor, T: torch.Tensor, K: torch.Tensor):
    """The projection layer: ``X = P(R sum_k alpha_k B_k + T)`` with the pinhole ``P`` of ``K``.

    ``lambda (u_j, v_j, 1)^T = K (R Y_j + T)``; returns the pixels and the camera-frame points.

    Shapes:
        alpha: ``(..., M + 1)``; bases ``(M + 1, J, 3)``; R, K: ``(..., 3, 3)``; T: ``(..., 3)``
        -> pixels ``(..., J, 2)``, points_cam ``(..., J, 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    Y = compose_structure(alpha, bases)  # (..., J, 3)
    check_shape(R, "* 3 3", "R")
    check_shape(T, "* 3", "T")
    check_shape(K, "* 3 3", "K")
    X_c = geometry.transform_points(Y, R, T)  # (..., J, 3)
    pixels, _ = geometry.project(X_c, K, torch.eye(3, dtype=X_c.dtype, device=X_c.device), torch.zeros_like(T))
    return pixels, X_c


def structure_coefficients(keypoints: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """The ``alpha`` (with ``alpha_0 = 1``) whose structure is closest to ``keypoints`` (least squares).

    ``alpha_{1..M} = argmin || Y - B_0 - sum_k alpha_k B_k ||^2`` (the modes are orthogonal, so
    this is ``<Y - B_0, B_k> / |B_k|^2``).

    Shapes:
        keypoints: ``(..., J, 3)``; bases ``(M + 1, J, 3)`` -> ``(..., M + 1)``

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(bases, "M J 3", "bases")
    check_shape(keypoints, "* J 3", "keypoints", dims)
    d = keypoints - bases[0].to(keypoints)
    modes = bases[1:].to(keypoints)  # (M, J, 3)
    c = torch.einsum("...jc,kjc->...k", d, modes) / modes.pow(2).sum((1, 2)).clamp_min(1e-12)
    return torch.cat([c.new_ones(*c.shape[:-1], 1), c], -1)


# ----------------------------------------------------------------------------------------------
# Heatmaps
# ----------------------------------------------------------------------------------------------


def _cell_centres(size: int, image_size: int, device, dtype) -> torch.Tensor:
    """Image-pixel coordinates of the centres of a ``size`` grid laid over ``image_size`` pixels."""
    return (torch.arange(size, device=device, dtype=dtype) + 0.5) * (image_size / size)  # (size,)


def keypoint_heatmaps(pixels: torch.Tensor, size: int, image_size: int, sigma: float = 1.0) -> torch.Tensor:
    """Normalised Gaussian heatmaps: ``H_j(c) ∝ exp(-|c - x_j|^2 / (2 s^2))``, summing to 1.

    ``c`` runs over the centres of the ``size x size`` heatmap cells in image pixels (cell
    ``(i, j)`` covers image pixels ``[j r, (j + 1) r) x [i r, (i + 1) r)``, ``r = image_size / size``,
    so its centre is ``((j + 1/2) r, (i + 1/2) r)``) and ``s = sigma r``.

    Shapes:
        pixels: ``(..., J, 2)`` image pixels -> ``(..., J, size, size)``

    Raises:
        ValueError: wrong shape or a non-positive ``sigma``.
    """
    check_shape(pixels, "* J 2", "pixels")
    check_floating(pixels, "pixels")
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive number, received {sigma!r}")
    c = _cell_centres(size, image_size, pixels.device, pixels.dtype)
    s = sigma * image_size / size
    gu = -((c - pixels[..., 0:1]) ** 2) / (2 * s * s)  # (..., J, size) along u (columns)
    gv = -((c - pixels[..., 1:2]) ** 2) / (2 * s * s)  # (..., J, size) along v (rows)
    logits = gv[..., :, None] + gu[..., None, :]  # (..., J, size, size)
    return torch.softmax(logits.flatten(-2), -1).view(logits.shape)


def soft_argmax(heatmaps: torch.Tensor, image_size: int) -> torch.Tensor:
    """The mean of each probability map in image pixels: ``x_j = sum_c H_j(c) c``.

    Shapes:
        heatmaps: ``(..., J, h, w)``, each channel summing to 1 -> ``(..., J, 2)`` as ``(u, v)``

    Raises:
        ValueError: ``heatmaps`` has fewer than 3 dimensions or is not floating.
    """
    check_shape(heatmaps, "* J h w", "heatmaps")
    check_floating(heatmaps, "heatmaps")
    h, w = heatmaps.shape[-2:]
    cu = _cell_centres(w, image_size, heatmaps.device, heatmaps.dtype)
    cv = _cell_centres(h, image_size * h / w, heatmaps.device, heatmaps.dtype)
    u = (heatmaps.sum(-2) * cu).sum(-1)  # marginal over rows, then the mean column
    v = (heatmaps.sum(-1) * cv).sum(-1)
    return torch.stack([u, v], -1)


def heatmap_spread(heatmaps: torch.Tensor, image_size: int) -> torch.Tensor:
    """The standard deviation of each probability map along ``u`` and ``v``, image pixels.

    Shapes:
        heatmaps: ``(..., J, h, w)`` -> ``(..., J, 2)``

    Raises:
        ValueError: as :func:`soft_argmax`.
    """
    mean = soft_argmax(heatmaps, image_size)  # (..., J, 2)
    h, w = heatmaps.shape[-2:]
    cu = _cell_centres(w, image_size, heatmaps.device, heatmaps.dtype)
    cv = _cell_centres(h, image_size * h / w, heatmaps.device, heatmaps.dtype)
    var_u = (heatmaps.sum(-2) * cu**2).sum(-1) - mean[..., 0] ** 2
    var_v = (heatmaps.sum(-1) * cv**2).sum(-1) - mean[..., 1] ** 2
    return torch.stack([var_u, var_v], -1).clamp_min(1e-6).sqrt()


# ----------------------------------------------------------------------------------------------
# Data: synthetic structures (step 2) and rendered images of two domains (steps 1 and 3)
# ----------------------------------------------------------------------------------------------


def _camera_K(image_size: int, n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    f = renders.DEFAULT_FOCAL * image_size
    return geometry.intrinsics(torch.full((n,), f, device=device, dtype=dtype), image_size, image_size)  # (n, 3, 3)


def random_structures(n: int, bases: torch.Tensor, image_size: int, alpha_range: float = 2.5,
                      generator: torch.Generator | None = None, prior: renders.ViewpointPrior | None = None) -> dict:
    """Random 3D structures seen by random cameras: the interpreter's synthetic training data.

    ``alpha_k ~ U(-a, a)`` for ``k >= 1`` (``alpha_0 = 1``); ``(R, T)`` from a viewpoint of
    ``prior`` (default :class:`lessons.data.renders.ViewpointPrior`, the render set's own), the
    camera ``K`` of the renders (focal ``1.5 S``, centred); ``X = P(R Y + T)``.

    Shapes:
        bases ``(M + 1, J, 3)`` -> dict: alpha ``(n, M + 1)``, R ``(n, 3, 3)``, T ``(n, 3)``,
        K ``(n, 3, 3)``, pixels ``(n, J, 2)``, points_cam ``(n, J, 3)``

    Raises:
        ValueError: ``n < 1`` or wrong ``bases``.
    """
    check_shape(bases, "M J 3", "bases")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, received {n!r}")
    M = bases.shape[0] - 1
    dtype, device = bases.dtype, bases.device
    u = torch.rand(n, M, generator=generator, dtype=dtype)
    alpha = torch.cat([torch.ones(n, 1, dtype=dtype), alpha_range * (2 * u - 1)], -1).to(device)
    vp = (renders.ViewpointPrior() if prior is None else prior).sample(n, generator, device=device, dtype=dtype)
    R, T = geometry.camera_from_viewpoint(vp["azimuth"], vp["elevation"], vp["inplane"], vp["distance"])
    K = _camera_K(image_size, n, device, dtype)
    pixels, X_c = project_structure(alpha, bases, R, T, K)
    return {"alpha": alpha, "R": R, "T": T, "K": K, "pixels": pixels, "points_cam": X_c}


SHIFTED_RANGES = {
    "chair": {"seat_height": (0.30, 0.40), "back_height": (0.55, 0.75), "seat_width": (0.50, 0.62), "back_tilt": (0.2, 0.4)},
}
"""The shifted domain's parameter ranges (metres, radians), outside or at the edge of PARAM_SPECS."""


def shifted_params(category: str, generator: torch.Generator | None = None) -> dict:
    """Parameters of a shape of the **shifted domain**: other proportions than the source shapes.

    Draws :func:`lessons.data.shapes.sample_params` and then redraws the parameters listed in
    :data:`SHIFTED_RANGES` uniformly in their shifted ranges (for chairs: lower seats, taller,
    more tilted backs, wider seats). Images of this domain are also rendered differently
    (:func:`render_domain`: distinct part colours and a solid texture).

    Shapes:
        returns a dict ``{name: value}``.

    Raises:
        ValueError: unknown ``category``.
    """
    p = shapes_mod.sample_params(category, generator)
    for name, (lo, hi) in SHIFTED_RANGES.get(category, {}).items():
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        p[name] = lo + (hi - lo) * u
    return p


def viewpoint_prior(cfg: Config) -> renders.ViewpointPrior:
    """The render set's viewpoint prior (photo statistics) with the distances of ``cfg``."""
    return renders.ViewpointPrior(distance_range=tuple(cfg.distance_range))


def render_domain(category: str, domain: str, split: str, n: int, image_size: int, seed: int = 0,
                  prior: renders.ViewpointPrior | None = None, batch_size: int = 64, device=None) -> dict:
    """``n`` labelled images of the ``source`` or the ``shifted`` domain.

    ``source``: shapes of ``split`` (:func:`lessons.data.shapes.shape_seeds`), part colours two
    tones per shape, procedural backgrounds. ``shifted``: :func:`shifted_params` shapes (seeded
    by ``seed`` and ``split``), a random colour per part and a solid noise texture. Viewpoints
    from the default :class:`~lessons.data.renders.ViewpointPrior`, no crop (``K`` fixed).

    Shapes:
        returns a dict: image ``(n, 3, S, S)``, keypoints_2d ``(n, J, 2)``, keypoints_3d
        ``(n, J, 3)`` (object frame), visible ``(n, J)`` bool, R, K ``(n, 3, 3)``, t ``(n, 3)``

    Raises:
        ValueError: unknown ``domain``, ``category`` or ``split``.
    """
    if domain not in ("source", "shifted"):
        raise ValueError(f"domain: expected 'source' or 'shifted', received {domain!r}")
    if split not in shapes_mod.SPLITS:
        raise ValueError(f"split: expected one of {shapes_mod.SPLITS}, received {split!r}")
    g = torch.Generator().manual_seed(int(seed) * 7919 + shapes_mod.SPLITS.index(split) + (101 if domain == "shifted" else 0))
    if domain == "source":
        shape_list = [shapes_mod.random_shape(category, s) for s in shapes_mod.shape_seeds(category, split, n)]
        style = dict(part_colors="random", texture=0.0)
    else:
        shape_list = [shapes_mod.make_shape(category, shifted_params(category, g)) for _ in range(n)]
        style = dict(part_colors="distinct", texture=0.6)
    views = (renders.ViewpointPrior() if prior is None else prior).sample(n, g)
    keep = ("image", "keypoints_2d", "keypoints_3d", "keypoints_visible", "R", "K", "t")
    chunks = {k: [] for k in keep}
    for s0 in range(0, n, batch_size):
        s1 = min(n, s0 + batch_size)
        vp = {k: v[s0:s1] for k, v in views.items()}
        out = renders.render_shapes(shape_list[s0:s1], vp, image_size, g, antialias=1, device=device, **style)
        for k in keep:
            chunks[k].append(out[k])
    data = {k: torch.cat(v) for k, v in chunks.items()}
    data["visible"] = data.pop("keypoints_visible")
    return data


def flip_permutation(names) -> torch.Tensor:
    """Where each keypoint goes in a mirrored image: ``left`` and ``right`` swap names.

    Shapes:
        names: ``J`` strings -> ``(J,)`` int64, ``perm[j]`` the index of the mirror of keypoint ``j``

    Raises:
        ValueError: a mirrored name is not among ``names``.
    """
    names = list(names)
    swap = lambda n: n.replace("left", "\0").replace("right", "left").replace("\0", "right")  # noqa: E731
    missing = [swap(n) for n in names if swap(n) not in names]
    if missing:
        raise ValueError(f"names: expected the mirror of every keypoint among them, missing {missing}")
    return torch.tensor([names.index(swap(n)) for n in names], dtype=torch.int64)


def augment(image: torch.Tensor, pixels: torch.Tensor, generator: torch.Generator | None = None,
            flip: torch.Tensor | None = None, shift: float = 0.1, scale: float = 0.1):
    """Random mirror, shift and zoom of images, with their keypoint labels moved to match.

    Sampling grid (``F.affine_grid``, normalised coordinates ``n = 2 u / S - 1``): the output at
    ``n`` reads the input at ``a n + d``, ``a ~ U(1 - scale, 1 + scale)``, ``d ~ U(-shift, shift)^2``
    (times 2 in normalised units), so a keypoint moves to ``n' = (n - d) / a``. With ``flip`` (a
    :func:`flip_permutation`), half of the images are mirrored (``u -> S - u``) and their
    keypoints permuted, so the left leg stays the left leg. Keypoints may leave the image.

    Shapes:
        image ``(B, C, S, S)``; pixels ``(B, J, 2)`` -> image ``(B, C, S, S)``, pixels ``(B, J, 2)``

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(image, "B C S S", "image")
    check_shape(pixels, "B J 2", "pixels", dims)
    B, S = image.shape[0], image.shape[-1]
    u = torch.rand(B, 4, generator=generator).to(image)
    if flip is not None:
        mirror = u[:, 3] < 0.5
        image = torch.where(mirror[:, None, None, None], image.flip(-1), image)
        flipped = torch.stack([S - pixels[..., 0], pixels[..., 1]], -1)[:, flip.to(pixels.device)]
        pixels = torch.where(mirror[:, None, None], flipped, pixels)
    a = 1 + scale * (2 * u[:, 0] - 1)  # (B,)
    d = 2 * shift * (2 * u[:, 1:3] - 1)  # (B, 2)
    theta = torch.zeros(B, 2, 3, dtype=image.dtype, device=image.device)
    theta[:, 0, 0] = theta[:, 1, 1] = a
    theta[:, :, 2] = d
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)  # (B, S, S, 2)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    n = 2 * pixels / S - 1
    n = (n - d[:, None, :]) / a[:, None, None]
    return out, (n + 1) * S / 2


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU (size kept)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class KeypointEstimator(nn.Module):
    """Image -> one heatmap per keypoint: a small U-Net (encoder-decoder with skips) at stride 2.

    Returns **logits**; ``softmax`` over each channel's pixels gives the probability map.

    Shapes:
        image ``(B, 3, S, S)`` -> logits ``(B, J, S/2, S/2)`` (``S`` divisible by 16)
    """

    def __init__(self, n_keypoints: int, width: int = 32):
        super().__init__()
        c = width
        self.stem = nn.Sequential(nn.Conv2d(3, c, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.enc1 = _block(c, c)          # (B, c, S/2, S/2)
        self.enc2 = _block(c, 2 * c)      # (B, 2c, S/4, S/4)
        self.enc3 = _block(2 * c, 4 * c)  # (B, 4c, S/8, S/8)
        self.mid = _block(4 * c, 4 * c)   # (B, 4c, S/16, S/16)
        self.dec3 = _block(8 * c, 2 * c)  # (B, 2c, S/8, S/8)
        self.dec2 = _block(4 * c, c)      # (B, c, S/4, S/4)
        self.dec1 = _block(2 * c, c)      # (B, c, S/2, S/2)
        self.head = nn.Conv2d(c, n_keypoints, 1)  # (B, J, S/2, S/2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_shape(image, "B 3 S S", "image")
        if image.shape[-1] % 16:
            raise ValueError(f"image: expected a side divisible by 16, received {tuple(image.shape)}")
        up = lambda x: F.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
        e1 = self.enc1(self.stem(image))
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        m = self.mid(F.max_pool2d(e3, 2))
        d3 = self.dec3(torch.cat([up(m), e3], 1))
        d2 = self.dec2(torch.cat([up(d3), e2], 1))
        d1 = self.dec1(torch.cat([up(d2), e1], 1))
        return self.head(d1)


class Interpreter(nn.Module):
    """Heatmaps -> ``(alpha_{1..M}, R, T)``: an MLP on each heatmap's mean and spread.

    Inputs are normalised: means to ``[-1, 1]`` (``2 u / S - 1``), spreads divided by ``S``.
    Outputs: ``alpha_{1..M}``; 6D rotation -> ``R`` (Gram-Schmidt); ``T = z (o_x, o_y, 1)`` with
    ``z = z_0 exp(o_z)`` (positive depth; ``o_x, o_y`` are the offsets on the image plane).

    Shapes:
        heatmaps ``(B, J, h, h)`` (probability maps) -> alpha ``(B, M + 1)`` (``alpha_0 = 1``),
        R ``(B, 3, 3)``, T ``(B, 3)``
    """

    def __init__(self, n_keypoints: int, n_modes: int, image_size: int, hidden: int = 256, depth: float = 1.8):
        super().__init__()
        self.image_size, self.n_modes, self.depth = image_size, n_modes, depth
        self.mlp = nn.Sequential(
            nn.Linear(4 * n_keypoints, hidden), nn.ReLU(inplace=True),  # (B, hidden)
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, n_modes + 6 + 3),  # (B, M + 9)
        )
        with torch.no_grad():  # start at the identity rotation's 6D vector and T = (0, 0, z_0)
            self.mlp[-1].weight.mul_(0.1)
            self.mlp[-1].bias.zero_()
            self.mlp[-1].bias[n_modes : n_modes + 6] = torch.tensor([1.0, 0, 0, 0, 1, 0])

    def forward(self, heatmaps: torch.Tensor):
        check_shape(heatmaps, "B J h w", "heatmaps")
        S = self.image_size
        mean = soft_argmax(heatmaps, S) * (2 / S) - 1  # (B, J, 2)
        spread = heatmap_spread(heatmaps, S) / S  # (B, J, 2)
        out = self.mlp(torch.cat([mean, spread], -1).flatten(1))  # (B, M + 9)
        M = self.n_modes
        alpha = torch.cat([torch.ones_like(out[:, :1]), out[:, :M]], -1)  # (B, M + 1)
        R = geometry.rotation_6d_to_matrix(out[:, M : M + 6])  # (B, 3, 3)
        o = out[:, M + 6 :]
        z = self.depth * torch.exp(o[:, 2:3].clamp(-3, 3))
        T = torch.cat([o[:, :2] * z, z], -1)  # (B, 3)
        return alpha, R, T


class InterpreterNetwork(nn.Module):
    """3D-INN: keypoint estimator -> heatmaps -> interpreter -> projection layer, end to end.

    Shapes:
        forward(image ``(B, 3, S, S)``, K ``(B, 3, 3)``) -> dict: logits, heatmaps
        ``(B, J, S/2, S/2)``; keypoints_2d ``(B, J, 2)`` (soft-argmax); alpha ``(B, M + 1)``;
        R ``(B, 3, 3)``; T ``(B, 3)``; projected ``(B, J, 2)`` (the projection layer);
        points_cam ``(B, J, 3)``
    """

    def __init__(self, bases: torch.Tensor, image_size: int, width: int = 32, hidden: int = 256, depth: float = 1.8):
        super().__init__()
        check_shape(bases, "M J 3", "bases")
        J, M = bases.shape[1], bases.shape[0] - 1
        self.image_size = image_size
        self.register_buffer("bases", bases.float().clone())
        self.estimator = KeypointEstimator(J, width)
        self.interpreter = Interpreter(J, M, image_size, hidden, depth)

    def forward(self, image: torch.Tensor, K: torch.Tensor) -> dict:
        dims = check_shape(image, "B 3 S S", "image")
        check_shape(K, "B 3 3", "K", dims)
        logits = self.estimator(image)  # (B, J, h, h)
        heatmaps = torch.softmax(logits.flatten(2), -1).view(logits.shape)
        alpha, R, T = self.interpreter(heatmaps)
        projected, X_c = project_structure(alpha, self.bases, R, T, K)
        return {"logits": logits, "heatmaps": heatmaps, "keypoints_2d": soft_argmax(heatmaps, self.image_size),
                "alpha": alpha, "R": R, "T": T, "projected": projected, "points_cam": X_c}


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


def heatmap_loss(logits: torch.Tensor, pixels: torch.Tensor, image_size: int, sigma: float = 1.0, mask: torch.Tensor | None = None) -> dict:
    """Step 1: cross-entropy between the target Gaussian map and the predicted softmax map.

    ``L = -(1/|m|) sum_{b,j} m_bj sum_c H*_bj(c) log softmax(logits_bj)(c)`` (the target
    ``H*`` from :func:`keypoint_heatmaps`); it is smallest when the maps agree. Also returns the
    soft-argmax error in image pixels (a readable number, not optimised).

    Shapes:
        logits ``(B, J, h, h)``; pixels ``(B, J, 2)``; mask ``(B, J)`` bool or None (all)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(logits, "B J h h", "logits")
    check_shape(pixels, "B J 2", "pixels", dims)
    mask = torch.ones(pixels.shape[:2], dtype=torch.bool, device=pixels.device) if mask is None else mask
    check_shape(mask, "B J", "mask", dims)
    target = keypoint_heatmaps(pixels, logits.shape[-1], image_size, sigma).flatten(2)  # (B, J, hh)
    logp = torch.log_softmax(logits.flatten(2), -1)
    m = mask.to(logits.dtype)
    ce = -(target * logp).sum(-1)  # (B, J)
    with torch.no_grad():
        err = (soft_argmax(logp.exp().view(logits.shape), image_size) - pixels).norm(dim=-1)
    denom = m.sum().clamp_min(1)
    return {"heatmap": (ce * m).sum() / denom, "pixel_error": (err * m).sum() / denom}


def interpreter_loss(alpha, R, T, target: dict, bases: torch.Tensor, cfg: Config) -> dict:
    """Step 2: the interpreter's parameters and 3D points against the synthetic truth.

    ``L = w_R |R - R*|_F^2 + w_T |T - T*|^2 / z_0^2 + w_a |alpha - alpha*|^2 + w_X mean_j |X_j - X*_j|^2``
    with ``X = R Y + T`` the camera-frame keypoints (object units: the object's longest side is
    0.9) and ``z_0`` the mean camera distance of ``cfg.distance_range``.

    Shapes:
        alpha ``(B, M + 1)``, R ``(B, 3, 3)``, T ``(B, 3)``; target: dict with the same keys and
        points_cam ``(B, J, 3)`` (as :func:`random_structures` returns) -> dict of 0-d tensors

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(alpha, "B M", "alpha")
    check_shape(R, "B 3 3", "R", dims)
    check_shape(T, "B 3", "T", dims)
    check_shape(target["points_cam"], "B J 3", "target['points_cam']", dims)
    z0 = sum(cfg.distance_range) / 2
    X = geometry.transform_points(compose_structure(alpha, bases), R, T)
    terms = {
        "rotation": (R - target["R"]).pow(2).sum((-1, -2)).mean(),
        "translation": (T - target["T"]).pow(2).sum(-1).mean() / z0**2,
        "alpha": (alpha - target["alpha"]).pow(2).sum(-1).mean(),
        "keypoints_3d": (X - target["points_cam"]).pow(2).sum(-1).mean(),
    }
    terms["total"] = (cfg.w_rotation * terms["rotation"] + cfg.w_translation * terms["translation"]
                      + cfg.w_alpha * terms["alpha"] + cfg.w_keypoints * terms["keypoints_3d"])
    return terms


def projection_loss(out: dict, pixels: torch.Tensor, mask: torch.Tensor, image_size: int, cfg: Config) -> dict:
    """Step 3: 2D labels only. The projected structure must land on the labelled keypoints.

    ``L = w_P mean_{m} |P(R Y + T)_j - x_j|^2 / S^2 + w_H L_heatmap + w_a mean |alpha_{1..M}|^2``.

    Shapes:
        out: :class:`InterpreterNetwork`'s dict; pixels ``(B, J, 2)``; mask ``(B, J)`` bool

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(pixels, "B J 2", "pixels")
    check_shape(mask, "B J", "mask", dims)
    m = mask.to(pixels.dtype)
    d2 = (out["projected"] - pixels).pow(2).sum(-1) / image_size**2  # (B, J)
    terms = {"projection": (d2 * m).sum() / m.sum().clamp_min(1)}
    hm = heatmap_loss(out["logits"], pixels, image_size, cfg.sigma, mask)
    terms["heatmap"] = hm["heatmap"]
    terms["prior"] = out["alpha"][:, 1:].pow(2).mean()
    terms["total"] = cfg.w_projection * terms["projection"] + cfg.w_heatmap * terms["heatmap"] + cfg.w_prior * terms["prior"]
    return terms


# ----------------------------------------------------------------------------------------------
# Evaluation metric: 3D error in the camera frame, centred, normalised by the object's size
# ----------------------------------------------------------------------------------------------


def structure_error(pred: torch.Tensor, target: torch.Tensor, procrustes: bool = False) -> torch.Tensor:
    """3D keypoint error in the camera frame after removing the centroid, over the object's size.

    ``e = mean_j |(X_j - mean X) - (X*_j - mean X*)| / s*``, ``s*`` the longest side of the true
    keypoints' bounding box. Centring removes the depth ambiguity (a shift along the viewing
    ray barely changes the image); rotation errors still count. ``procrustes=True`` first aligns
    ``pred`` to ``target`` by a similarity (:func:`lessons.metrics.procrustes_align`), which
    leaves only the error of the shape.

    Shapes:
        pred, target: ``(B, J, 3)`` -> ``(B,)``

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(pred, "B J 3", "pred")
    check_shape(target, "B J 3", "target", dims)
    if procrustes:
        pred = metrics.procrustes_align(pred, target)
    p = pred - pred.mean(-2, keepdim=True)
    t = target - target.mean(-2, keepdim=True)
    size = (target.amax(-2) - target.amin(-2)).amax(-1)  # (B,)
    return metrics.mpjpe(p, t) / size


# ----------------------------------------------------------------------------------------------
# Training: the three steps
# ----------------------------------------------------------------------------------------------


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """An endless stream of random index batches (a new permutation every epoch)."""
    while True:
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[s : s + batch_size]


def _in_image(pixels: torch.Tensor, image_size: int) -> torch.Tensor:
    return ((pixels >= 0) & (pixels < image_size)).all(-1)


def train_heatmaps(model: InterpreterNetwork, data: dict, cfg: Config, history=None, progress: bool = True):
    """Step 1: the keypoint estimator on labelled images (every keypoint inside the image).

    Each batch is augmented (:func:`augment`: mirror with :func:`flip_permutation`, shift, zoom),
    then :func:`heatmap_loss`; Adam with a one-cycle schedule, ``cfg.steps_heatmap`` steps.

    Shapes:
        data: a :func:`render_domain` dict; returns the :class:`lessons.train.History`
        (``heatmap``, ``pixel_error``), continuing ``history`` when given

    Raises:
        ValueError: as :func:`lessons.train.fit` (e.g. negative steps).
    """
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(model.estimator.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(cfg.steps_heatmap, 1), pct_start=0.15)
    batches = _batches(data["image"].shape[0], cfg.batch_size, g)
    flip = flip_permutation(shapes_mod.KEYPOINT_NAMES[cfg.category])
    model.estimator.train()

    def step(i):
        idx = next(batches)
        img, pix = augment(data["image"][idx].to(device), data["keypoints_2d"][idx].to(device), g, flip)
        logits = model.estimator(img)
        terms = heatmap_loss(logits, pix, cfg.image_size, cfg.sigma, _in_image(pix, cfg.image_size))
        opt.zero_grad(set_to_none=True)
        terms["heatmap"].backward()
        opt.step()
        sched.step()
        return terms

    return train_mod.fit(step, cfg.steps_heatmap, desc="step 1: heatmaps", history=history, progress=progress, log_every=5)


def train_interpreter(model: InterpreterNetwork, cfg: Config, history=None, progress: bool = True):
    """Step 2: the interpreter on synthetic heatmaps of random structures (no images).

    Each batch: :func:`random_structures` -> keypoints jittered by ``cfg.jitter`` heatmap pixels
    -> :func:`keypoint_heatmaps` -> interpreter -> :func:`interpreter_loss`.

    Shapes:
        returns the History (``interpreter``, ``rotation``, ``keypoints_3d``)

    Raises:
        ValueError: as :func:`lessons.train.fit`.
    """
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed + 2)
    opt = torch.optim.Adam(model.interpreter.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(cfg.steps_interpreter, 1), pct_start=0.15)
    bases = model.bases
    prior = viewpoint_prior(cfg)
    model.interpreter.train()
    r = cfg.image_size / cfg.heatmap_size

    def step(i):
        s = random_structures(cfg.batch_size, bases.cpu(), cfg.image_size, cfg.alpha_range, g, prior)
        s = {k: v.to(device) for k, v in s.items()}
        noisy = s["pixels"] + cfg.jitter * r * torch.randn(s["pixels"].shape, generator=g).to(device)
        maps = keypoint_heatmaps(noisy, cfg.heatmap_size, cfg.image_size, cfg.sigma)
        alpha, R, T = model.interpreter(maps)
        terms = interpreter_loss(alpha, R, T, s, bases, cfg)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        sched.step()
        return {"interpreter": terms["total"], "rotation": terms["rotation"], "keypoints_3d": terms["keypoints_3d"]}

    return train_mod.fit(step, cfg.steps_interpreter, desc="step 2: interpreter", history=history, progress=progress, log_every=5)


def train_end_to_end(model: InterpreterNetwork, data: dict, cfg: Config, history=None, progress: bool = True,
                     use_projection: bool = True):
    """Step 3: the whole network, fine-tuned on images with **2D labels only** (:func:`projection_loss`).

    Each step adds ``cfg.w_synthetic`` times step 2's :func:`interpreter_loss` on a fresh
    synthetic batch (our choice): the interpreter adapts to the estimator's real heatmaps without
    forgetting 3D. No 3D label of a real image is used.

    ``use_projection=False`` is the control that shows what the projection layer adds: only the
    keypoint estimator is fine-tuned, with the heatmap loss alone, and the interpreter stays as
    step 2 left it. (Training the interpreter with no term but the tiny ``alpha`` prior would
    wreck it: Adam rescales even a tiny gradient to full-size steps.)

    Shapes:
        data: a :func:`render_domain` dict (only image, K and keypoints_2d are read);
        returns the History (``end_to_end``, ``projection``)

    Raises:
        ValueError: as :func:`lessons.train.fit`.
    """
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed + 3)
    params = model.parameters() if use_projection else model.estimator.parameters()
    opt = torch.optim.Adam(params, lr=cfg.lr_end_to_end)
    batches = _batches(data["image"].shape[0], cfg.batch_size, g)
    model.train()
    w = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(Config)}
    if not use_projection:
        w.update(w_projection=0.0, w_heatmap=1.0, w_prior=0.0)
    wcfg = Config(**w)

    prior = viewpoint_prior(cfg)
    r = cfg.image_size / cfg.heatmap_size

    def step(i):
        idx = next(batches)
        img, K = data["image"][idx].to(device), data["K"][idx].to(device)
        pix = data["keypoints_2d"][idx].to(device)
        out = model(img, K)
        terms = projection_loss(out, pix, _in_image(pix, cfg.image_size), cfg.image_size, wcfg)
        total = terms["total"]
        if use_projection and wcfg.w_synthetic > 0:  # step 2's loss on synthetic data, alongside
            s = {k: v.to(device) for k, v in random_structures(cfg.batch_size, model.bases.cpu(), cfg.image_size, cfg.alpha_range, g, prior).items()}
            noisy = s["pixels"] + cfg.jitter * r * torch.randn(s["pixels"].shape, generator=g).to(device)
            alpha, R, T = model.interpreter(keypoint_heatmaps(noisy, cfg.heatmap_size, cfg.image_size, cfg.sigma))
            total = total + wcfg.w_synthetic * interpreter_loss(alpha, R, T, s, model.bases, cfg)["total"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return {"end_to_end": total, "projection": terms["projection"]}

    return train_mod.fit(step, cfg.steps_end_to_end, desc="step 3: end to end", history=history, progress=progress, log_every=5)


def train(cfg: Config, source: dict, shifted: dict, progress: bool = True, device=None):
    """All three steps: base shapes, step 1 on ``source``, step 2 synthetic, step 3 on ``shifted``.

    ``source`` and ``shifted`` are :func:`render_domain` dicts (the shifted one is used through
    its 2D labels only). Returns ``(model, History)``, one history for the three steps.

    Shapes:
        returns an :class:`InterpreterNetwork` and a :class:`lessons.train.History`

    Raises:
        ValueError: unknown ``cfg.category`` or bad sizes.
    """
    device = train_mod.pick_device() if device is None else torch.device(device)
    train_mod.seed_everything(cfg.seed)
    kp = torch.stack([s.keypoints for s in shapes_mod.shape_batch(cfg.category, shapes_mod.shape_seeds(cfg.category, "train", cfg.n_pca_shapes))])
    model = InterpreterNetwork(fit_base_shapes(kp, cfg.n_modes), cfg.image_size, cfg.width, cfg.hidden,
                               depth=sum(cfg.distance_range) / 2).to(device)
    history = train_heatmaps(model, source, cfg, progress=progress)
    train_interpreter(model, cfg, history, progress)
    train_end_to_end(model, shifted, cfg, history, progress)
    return model, history


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(model: InterpreterNetwork, data: dict, batch_size: int = 128) -> dict:
    """Run the network on every image of ``data`` in eval mode; tensors on the CPU.

    Shapes:
        data: image ``(N, 3, S, S)``, K ``(N, 3, 3)`` -> the :class:`InterpreterNetwork` dict
        without the logits, each with ``N`` rows

    Raises:
        ValueError: wrong shapes.
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    outs = []
    for s in range(0, data["image"].shape[0], batch_size):
        o = model(data["image"][s : s + batch_size].to(device), data["K"][s : s + batch_size].to(device))
        outs.append({k: v.cpu() for k, v in o.items() if k not in ("logits",)})
    model.train(was)
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def _object_size(data: dict) -> torch.Tensor:
    kp = data["keypoints_2d"]
    return (kp.amax(1) - kp.amin(1)).amax(-1)  # (N,) longest side of the keypoints' 2D box


def evaluate_2d(model: InterpreterNetwork, data: dict, alpha: float = 0.1, pred: dict | None = None) -> dict:
    """PCK@alpha of the heatmaps' soft-argmax and of the projection layer's keypoints.

    The reference size is the longest side of the keypoints' 2D bounding box; only visible
    keypoints count (as with human labels).

    Shapes:
        data: a :func:`render_domain` dict; returns {"pck_heatmap", "pck_projected",
        "pixel_error"} (floats)

    Raises:
        ValueError: wrong shapes.
    """
    pred = predict(model, data) if pred is None else pred
    size, vis = _object_size(data), data["visible"]
    err = (pred["keypoints_2d"] - data["keypoints_2d"]).norm(dim=-1)
    return {
        "pck_heatmap": float(metrics.pck(pred["keypoints_2d"], data["keypoints_2d"], alpha, size, vis)),
        "pck_projected": float(metrics.pck(pred["projected"], data["keypoints_2d"], alpha, size, vis)),
        "pixel_error": float(err[vis].mean()),
    }


def _true_points_cam(data: dict) -> torch.Tensor:
    return geometry.transform_points(data["keypoints_3d"], data["R"], data["t"])


def evaluate_3d(model: InterpreterNetwork, data: dict, pred: dict | None = None) -> dict:
    """3D keypoint error (:func:`structure_error`) and rotation error of the predictions.

    Shapes:
        data: a :func:`render_domain` dict; returns {"error_3d", "error_3d_procrustes",
        "rotation_deg"} (floats, means over the images)

    Raises:
        ValueError: wrong shapes.
    """
    pred = predict(model, data) if pred is None else pred
    truth = _true_points_cam(data)
    return {
        "error_3d": float(structure_error(pred["points_cam"], truth).mean()),
        "error_3d_procrustes": float(structure_error(pred["points_cam"], truth, procrustes=True).mean()),
        "rotation_deg": float(torch.rad2deg(geometry.geodesic_distance(pred["R"], data["R"])).mean()),
    }


def mean_layout_baseline(train_data: dict, test_data: dict, alpha: float = 0.1) -> float:
    """PCK@alpha of predicting, for every image, the mean 2D keypoint layout of the training set.

    Shapes:
        train_data, test_data: dicts with keypoints_2d ``(N, J, 2)`` and visible ``(N, J)``;
        returns a float

    Raises:
        ValueError: the two sets have different ``J``.
    """
    mean = train_data["keypoints_2d"].mean(0, keepdim=True).expand_as(test_data["keypoints_2d"])
    return float(metrics.pck(mean.contiguous(), test_data["keypoints_2d"], alpha, _object_size(test_data), test_data["visible"]))


def mean_structure_baseline(train_data: dict, test_data: dict) -> float:
    """:func:`structure_error` of predicting, for every image, the training set's mean camera-frame structure.

    Shapes:
        train_data, test_data: :func:`render_domain` dicts; returns a float

    Raises:
        ValueError: the two sets have different ``J``.
    """
    mean = _true_points_cam(train_data).mean(0, keepdim=True)
    truth = _true_points_cam(test_data)
    return float(structure_error(mean.expand_as(truth).contiguous(), truth).mean())
