r"""DeepStereo: learning to predict new views from posed images (Flynn et al., CVPR 2016).

The task. Given ``V`` images of a scene from posed cameras :math:`(\K_i, \Rot_i, \vb{t}_i)`, render
the image a new (target) camera would see. DeepStereo's answer has two parts.

**1. Plane-sweep volume (geometry, no learning).** Sweep ``D`` fronto-parallel planes
:math:`z = d_1 < \dots < d_D` through the target camera, uniformly spaced in inverse depth
(:func:`inverse_depth_planes`). Project every input image onto every plane and look at it from
the target camera. For the plane :math:`\vb{n}^\top \vb{X} + d = 0` with
:math:`\vb{n} = (0, 0, -1)` in the target frame and :math:`(\Rot, \vb{t})` the pose from the target
frame to input ``i``, this is one homography per (plane, input):

.. math::

    \mathbf{H}_{iz} = \K_i \Big(\Rot + \frac{\vb{t}\, \vb{e}_3^\top}{d_z}\Big) \K_r^{-1},
    \qquad P_{z,i}(\vb{x}) = I_i(\mathbf{H}_{iz}\vb{x}).

All ``V x D`` warps are one batched ``grid_sample`` (:func:`plane_sweep_volume`). Where the
scene really lies on plane ``z``, the ``V`` reprojected colours agree; elsewhere they disagree
(ghosts).

**2. Two towers (learning).** For every target pixel :math:`(i, j)` and plane :math:`z`:

* the **selection tower** computes features of each plane with weights shared across planes,
  lets neighbouring planes interact, and ends in a softmax over depth: a probability
  :math:`s_{ijz}` that the pixel lies on plane ``z`` (:class:`SelectionTower`);
* the **colour tower** computes a colour :math:`c_{ijz}` per plane, again with weights shared
  across planes (:class:`ColorTower`);
* the output is their expectation over depth (:func:`synthesize`)

.. math:: c^f_{ij} = \sum_z s_{ijz}\, c_{ijz}.

Training is supervised by held-out views only: an L1 loss between :math:`c^f` and the real
target image, on small patches (:func:`loss`, :func:`train`). No depth is ever given, yet the
selection probabilities must concentrate where the colours agree, so the **expected depth**
:math:`\hat d_{ij} = \sum_z s_{ijz} d_z` is a depth map the network found on its own
(:func:`expected_depth`).

Simplifications for a course on a laptop (stated, not hidden):

* one scale instead of the paper's multi-resolution patches; plain ReLU convolutions, Adam;
* the colour tower predicts per-view **blending weights** (a softmax over the ``V`` inputs,
  masked where an input does not see the pixel) and :math:`c_{ijz} = \sum_i w_{ijzi}
  P_{z,i}(i, j)`, instead of regressing RGB; colours stay inside the inputs' range and training
  converges in minutes. The chapter's exercises try the paper's direct regression;
* both towers also receive the per-plane mean and variance of the valid input colours and the
  validity masks next to the raw reprojected colours (the classical plane-sweep stereo cue,
  which the paper's network has to discover).

Baselines (:func:`nearest_view`, :func:`single_plane`, :func:`variance_stereo`) and the
evaluation (:func:`evaluate`: PSNR, SSIM, depth correlation) close the module.

Reference: J. Flynn, I. Neulander, J. Philbin, N. Snavely. *DeepStereo: Learning to Predict New
Views from the World's Imagery.* CVPR 2016.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from lessons import geometry, metrics
from lessons import train as train_lib
from lessons.checks import check_floating, check_shape
from lessons.data import scenes

__all__ = [
    "Config",
    "inverse_depth_planes",
    "sweep_homographies",
    "crop_homographies",
    "plane_sweep_volume",
    "plane_statistics",
    "tower_inputs",
    "synthesize",
    "expected_depth",
    "SelectionTower",
    "ColorTower",
    "DeepStereo",
    "loss",
    "make_data",
    "sample_patches",
    "train",
    "predict",
    "nearest_view",
    "single_plane",
    "variance_stereo",
    "depth_correlation",
    "evaluate",
]


@dataclass
class Config:
    """Sizes and settings; defaults are the ``gpu`` profile (10 min on a T4; not yet run on one).

    Scaling from the cpu profile (measured on 2 shared CPU cores): a cpu step (batch 8, D = 16,
    24 x 24 crops, width 16) is about 9 GFLOP forward and backward. A gpu step (batch 32, D = 32,
    36 x 36 crops, width 32) is about 4 x 2 x 2.25 x 3.5 = 63 times that, 0.6 TFLOP; at an
    effective 8 TFLOP/s on a T4 with AMP that is 0.07 s, so 2500 steps take about 3 min.
    Rendering 192 scenes (about 0.5 s each for the textures on the CPU, the rasterizer on the
    GPU) takes about 2 min, the evaluation under a minute: about 6-7 min in all.
    """

    seed: int = 0                  # seeds the scenes' rigs, the patches and the weights
    image_size: int = 96           # rendered views, pixels (the paper: Street View panoramas)
    supersample: int = 2           # scene renderer samples per pixel per axis (anti-aliasing)
    n_inputs: int = 4              # input views per example (paper: five nearby images)
    baseline: float = 0.35         # distance of the inputs from the target (room width is 3-4.4)
    fov_deg: float = 60.0          # horizontal field of view of every camera, degrees
    n_train_scenes: int = 160      # rendered training scenes (rooms and rigs)
    n_test_scenes: int = 32        # held-out scenes: new rooms, textures and furniture
    planes: int = 32               # depth planes D (paper: 96)
    near: float = 0.9              # depth of the nearest plane (the scenes start at about 1)
    far: float = 8.0               # depth of the farthest plane (the back walls end before 7.5)
    patch: int = 24                # side of the output patch the loss sees (paper: small patches, ~8 px)
    context: int = 6               # extra pixels each side, so every output pixel has its context
    width: int = 32                # channels of the towers
    batch: int = 32                # patches per step
    steps: int = 2500              # optimisation steps
    lr: float = 2e-3               # Adam learning rate (paper: AdaGrad)
    eval_every: int = 500          # evaluate on a few held-out scenes every this many steps
    PROFILES: ClassVar[dict] = {
        "quick": dict(image_size=40, supersample=1, n_train_scenes=6, n_test_scenes=3, planes=8, patch=12,
                      context=4, width=12, batch=6, steps=80, eval_every=40),
        "cpu": dict(image_size=64, n_train_scenes=24, n_test_scenes=8, planes=16, patch=16, context=4,
                    width=16, batch=8, steps=300, eval_every=150),
    }


# ----------------------------------------------------------------------------------------------
# The plane sweep
# ----------------------------------------------------------------------------------------------


def inverse_depth_planes(near: float, far: float, planes: int, device=None, dtype=None) -> torch.Tensor:
    r"""``planes`` depths from ``near`` to ``far``, uniformly spaced in inverse depth.

    :math:`1/d_z = 1/n + \frac{z}{D-1}(1/f - 1/n)`, ``z = 0 .. D-1``: disparity (what moves the
    image) is linear in ``1/d``, so equal steps in ``1/d`` move the reprojections by equal pixel
    steps. ``d_0 = near``, ``d_{D-1} = far``.

    Shapes:
        -> (D,)

    Raises:
        ValueError: ``near <= 0``, ``far <= near`` or ``planes < 2``.
    """
    if not 0 < near < far:
        raise ValueError(f"near, far: expected 0 < near < far, received near={near}, far={far}")
    if isinstance(planes, bool) or not isinstance(planes, int) or planes < 2:
        raise ValueError(f"planes: expected an int >= 2, received {planes!r}")
    s = torch.linspace(0, 1, planes, device=device, dtype=dtype or torch.get_default_dtype())
    return 1.0 / (1.0 / near + s * (1.0 / far - 1.0 / near))


def sweep_homographies(K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    r"""The homographies from the target view (view 0) to each input view, one per plane.

    With :math:`(\Rot, \vb{t})` = :func:`lessons.geometry.relative_pose` from the target camera
    to input ``i``, :math:`\mathbf{H}_{iz} = \K_i(\Rot + \vb{t}\vb{e}_3^\top / d_z)\K_0^{-1}`
    (:func:`lessons.geometry.fronto_parallel_homographies`). ``H`` maps target pixels to input pixels.

    Shapes:
        K, R: (B, 1+V, 3, 3); t: (B, 1+V, 3); depths: (D,) or (B, D) -> (B, V, D, 3, 3)

    Raises:
        ValueError: wrong shapes or dtypes.
    """
    dims = check_shape(K, "B N 3 3", "K")
    check_shape(R, "B N 3 3", "R", dims)
    check_shape(t, "B N 3", "t", dims)
    for x, n in ((K, "K"), (R, "R"), (t, "t"), (depths, "depths")):
        check_floating(x, n)
    if dims["N"] < 2:
        raise ValueError(f"K: expected a target and at least one input view (N >= 2), received {tuple(K.shape)}")
    if depths.dim() == 2:
        check_shape(depths, "B D", "depths", dims)
        depths = depths[:, None]  # (B, 1, D)
    else:
        check_shape(depths, "D", "depths")
    R_rel, t_rel = geometry.relative_pose(R[:, :1], t[:, :1], R[:, 1:], t[:, 1:])  # (B, V, 3, 3), (B, V, 3)
    return geometry.fronto_parallel_homographies(K[:, :1].expand_as(K[:, 1:]), K[:, 1:], R_rel, t_rel, depths.to(K.dtype))


def crop_homographies(H: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    r"""Homographies for a crop of the target view whose top-left corner is at pixel ``offset``.

    Pixel :math:`\vb{p}` of the crop is pixel :math:`\vb{p} + (x_0, y_0)` of the full view, so
    :math:`\mathbf{H}' = \mathbf{H}\,\mathbf{T}` with :math:`\mathbf{T} = [[1, 0, x_0], [0, 1, y_0], [0, 0, 1]]`.
    A crop may extend beyond the target image: the planes are defined everywhere.

    Shapes:
        H: (B, ..., 3, 3); offset: (B, 2) as (x0, y0) = (column, row) -> (B, ..., 3, 3)

    Raises:
        ValueError: wrong shapes.
    """
    check_shape(H, "* 3 3", "H")
    check_floating(H, "H")
    check_shape(offset, "B 2", "offset")
    if H.dim() < 3 or H.shape[0] != offset.shape[0]:
        want = H.shape[0] if H.dim() >= 3 else "B"
        raise ValueError(f"offset: expected shape ({want}, 2) to match H {tuple(H.shape)}, received {tuple(offset.shape)}")
    T = torch.eye(3, dtype=H.dtype, device=H.device).repeat(offset.shape[0], 1, 1)
    T[:, :2, 2] = offset.to(H.dtype)
    return H @ T.reshape(T.shape[0], *([1] * (H.dim() - 3)), 3, 3)


def plane_sweep_volume(inputs: torch.Tensor, H: torch.Tensor, height: int, width: int):
    r"""Reproject every input onto every plane, seen from the target: one batched warp.

    :math:`P_{z,i}(\vb{x}) = I_i(\mathbf{H}_{iz}\vb{x})` at the target pixel centres (bilinear,
    zeros outside), with the validity mask (1 where input ``i`` sees the point) from
    :func:`lessons.geometry.warp_homography`; no loop over planes or views.

    Shapes:
        inputs: (B, V, C, Hs, Ws); H: (B, V, D, 3, 3) -> psv (B, D, V, C, h, w), mask (B, D, V, 1, h, w)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(inputs, "B V C Hs Ws", "inputs")
    check_shape(H, "B V D 3 3", "H", dims)
    check_floating(inputs, "inputs")
    B, V, C, Hs, Ws = inputs.shape
    D = H.shape[2]
    out, mask = geometry.warp_homography(inputs.reshape(B * V, C, Hs, Ws), H.reshape(B * V, D, 3, 3).to(inputs.dtype),
                                         height, width, return_mask=True)  # (B*V, D, C, h, w), (B*V, D, 1, h, w)
    psv = out.reshape(B, V, D, C, height, width).transpose(1, 2)  # (B, D, V, C, h, w)
    mask = mask.reshape(B, V, D, 1, height, width).transpose(1, 2)  # (B, D, V, 1, h, w)
    return psv, mask


def plane_statistics(psv: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6):
    r"""Masked mean and variance of the reprojected colours across the inputs, per plane and pixel.

    :math:`\mu = \sum_i m_i P_i / \sum_i m_i`, :math:`\sigma^2 = \frac13\sum_c \sum_i m_i (P_{ic} - \mu_c)^2 / \sum_i m_i`
    (mean over colour channels); also the number of inputs that see the point. Where no input
    sees it, ``mu = 0`` and ``var = 0``.

    Shapes:
        psv: (B, D, V, C, h, w); mask: (B, D, V, 1, h, w) -> mean (B, D, C, h, w),
        var (B, D, 1, h, w), count (B, D, 1, h, w)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(psv, "B D V C h w", "psv")
    check_shape(mask, "B D V 1 h w", "mask", dims)
    count = mask.sum(2)  # (B, D, 1, h, w)
    mean = (mask * psv).sum(2) / count.clamp_min(eps)  # (B, D, C, h, w)
    var = (mask * (psv - mean[:, :, None]) ** 2).sum(2).mean(2, keepdim=True) / count.clamp_min(eps)  # (B, D, 1, h, w)
    return mean, var, count


def tower_inputs(psv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What each plane shows the towers: reprojected colours, masks, their mean and variance.

    Channels: ``V*C`` reprojected colours, ``V`` masks, ``C`` mean, 1 standard deviation (set to
    0.5 where fewer than two inputs see the point: no agreement can be measured there).

    Shapes:
        psv: (B, D, V, C, h, w); mask: (B, D, V, 1, h, w) -> (B, D, V*C + V + C + 1, h, w)

    Raises:
        ValueError: wrong shapes.
    """
    mean, var, count = plane_statistics(psv, mask)
    B, D, V, C, h, w = psv.shape
    # fewer than two inputs see the point: no agreement to measure, so the cost is high (0.5)
    std = torch.where(count >= 2, (var + 1e-6).sqrt(), torch.full_like(var, 0.5))
    return torch.cat([psv.reshape(B, D, V * C, h, w), mask.reshape(B, D, V, h, w), mean, std], 2)


def synthesize(selection: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    r"""DeepStereo's output: the colours of the planes weighted by the selection probabilities.

    :math:`c^f_{ij} = \sum_z s_{ijz}\, c_{ijz}`.

    Shapes:
        selection: (B, D, h, w) (sums to 1 over D); colors: (B, D, C, h, w) -> (B, C, h, w)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(selection, "B D h w", "selection")
    check_shape(colors, "B D C h w", "colors", dims)
    return (selection[:, :, None] * colors).sum(1)


def expected_depth(selection: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    r"""The depth the selection map implies: :math:`\hat d_{ij} = \sum_z s_{ijz}\, d_z`.

    Shapes:
        selection: (B, D, h, w); depths: (D,) or (B, D) -> (B, 1, h, w)

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(selection, "B D h w", "selection")
    if depths.dim() == 1:
        check_shape(depths, "D", "depths", dims)
        depths = depths[None]
    check_shape(depths, "_ D", "depths", dims)
    return (selection * depths.to(selection)[:, :, None, None]).sum(1, keepdim=True)


# ----------------------------------------------------------------------------------------------
# The towers
# ----------------------------------------------------------------------------------------------


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Softmax inputs leave autocast's half precision; float64 stays float64."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _convs(c_in: int, width: int, layers: int) -> nn.Sequential:
    """``layers`` 3x3 convolutions with ReLU, ``c_in -> width -> ... -> width`` (shape-preserving)."""
    mods = []
    for k in range(layers):
        mods += [nn.Conv2d(c_in if k == 0 else width, width, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*mods)


class SelectionTower(nn.Module):
    r"""Per-plane features (weights shared over planes), interaction across depth, softmax over depth.

    Per plane: three 3x3 convolutions on the plane's inputs. Across depth: two 3x3x3
    convolutions over ``(plane, row, column)``, the last giving one logit per plane. Added to
    the logits: the classical matching cost with a **learned** weight that starts at zero,
    :math:`-\alpha\, \bar\sigma_z`, where :math:`\bar\sigma_z` is the standard deviation of the
    reprojected colours (the last input channel) averaged over a ``5 x 5`` window and
    :math:`\alpha` = ``cost_scale * cost_weight``. At initialisation the selection is uniform;
    the photometric loss alone decides how much to trust the cost.

    Shapes:
        x: (B, D, C_in, h, w) -> selection (B, D, h, w) (softmax over D), logits (B, D, h, w)
    """

    def __init__(self, c_in: int, width: int = 32, cost_scale: float = 500.0):
        super().__init__()
        self.per_plane = _convs(c_in, width, 3)  # (B*D, width, h, w)
        self.across_depth = nn.Sequential(
            nn.Conv3d(width, width, 3, padding=1), nn.ReLU(inplace=True),  # (B, width, D, h, w)
            nn.Conv3d(width, 1, 3, padding=1),  # (B, 1, D, h, w)
        )
        self.cost_scale = cost_scale
        self.cost_weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor):
        B, D, C, h, w = x.shape
        f = self.per_plane(x.reshape(B * D, C, h, w))  # (B*D, width, h, w)
        f = f.reshape(B, D, -1, h, w).transpose(1, 2)  # (B, width, D, h, w)
        logits = _at_least_float32(self.across_depth(f)[:, 0])  # (B, D, h, w)
        cost = F.avg_pool2d(x[:, :, -1], 5, stride=1, padding=2, count_include_pad=False)  # (B, D, h, w)
        logits = logits - self.cost_scale * self.cost_weight * cost.to(logits.dtype)
        return torch.softmax(logits, dim=1), logits


class ColorTower(nn.Module):
    """A colour per plane (weights shared over planes): a masked blend of the reprojected inputs.

    Three 3x3 convolutions per plane give one score per input view; a softmax over the views
    (``-inf`` where a view does not see the point) gives blending weights ``w``, and
    ``c_z = sum_i w_i P_{z,i}``.

    Shapes:
        x: (B, D, C_in, h, w); psv: (B, D, V, C, h, w); mask: (B, D, V, 1, h, w) -> (B, D, C, h, w)
    """

    def __init__(self, c_in: int, n_inputs: int, width: int = 32):
        super().__init__()
        self.per_plane = nn.Sequential(_convs(c_in, width, 2), nn.Conv2d(width, n_inputs, 3, padding=1))  # (B*D, V, h, w)

    def forward(self, x: torch.Tensor, psv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, D, C, h, w = x.shape
        scores = _at_least_float32(self.per_plane(x.reshape(B * D, C, h, w))).reshape(B, D, -1, 1, h, w)  # (B, D, V, 1, h, w)
        seen = mask > 0
        none = ~seen.any(2, keepdim=True)  # no view sees the point: blend all (they are all 0)
        scores = scores.masked_fill(~(seen | none), float("-inf"))
        weights = torch.softmax(scores, dim=2)
        return (weights * psv.to(weights.dtype)).sum(2)  # (B, D, C, h, w)


class DeepStereo(nn.Module):
    """The two towers and the weighted sum: plane-sweep volume in, new view out.

    Shapes:
        psv: (B, D, V, 3, h, w); mask: (B, D, V, 1, h, w) ->
        dict(rgb (B, 3, h, w), selection (B, D, h, w), colors (B, D, 3, h, w))
    """

    def __init__(self, n_inputs: int = 4, width: int = 32, channels: int = 3):
        super().__init__()
        c_in = n_inputs * channels + n_inputs + channels + 1
        self.n_inputs = n_inputs
        self.selection = SelectionTower(c_in, width)
        self.color = ColorTower(c_in, n_inputs, width)

    def forward(self, psv: torch.Tensor, mask: torch.Tensor) -> dict:
        dims = check_shape(psv, "B D V C h w", "psv")
        check_shape(mask, "B D V 1 h w", "mask", dims)
        if dims["V"] != self.n_inputs:
            raise ValueError(f"psv: expected V = {self.n_inputs} input views, received shape {tuple(psv.shape)}")
        x = tower_inputs(psv, mask)  # (B, D, C_in, h, w)
        selection, logits = self.selection(x)
        colors = self.color(x, psv, mask)
        return {"rgb": synthesize(selection, colors), "selection": selection, "logits": logits, "colors": colors}


def loss(pred: torch.Tensor, target: torch.Tensor, crop: int = 0) -> dict:
    r"""The L1 photometric loss of the paper, on the centre of the patch (``crop`` pixels cut per side).

    :math:`\mathcal{L} = \frac{1}{N}\sum |c^f - c^{\text{target}}|`.

    Shapes:
        pred, target: (B, 3, h, w) -> dict(l1=(), total=())

    Raises:
        ValueError: shapes differ, or ``crop`` leaves nothing.
    """
    dims = check_shape(pred, "B C h w", "pred")
    check_shape(target, "B C h w", "target", dims)
    if crop < 0 or 2 * crop >= min(dims["h"], dims["w"]):
        raise ValueError(f"crop: expected 0 <= crop < {min(dims['h'], dims['w']) / 2}, received {crop}")
    sl = slice(crop, pred.shape[-1] - crop if crop else None)
    sr = slice(crop, pred.shape[-2] - crop if crop else None)
    l1 = (pred[..., sr, sl].float() - target[..., sr, sl].float()).abs().mean()
    return {"l1": l1, "total": l1}


# ----------------------------------------------------------------------------------------------
# Data and training
# ----------------------------------------------------------------------------------------------


def make_data(cfg: Config, device=None, progress: bool = False):
    """Render the training and the held-out scenes of ``cfg``.

    Shapes:
        returns (train, test): two :class:`lessons.data.scenes.SceneViews`

    Raises:
        ValueError: bad sizes in ``cfg``.
    """
    kw = dict(image_size=cfg.image_size, n_inputs=cfg.n_inputs, baseline=cfg.baseline, fov_deg=cfg.fov_deg,
              supersample=cfg.supersample, device=device, progress=progress)
    return scenes.make_scenes(cfg.n_train_scenes, "train", **kw), scenes.make_scenes(cfg.n_test_scenes, "test", **kw)


def sample_patches(views: scenes.SceneViews, depths: torch.Tensor, patch: int, context: int, batch: int,
                   generator: torch.Generator | None = None):
    """A batch of random target patches with their plane-sweep volumes (context included).

    A patch's top-left corner is drawn uniformly so the ``patch x patch`` centre lies inside the
    target image; its crop of side ``patch + 2 context`` may reach beyond it (the plane sweep is
    defined there too; the target is zero-padded, and the loss sees only the centre).

    Shapes:
        returns psv (B, D, V, 3, S, S), mask (B, D, V, 1, S, S), target (B, 3, S, S),
        S = patch + 2 context

    Raises:
        ValueError: the patch is larger than the image.
    """
    N, _, _, H, W = views.images.shape
    if patch > min(H, W):
        raise ValueError(f"patch: expected at most the image size {min(H, W)}, received {patch}")
    dev = views.images.device
    idx = torch.randint(N, (batch,), generator=generator).to(dev)
    corner = torch.stack([torch.randint(W - patch + 1, (batch,), generator=generator),
                          torch.randint(H - patch + 1, (batch,), generator=generator)], -1).to(dev)  # (B, 2) = (x, y)
    offset = (corner - context).to(views.K.dtype)
    S = patch + 2 * context
    H_all = sweep_homographies(views.K[idx], views.R[idx], views.t[idx], depths)  # (B, V, D, 3, 3)
    psv, mask = plane_sweep_volume(views.inputs[idx], crop_homographies(H_all, offset), S, S)
    padded = F.pad(views.target[idx], (context,) * 4)  # (B, 3, H + 2c, W + 2c)
    rows = (corner[:, 1, None] + torch.arange(S, device=dev))[:, None, :, None]  # (B, 1, S, 1)
    cols = (corner[:, 0, None] + torch.arange(S, device=dev))[:, None, None, :]  # (B, 1, 1, S)
    b = torch.arange(batch, device=dev)[:, None, None, None]
    c = torch.arange(padded.shape[1], device=dev)[None, :, None, None]
    target = padded[b, c, rows, cols]  # (B, 3, S, S)
    return psv, mask, target


@torch.no_grad()
def predict(model: DeepStereo, views: scenes.SceneViews, depths: torch.Tensor, chunk: int = 4) -> dict:
    """Run the model on whole target views (a few scenes at a time).

    Shapes:
        returns dict(rgb (N, 3, H, W), selection (N, D, H, W), depth (N, 1, H, W))
    """
    outs = {"rgb": [], "selection": [], "depth": []}
    H, W = views.images.shape[-2:]
    for s in range(0, len(views), chunk):  # a loop over chunks of scenes
        v = views.subset(slice(s, s + chunk))
        psv, mask = plane_sweep_volume(v.inputs, sweep_homographies(v.K, v.R, v.t, depths), H, W)
        out = model(psv, mask)
        outs["rgb"].append(out["rgb"].clamp(0, 1))
        outs["selection"].append(out["selection"])
        outs["depth"].append(expected_depth(out["selection"], depths))
    return {k: torch.cat(v) for k, v in outs.items()}


def train(cfg: Config, train_views: scenes.SceneViews, test_views: scenes.SceneViews | None = None,
          device=None, progress: bool = True, model: DeepStereo | None = None):
    """Train DeepStereo on random patches of the training scenes with the L1 loss.

    Every ``cfg.eval_every`` steps (and at the end) the PSNR and depth correlation on up to four
    held-out scenes are logged (``test_psnr``, ``test_depth_corr``) when ``test_views`` is given.

    Shapes:
        returns (model, History)
    """
    device = train_lib.pick_device(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = (model or DeepStereo(cfg.n_inputs, cfg.width)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = train_lib.grad_scaler(device)
    views = train_views.to(device)
    depths = inverse_depth_planes(cfg.near, cfg.far, cfg.planes, device=device)
    probe = None if test_views is None else test_views.subset(slice(0, 4)).to(device)

    def step(i):
        model.train()
        psv, mask, target = sample_patches(views, depths, cfg.patch, cfg.context, cfg.batch, gen)
        with train_lib.autocast(device):
            out = model(psv, mask)
        terms = loss(out["rgb"], target, crop=cfg.context)
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms["total"]).backward()
        scaler.step(opt)
        scaler.update()
        return {"l1": terms["l1"].detach()}

    def eval_fn(i):
        model.eval()
        out = predict(model, probe, depths)
        return {"test_psnr": metrics.psnr(out["rgb"], probe.target).mean(),
                "test_depth_corr": depth_correlation(out["depth"], probe.target_depth).mean()}

    history = train_lib.fit(step, cfg.steps, desc="DeepStereo", log_every=5, progress=progress,
                            eval_fn=eval_fn if probe is not None else None,
                            eval_every=cfg.eval_every if probe is not None else None)
    model.eval()
    return model, history


# ----------------------------------------------------------------------------------------------
# Baselines and evaluation
# ----------------------------------------------------------------------------------------------


def nearest_view(views: scenes.SceneViews) -> torch.Tensor:
    """Baseline: the input image whose camera centre is nearest to the target's, unwarped.

    Shapes:
        returns (N, 3, H, W)
    """
    C = geometry.camera_center(views.R, views.t)  # (N, 1+V, 3)
    k = (C[:, 1:] - C[:, :1]).norm(dim=-1).argmin(1)  # (N,)
    return views.inputs[torch.arange(len(views), device=k.device), k]


def single_plane(psv: torch.Tensor, mask: torch.Tensor, target: torch.Tensor):
    """Baseline: the mean of the inputs reprojected at ONE plane for the whole image, the best one.

    The plane is chosen per image with the target's help (highest PSNR): an upper bound of
    what any single-plane method can do.

    Shapes:
        psv: (N, D, V, 3, H, W); mask: (N, D, V, 1, H, W); target (N, 3, H, W)
        -> image (N, 3, H, W), plane index (N,)
    """
    mean, _, _ = plane_statistics(psv, mask)  # (N, D, 3, H, W)
    mse = (mean - target[:, None]).pow(2).mean((2, 3, 4))  # (N, D)
    best = mse.argmin(1)
    return mean[torch.arange(mean.shape[0], device=best.device), best], best


def variance_stereo(psv: torch.Tensor, mask: torch.Tensor, depths: torch.Tensor):
    """Baseline: classical plane-sweep stereo, winner-take-all on the variance across inputs.

    Per pixel, the plane where the (at least two) valid reprojected colours agree best,
    ``z* = argmin_z var_z``; the output is their mean there, and ``d_{z*}`` a depth map.

    Shapes:
        psv: (N, D, V, 3, H, W); mask: (N, D, V, 1, H, W); depths (D,)
        -> image (N, 3, H, W), depth (N, 1, H, W)
    """
    mean, var, count = plane_statistics(psv, mask)
    var = torch.where(count >= 2, var, torch.full_like(var, float("inf")))  # (N, D, 1, H, W)
    z = var.argmin(1, keepdim=True)  # (N, 1, 1, H, W)
    image = torch.gather(mean, 1, z.expand(-1, -1, mean.shape[2], -1, -1))[:, 0]  # (N, 3, H, W)
    return image, depths.to(psv)[z[:, 0]]


def depth_correlation(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    r"""Pearson correlation between two depth maps, per image.

    :math:`\rho = \frac{\sum (a - \bar a)(b - \bar b)}{\sqrt{\sum (a - \bar a)^2 \sum (b - \bar b)^2}}`
    over the pixels (0 when a map is constant).

    Shapes:
        pred, true: (N, 1, H, W) -> (N,)

    Raises:
        ValueError: shapes differ.
    """
    dims = check_shape(pred, "N 1 H W", "pred")
    check_shape(true, "N 1 H W", "true", dims)
    a = pred.flatten(1) - pred.flatten(1).mean(1, keepdim=True)
    b = true.flatten(1).to(a) - true.flatten(1).to(a).mean(1, keepdim=True)
    den = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-12), torch.zeros_like(den))


@torch.no_grad()
def evaluate(model: DeepStereo | None, views: scenes.SceneViews, cfg: Config, device=None) -> dict:
    """PSNR and SSIM of DeepStereo and the baselines on held-out views; depth correlations.

    Returns a dict with, per method (``deepstereo``, ``nearest_view``, ``single_plane``,
    ``variance_stereo``), ``psnr`` and ``ssim`` (means over the scenes), and
    ``depth_corr`` for ``deepstereo`` (expected depth) and ``variance_stereo``. Also, on the CPU,
    the per-scene tensors under ``"per_scene"``, the images under ``"images"``, the depth maps
    under ``"depth"`` and DeepStereo's selection map under ``"selection"``.
    """
    device = train_lib.pick_device(device)
    views = views.to(device)
    depths = inverse_depth_planes(cfg.near, cfg.far, cfg.planes, device=device)
    H, W = views.images.shape[-2:]
    images, extra = {}, {}
    images["nearest_view"] = nearest_view(views)
    singles, stereo, stereo_depth = [], [], []
    for s in range(0, len(views), 4):  # chunks of scenes
        v = views.subset(slice(s, s + 4))
        psv, mask = plane_sweep_volume(v.inputs, sweep_homographies(v.K, v.R, v.t, depths), H, W)
        singles.append(single_plane(psv, mask, v.target)[0])
        img, d = variance_stereo(psv, mask, depths)
        stereo.append(img)
        stereo_depth.append(d)
    images["single_plane"] = torch.cat(singles)
    images["variance_stereo"] = torch.cat(stereo)
    extra["variance_stereo"] = torch.cat(stereo_depth)
    if model is not None:
        model = model.to(device).eval()
        out = predict(model, views, depths)
        images["deepstereo"] = out["rgb"]
        extra["deepstereo"] = out["depth"]
        extra["selection"] = out["selection"]
    results, per_scene = {}, {}
    for name, img in images.items():
        p, s = metrics.psnr(img, views.target), metrics.ssim(img, views.target)
        per_scene[name] = {"psnr": p, "ssim": s}
        results[name] = {"psnr": float(p.mean()), "ssim": float(s.mean())}
    for name in ("deepstereo", "variance_stereo"):
        if name in extra:
            c = depth_correlation(extra[name], views.target_depth)
            per_scene[name]["depth_corr"] = c
            results[name]["depth_corr"] = float(c.mean())
    cpu = lambda x: None if x is None else x.cpu()  # noqa: E731 - figures are drawn on the CPU
    results["per_scene"] = {k: {m: cpu(x) for m, x in v.items()} for k, v in per_scene.items()}
    results["images"] = {k: cpu(v) for k, v in images.items()}
    results["depth"] = {k: cpu(v) for k, v in extra.items() if k != "selection"}
    results["selection"] = cpu(extra.get("selection"))
    return results
