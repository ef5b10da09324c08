r"""Render for CNN: viewpoint estimation trained on rendered 3D model views (Su et al., ICCV 2015).

**The problem.** Given one image of an object of a known category, predict the camera's
viewpoint: azimuth :math:`\theta`, elevation :math:`\phi` and in-plane rotation :math:`\psi`
(``book/notation.md``: the camera sits at ``C = d (cos(el) sin(az), sin(el), cos(el) cos(az))``
looking at the object, then turns by ``psi`` about its optical axis). Labelled photographs are
scarce (PASCAL 3D+ has a few thousand per category); renders of 3D models are free and their
labels exact. The paper renders 2.4 million images (viewpoints from the statistics of real
photos, random lights, backgrounds and truncation: :mod:`lessons.data.renders`) and trains a
CNN on them.

**Viewpoint as classification.** Each angle is cut into bins (360 for :math:`\theta`, 180 for
:math:`\phi`, 360 for :math:`\psi`: one degree each) and a softmax over the bins predicts it.
A classifier, unlike a regressor, can say "front or back, not in between" when the image is
ambiguous, and its prediction is the arg-max bin's centre.

**Geometry-aware soft loss.** Plain cross-entropy punishes a prediction one degree off as hard
as one 180 degrees off. The paper weighs every bin by its closeness to the true bin :math:`v_s`:

.. math:: L_{vp}(\{s\}) = -\sum_{s} \sum_{v \in \mathcal V} e^{-d(v, v_s)/\sigma} \log P_v(s; c_s),

:math:`d` the circular distance between bins (azimuth and in-plane angles live on a circle;
elevation, on ``[-90, 90]`` degrees, uses the plain distance here: see :func:`bin_distance`),
:math:`P_v(s; c_s)` the softmax probability of bin :math:`v` from the classifier of the
sample's class :math:`c_s`. As :math:`\sigma \to 0` the weights become one-hot and the loss is
cross-entropy (:func:`geometry_aware_loss` with ``sigma=0``).

**Class-dependent heads.** One shared convolutional trunk (the paper: AlexNet conv1-fc7), then
one output layer *per category* with its own 360 + 180 + 360 bins: a chair's "front" and a
table's "front" need not look alike. Batched as one ``Linear`` with ``N_cls x (360+180+360)``
outputs from which each sample gathers its category's block (:class:`ViewpointHeads`).

**Evaluation.** The geodesic distance between predicted and true camera rotations,
:math:`\Delta(R_1, R_2) = \|\log(R_1^\top R_2)\|_F / \sqrt 2`; :math:`\mathrm{Acc}_{\pi/6}` is
the fraction with :math:`\Delta < \pi/6`, MedErr the median in degrees
(:func:`lessons.metrics.viewpoint_metrics`), per category and averaged over categories. Paper
(PASCAL 3D+, 12 categories): Acc_pi/6 0.82, MedErr 11.7 degrees.

Reference: H. Su, C. R. Qi, Y. Li, L. J. Guibas, "Render for CNN: Viewpoint Estimation in Images
Using CNNs Trained with Rendered 3D Model Views", ICCV 2015.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from lessons import geometry, metrics, train as train_mod
from lessons.checks import check_dtype, check_floating, check_shape
from lessons.data import photo, renders
from lessons.data import shapes as shapes_mod

__all__ = [
    "Config",
    "ANGLES",
    "CIRCULAR",
    "class_index",
    "angle_to_bin",
    "bin_to_angle",
    "viewpoint_to_bins",
    "bins_to_viewpoint",
    "bin_distance",
    "soft_targets",
    "geometry_aware_loss",
    "Trunk",
    "ViewpointHeads",
    "RenderForCNN",
    "viewpoint_loss",
    "make_datasets",
    "train",
    "predict",
    "prior_mode",
    "evaluate_viewpoints",
    "evaluate",
]

ANGLES = ("azimuth", "elevation", "inplane")
CIRCULAR = (True, False, True)  # azimuth and in-plane live on a circle, elevation on [-90, 90] degrees


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass
class Config:
    """Render for CNN's settings; the defaults are the ``gpu`` profile (the paper's idea at our scale)."""

    categories: tuple = shapes_mod.CATEGORIES  # paper: 12 PASCAL 3D+ categories; ours: 6 furniture
    image_size: int = 64  # pixels (paper: 227, AlexNet's input)
    azimuth_bins: int = 360  # paper: 360 bins of 1 degree
    elevation_bins: int = 180  # paper (slides): 180 bins over [-90, 90] degrees
    inplane_bins: int = 360  # paper: 360 bins
    sigma_azimuth: float = 5.0  # soft-loss bandwidth, degrees (authors' released training code)
    sigma_elevation: float = 3.0  # degrees (authors' code)
    sigma_inplane: float = 3.0  # degrees (authors' code)
    channels: tuple = (32, 64, 128, 256)  # trunk widths, one conv block and 2x2 pool each (paper: AlexNet)
    features: int = 512  # width of the last shared layer (paper: fc7, 4096)
    dropout: float = 0.3  # before the heads (paper: AlexNet's dropout 0.5)
    class_dependent: bool = True  # paper: one output layer per category
    soft_loss: bool = True  # paper: the geometry-aware loss; False = plain cross-entropy
    truncation: float = 0.2  # synthetic crops shifted by up to 20 % (paper: KDE of PASCAL truncations)
    texture: float = 0.5  # solid-noise texture strength on the synthetic albedo
    textured_fraction: float = 0.8  # textured synthetic backgrounds (paper: a SUN photo behind every render)
    antialias: int = 2  # supersampling of the renderer
    n_train: int = 40000  # synthetic training renders (paper: 2.4 million)
    n_test: int = 1200  # held-out synthetic test renders (test-split shapes)
    n_real_train: int = 300  # the small "real" training set (PASCAL 3D+ train: a few thousand)
    n_real_test: int = 1200  # held-out "real" test images
    steps: int = 5000  # optimisation steps per experiment
    batch_size: int = 128  # images per step
    lr: float = 2e-3  # AdamW learning rate, one-cycle schedule (paper: SGD fine-tuning of AlexNet)
    weight_decay: float = 1e-4  # AdamW weight decay
    seed: int = 0  # seeds the data sets and the models
    # Sizes. quick (CI, <= 60 s): 32 px, flat backgrounds, no crops or texture (a 300-step model
    # cannot yet find an object on a textured background: a smoke test of the easy end). cpu (<= 5 min on 2
    # cores): the full pipeline at 32 px; the whole notebook measured 338 s here on a shared,
    # loaded machine (1 thread; renders ~0.002 s an image, steps ~50 ms). gpu (<= 10 min on a T4): 64 px, a 4x larger trunk,
    # batch 128: ~46 GFLOP a step (forward + backward), ~20 ms on a T4 with AMP, and ~2000
    # renders/s, so 43 k renders ~ 25 s + 5 runs x 5000 steps x 20 ms ~ 8.5 min (pending: not run).
    PROFILES: ClassVar[dict] = {
        "quick": dict(image_size=32, channels=(16, 32, 64), features=128, antialias=1, truncation=0.0, texture=0.0,
                      textured_fraction=0.0, n_train=3000, n_test=300, n_real_train=120, n_real_test=300, steps=300,
                      batch_size=48, lr=5e-3),
        "cpu": dict(image_size=32, channels=(16, 32, 64), features=128, antialias=1, n_train=8000, n_test=480,
                    n_real_train=120, n_real_test=480, steps=900, batch_size=64, lr=3e-3),
    }

    @property
    def bins(self) -> tuple:
        """(azimuth, elevation, in-plane) bin counts."""
        return (self.azimuth_bins, self.elevation_bins, self.inplane_bins)

    @property
    def sigmas_deg(self) -> tuple:
        """(azimuth, elevation, in-plane) soft-loss bandwidths in degrees."""
        return (self.sigma_azimuth, self.sigma_elevation, self.sigma_inplane)


# ----------------------------------------------------------------------------------------------
# The paper's operations: bins, distances, the soft loss
# ----------------------------------------------------------------------------------------------


def class_index(labels: torch.Tensor, categories) -> torch.Tensor:
    """Map category labels (indices into :data:`lessons.data.shapes.CATEGORIES`) to ``0..len(categories)-1``.

    Shapes:
        labels: (...) int64 -> (...) int64

    Raises:
        ValueError: a label's category is not in ``categories``, or ``labels`` is not integer.
    """
    check_dtype(labels, (torch.int64, torch.int32), "labels")
    table = torch.full((len(shapes_mod.CATEGORIES),), -1, dtype=torch.int64, device=labels.device)
    for i, c in enumerate(categories):  # a loop over the handful of categories
        table[shapes_mod.CATEGORIES.index(c)] = i
    out = table[labels.long()]
    if bool((out < 0).any()):
        missing = sorted({shapes_mod.CATEGORIES[int(v)] for v in labels[out < 0].unique()})
        raise ValueError(f"labels: expected categories in {tuple(categories)}, received {missing}")
    return out


def _bin_width(num_bins: int, circular: bool) -> float:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins: expected a positive int, received {num_bins!r}")
    return (2 * math.pi if circular else math.pi) / num_bins


def angle_to_bin(angle: torch.Tensor, num_bins: int, circular: bool = True) -> torch.Tensor:
    """The bin of an angle (radians).

    Circular (azimuth, in-plane): bins of width ``w = 2 pi / B`` centred on ``0, w, 2w, ...``:
    ``i = round(a / w) mod B``. Not circular (elevation): ``B`` bins of width ``w = pi / B``
    over ``[-pi/2, pi/2]``: ``i = clamp(floor((a + pi/2) / w), 0, B - 1)``.

    Shapes:
        angle: (...) -> (...) int64

    Raises:
        ValueError: ``angle`` is not floating point, or ``num_bins`` is not a positive int.
    """
    check_floating(angle, "angle")
    w = _bin_width(num_bins, circular)
    if circular:
        return torch.remainder(torch.round(angle / w), num_bins).long()
    return torch.floor((angle + math.pi / 2) / w).clamp(0, num_bins - 1).long()


def bin_to_angle(index: torch.Tensor, num_bins: int, circular: bool = True, dtype=torch.float32) -> torch.Tensor:
    """The centre of a bin (radians): ``i w`` wrapped to ``(-pi, pi]`` (circular), else ``-pi/2 + (i + 1/2) w``.

    Shapes:
        index: (...) int64 -> (...) ``dtype``

    Raises:
        ValueError: ``index`` is not an integer tensor, or ``num_bins`` is not a positive int.
    """
    check_dtype(index, (torch.int64, torch.int32), "index")
    w = _bin_width(num_bins, circular)
    i = index.to(dtype)
    if circular:
        a = i * w
        return math.pi - torch.remainder(math.pi - a, 2 * math.pi)
    return -math.pi / 2 + (i + 0.5) * w


def viewpoint_to_bins(viewpoint: torch.Tensor, bins) -> torch.Tensor:
    """Bins of ``(azimuth, elevation, inplane)``.

    Shapes:
        viewpoint: (..., 3) radians -> (..., 3) int64

    Raises:
        ValueError: ``viewpoint`` is not a floating ``(..., 3)`` tensor, or ``bins`` has not 3 entries.
    """
    check_shape(viewpoint, "* 3", "viewpoint")
    if len(bins) != 3:
        raise ValueError(f"bins: expected 3 bin counts (azimuth, elevation, inplane), received {bins!r}")
    return torch.stack([angle_to_bin(viewpoint[..., k], bins[k], CIRCULAR[k]) for k in range(3)], -1)


def bins_to_viewpoint(index: torch.Tensor, bins, dtype=torch.float32) -> torch.Tensor:
    """Bin centres of ``(azimuth, elevation, inplane)`` bins.

    Shapes:
        index: (..., 3) int64 -> (..., 3) radians

    Raises:
        ValueError: ``index`` is not an integer ``(..., 3)`` tensor, or ``bins`` has not 3 entries.
    """
    check_shape(index, "* 3", "index")
    if len(bins) != 3:
        raise ValueError(f"bins: expected 3 bin counts (azimuth, elevation, inplane), received {bins!r}")
    return torch.stack([bin_to_angle(index[..., k], bins[k], CIRCULAR[k], dtype) for k in range(3)], -1)


def bin_distance(i: torch.Tensor, j: torch.Tensor, num_bins: int, circular: bool = True) -> torch.Tensor:
    """Distance between bins, in bins: ``min(|i - j|, B - |i - j|)`` on a circle, else ``|i - j|``.

    Elevation is not circular: bins 0 and B - 1 are straight down and straight up, 180 degrees
    apart, and the circle's wrap would call them neighbours.

    Shapes:
        i, j: integer tensors broadcasting to (...) -> (...) int64

    Raises:
        ValueError: ``i`` or ``j`` is not an integer tensor.
    """
    check_dtype(i, (torch.int64, torch.int32), "i")
    check_dtype(j, (torch.int64, torch.int32), "j")
    d = (i.long() - j.long()).abs()
    return torch.minimum(d, num_bins - d) if circular else d


def soft_targets(target: torch.Tensor, num_bins: int, sigma: float, circular: bool = True, dtype=torch.float32) -> torch.Tensor:
    """The paper's weights ``w_v = exp(-d(v, v_s) / sigma)`` over all bins ``v`` (sigma in bins).

    ``sigma <= 0`` gives the one-hot weights ``[v = v_s]`` (the limit sigma -> 0), i.e. cross-entropy.

    Shapes:
        target: (...) int64 bin of each sample -> (..., num_bins)

    Raises:
        ValueError: ``target`` is not an integer tensor.
    """
    check_dtype(target, (torch.int64, torch.int32), "target")
    v = torch.arange(num_bins, device=target.device)
    d = bin_distance(v, target.unsqueeze(-1), num_bins, circular).to(dtype)  # (..., B)
    if sigma <= 0:
        return (d == 0).to(dtype)
    return torch.exp(-d / sigma)


def geometry_aware_loss(logits: torch.Tensor, target: torch.Tensor, sigma: float, circular: bool = True) -> torch.Tensor:
    r"""``L = -(1/N) sum_s sum_v exp(-d(v, v_s)/sigma) log P_v(s)`` with ``P = softmax(logits)``.

    The weights are the paper's, unnormalised; since ``d`` is shift-invariant on a circle, their
    sum is the same for every ``v_s`` and only scales the loss. ``sigma = 0``: cross-entropy.

    Shapes:
        logits: (N, B) float; target: (N,) int64 bins -> () the mean over the N samples

    Raises:
        ValueError: wrong shapes or dtypes.
    """
    dims = check_shape(logits, "N B", "logits")
    check_floating(logits, "logits")
    check_shape(target, "N", "target", dims)
    w = soft_targets(target, logits.shape[1], sigma, circular, logits.dtype)  # (N, B)
    return -(w * F.log_softmax(logits, dim=1)).sum(1).mean()


# ----------------------------------------------------------------------------------------------
# The network: a shared trunk and class-dependent heads
# ----------------------------------------------------------------------------------------------


class Trunk(nn.Module):
    """The shared layers: ``len(channels)`` blocks (3x3 conv, batch norm, ReLU, 2x2 max pool), then
    a fully connected layer (the paper: AlexNet conv1 - fc7).

    Shapes:
        images (B, 3, S, S) in [0, 1] -> features (B, features); ``S`` divisible by ``2^len(channels)``

    Raises:
        ValueError: ``image_size`` not divisible by ``2^len(channels)``; wrong input shape.
    """

    def __init__(self, image_size: int, channels=(32, 64, 128, 256), features: int = 512, dropout: float = 0.0):
        super().__init__()
        if image_size % (2 ** len(channels)):
            raise ValueError(f"image_size: expected a multiple of {2 ** len(channels)}, received {image_size}")
        self.image_size = image_size
        layers, c_in = [], 3
        for c in channels:  # (B, c, S / 2^k, S / 2^k) after block k
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        side = image_size // 2 ** len(channels)
        self.fc = nn.Sequential(
            nn.Flatten(),  # (B, C * side^2)
            nn.Linear(c_in * side * side, features),  # (B, features)
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_shape(images, f"B 3 {self.image_size} {self.image_size}", "images")
        return self.fc(self.conv(images - 0.5))


class ViewpointHeads(nn.Module):
    """Per-category softmax classifiers over the three angles' bins, batched.

    Class-dependent: one ``Linear(features, N_cls * T)`` (``T = B_az + B_el + B_ip``); sample
    ``s`` keeps block ``c_s`` of its output (a ``gather``, no loop over samples). Shared: one
    ``Linear(features, T)`` for every category (the ablation).

    Shapes:
        features (B, F), category (B,) int64 in ``[0, num_classes)`` ->
        {"azimuth": (B, B_az), "elevation": (B, B_el), "inplane": (B, B_ip)} logits

    Raises:
        ValueError: wrong shapes, or a category outside ``[0, num_classes)``.
    """

    def __init__(self, features: int, num_classes: int, bins, class_dependent: bool = True):
        super().__init__()
        self.num_classes, self.bins, self.class_dependent = num_classes, tuple(bins), class_dependent
        total = sum(self.bins)
        self.linear = nn.Linear(features, (num_classes if class_dependent else 1) * total)

    def forward(self, features: torch.Tensor, category: torch.Tensor) -> dict:
        dims = check_shape(features, "B F", "features")
        check_shape(category, "B", "category", dims)
        out = self.linear(features)  # (B, N_cls * T) or (B, T)
        if self.class_dependent:
            if bool(((category < 0) | (category >= self.num_classes)).any()):
                raise ValueError(f"category: expected values in [0, {self.num_classes}), received {category.tolist()}")
            T = sum(self.bins)
            out = out.view(-1, self.num_classes, T)  # (B, N_cls, T)
            out = torch.gather(out, 1, category.long().view(-1, 1, 1).expand(-1, 1, T)).squeeze(1)  # (B, T)
        return dict(zip(ANGLES, out.split(self.bins, dim=1)))


class RenderForCNN(nn.Module):
    """Trunk + class-dependent viewpoint heads, built from a :class:`Config`.

    Shapes:
        images (B, 3, S, S), category (B,) int64 class indices -> dict of three logits tensors
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.bins = cfg.bins
        self.trunk = Trunk(cfg.image_size, cfg.channels, cfg.features, cfg.dropout)
        self.heads = ViewpointHeads(cfg.features, len(cfg.categories), cfg.bins, cfg.class_dependent)

    def forward(self, images: torch.Tensor, category: torch.Tensor) -> dict:
        return self.heads(self.trunk(images), category)


def viewpoint_loss(logits: dict, viewpoint: torch.Tensor, cfg: Config) -> dict:
    """The loss of one batch: the soft loss (or cross-entropy when ``cfg.soft_loss`` is False) of each angle.

    Bandwidths in degrees become bins: ``sigma_bins = sigma_deg / bin width in degrees``.

    Shapes:
        logits: {"azimuth": (N, B_az), "elevation": (N, B_el), "inplane": (N, B_ip)};
        viewpoint: (N, 3) radians -> {"azimuth", "elevation", "inplane", "loss"}: () each

    Raises:
        ValueError: wrong shapes.
    """
    check_shape(viewpoint, "N 3", "viewpoint")
    target = viewpoint_to_bins(viewpoint, cfg.bins)  # (N, 3)
    out = {}
    for k, name in enumerate(ANGLES):
        width_deg = math.degrees(_bin_width(cfg.bins[k], CIRCULAR[k]))
        sigma = cfg.sigmas_deg[k] / width_deg if cfg.soft_loss else 0.0
        out[name] = geometry_aware_loss(logits[name].float(), target[:, k], sigma, CIRCULAR[k])
    out["loss"] = out["azimuth"] + out["elevation"] + out["inplane"]
    return out


# ----------------------------------------------------------------------------------------------
# Data, training, evaluation
# ----------------------------------------------------------------------------------------------


def make_datasets(cfg: Config, progress: bool = True, device=None) -> dict:
    """The four sets of the chapter, each a dict of tensors (see :func:`lessons.data.renders.make_render_set`).

    ``synthetic_train`` / ``synthetic_test``: renders of train / test shapes (the Render for CNN
    pipeline: viewpoint prior, random lights, procedural backgrounds, truncation, texture);
    ``real_train`` / ``real_test``: "photographs" of other train / test shapes
    (:func:`lessons.data.photo.make_photo_set`). Different seeds for each set.

    Shapes:
        returns {name: {field: (N, ...)}}
    """
    common = dict(categories=cfg.categories, image_size=cfg.image_size, progress=progress, device=device)
    synth = dict(truncation=cfg.truncation, texture=cfg.texture, antialias=cfg.antialias,
                 textured_fraction=cfg.textured_fraction, **common)
    return {
        "synthetic_train": renders.make_render_set(n=cfg.n_train, split="train", seed=cfg.seed, **synth),
        "synthetic_test": renders.make_render_set(n=cfg.n_test, split="test", seed=cfg.seed + 1, **synth),
        "real_train": photo.make_photo_set(n=cfg.n_real_train, split="train", seed=cfg.seed + 2, antialias=cfg.antialias, **common),
        "real_test": photo.make_photo_set(n=cfg.n_real_test, split="test", seed=cfg.seed + 3, antialias=cfg.antialias, **common),
    }


def _as_sources(data) -> list:
    sources = [data] if isinstance(data, dict) else list(data)
    if not sources:
        raise ValueError("data: expected a dict of tensors or a non-empty list of them, received an empty list")
    for k, d in enumerate(sources):
        for key in ("image", "viewpoint", "category"):
            if key not in d:
                raise ValueError(f"data[{k}]: expected the keys image, viewpoint, category; missing {key!r}")
    return sources


def train(cfg: Config, data, model: RenderForCNN | None = None, progress: bool = True, desc: str = "train",
          device=None, eval_fn=None, eval_every: int | None = None):
    """Train a :class:`RenderForCNN` on ``data`` for ``cfg.steps`` AdamW steps (cosine learning rate).

    ``data``: a dict of tensors (``image``, ``viewpoint``, ``category``) or a list of them; each
    batch then takes an equal share from every set (e.g. a small real set and a large
    synthetic one). Mixed precision on CUDA (:func:`lessons.train.autocast`); the loss in float32.

    Shapes:
        returns (model, History) with the loss terms logged

    Raises:
        ValueError: ``data`` lacks a key.
    """
    sources = _as_sources(data)
    device = train_mod.pick_device(device)
    gen = train_mod.seed_everything(cfg.seed)
    model = (RenderForCNN(cfg) if model is None else model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1), pct_start=0.15)
    scaler = train_mod.grad_scaler(device)
    tensors = [{k: d[k].to(device) for k in ("image", "viewpoint", "category")} for d in sources]
    for d in tensors:
        d["category"] = class_index(d["category"], cfg.categories)
    shares = [cfg.batch_size // len(tensors) + (k < cfg.batch_size % len(tensors)) for k in range(len(tensors))]

    def step(i):
        model.train()
        parts = []
        for d, m in zip(tensors, shares):  # a loop over the (one or two) sources
            idx = torch.randint(d["image"].shape[0], (m,), generator=gen).to(device)
            parts.append({k: v[idx] for k, v in d.items()})
        batch = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        with train_mod.autocast(device):
            logits = model(batch["image"], batch["category"])
        terms = viewpoint_loss(logits, batch["viewpoint"], cfg)
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        return {k: v.detach() for k, v in terms.items()}

    history = train_mod.fit(step, cfg.steps, desc=desc, progress=progress, log_every=5, eval_fn=eval_fn, eval_every=eval_every)
    model.eval()
    return model, history


@torch.no_grad()
def predict(model: RenderForCNN, images: torch.Tensor, category: torch.Tensor, categories, batch_size: int = 256) -> dict:
    """The arg-max bin centre of each angle, and the three softmax distributions.

    Shapes:
        images (N, 3, S, S); category (N,) labels (indices into shapes.CATEGORIES) ->
        {"viewpoint": (N, 3) radians, "azimuth": (N, B_az), "elevation": (N, B_el), "inplane": (N, B_ip)}

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(images, "N 3 S S", "images")
    check_shape(category, "N", "category", dims)
    model.eval()
    device = next(model.parameters()).device
    cls = class_index(category, categories)
    probs = {name: [] for name in ANGLES}
    for s in range(0, images.shape[0], batch_size):  # chunks of a few hundred images
        logits = model(images[s : s + batch_size].to(device), cls[s : s + batch_size].to(device))
        for name in ANGLES:
            probs[name].append(F.softmax(logits[name].float(), dim=1).cpu())
    probs = {k: torch.cat(v) for k, v in probs.items()}
    index = torch.stack([probs[name].argmax(1) for name in ANGLES], -1)  # (N, 3)
    return {"viewpoint": bins_to_viewpoint(index, model.bins), **probs}


def prior_mode(prior: renders.ViewpointPrior | None = None) -> torch.Tensor:
    """The trivial baseline's answer: the prior's most likely viewpoint (front view, mean elevation, no roll).

    Shapes:
        returns (3,) radians
    """
    prior = renders.ViewpointPrior() if prior is None else prior
    main = max(prior.azimuth_modes, key=lambda m: m[2])
    return torch.tensor([main[0], prior.elevation_mean, 0.0])


def evaluate_viewpoints(pred: torch.Tensor, true: torch.Tensor, category: torch.Tensor, categories) -> dict:
    """Acc_pi/6 and MedErr (degrees) per category and their mean over categories (the paper's table).

    Rotations come from :func:`lessons.geometry.camera_from_viewpoint`; numbers from
    :func:`lessons.metrics.viewpoint_metrics`. Also the azimuth-only accuracy (circular error < pi/6).

    Shapes:
        pred, true: (N, 3) radians (a (3,) ``pred`` is broadcast); category (N,) labels ->
        {category name: {"acc_pi6", "med_err_deg", "acc_azimuth_pi6", "n"}, ..., "mean": {...}}

    Raises:
        ValueError: wrong shapes.
    """
    dims = check_shape(true, "N 3", "true")
    check_shape(category, "N", "category", dims)
    if pred.dim() == 1:
        check_shape(pred, "3", "pred")
        pred = pred.to(true).expand_as(true)
    check_shape(pred, "N 3", "pred", dims)
    pred, true = pred.double(), true.double()
    R_pred, _ = geometry.camera_from_viewpoint(pred[:, 0], pred[:, 1], pred[:, 2])
    R_true, _ = geometry.camera_from_viewpoint(true[:, 0], true[:, 1], true[:, 2])
    daz = torch.remainder(pred[:, 0] - true[:, 0] + math.pi, 2 * math.pi) - math.pi
    cls = class_index(category, categories)
    out = {}
    for i, name in enumerate(categories):  # a loop over the categories
        m = cls == i
        if not bool(m.any()):
            continue
        out[name] = {**metrics.viewpoint_metrics(R_pred[m], R_true[m]),
                     "acc_azimuth_pi6": float((daz[m].abs() < math.pi / 6).double().mean()), "n": int(m.sum())}
    keys = ("acc_pi6", "med_err_deg", "acc_azimuth_pi6")
    out["mean"] = {k: sum(v[k] for v in out.values()) / len(out) for k in keys}
    return out


def evaluate(model: RenderForCNN, data: dict, categories) -> dict:
    """:func:`evaluate_viewpoints` of the model's predictions on a set (``image``, ``viewpoint``, ``category``)."""
    pred = predict(model, data["image"], data["category"], categories)["viewpoint"]
    return evaluate_viewpoints(pred, data["viewpoint"], data["category"], categories)
