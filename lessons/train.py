"""The training loop every chapter shares: device, seeding, progress, metric history, checkpoints.

A chapter writes one function that does a single optimisation step and returns its numbers;
:func:`fit` runs it with a progress bar and records everything in a :class:`History`::

    device = train.pick_device()                   # cuda if there is one, else cpu
    gen = train.seed_everything(0)                 # python, numpy, torch (and cuda) seeded

    def step(i):
        x, y = sample_batch(gen)
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        return {"loss": loss}                      # 0-d tensors or floats

    history = train.fit(step, cfg.steps, eval_fn=evaluate, eval_every=100)
    history.plot(logy=True)
    train.save_checkpoint("model.safetensors", model, {"history": history.to_dict()})

Checkpoints are `safetensors <https://huggingface.co/docs/safetensors>`_ files: tensors and a
JSON string, never a pickle, so loading one cannot run code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from pathlib import Path

import torch

__all__ = [
    "pick_device",
    "seed_everything",
    "History",
    "fit",
    "amp_dtype",
    "autocast",
    "grad_scaler",
    "save_checkpoint",
    "load_checkpoint",
    "count_parameters",
]

# --------------------------------------------------------------------------------------------
# Device and seeding
# --------------------------------------------------------------------------------------------


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``cuda`` when available, else ``cpu``; ``prefer`` overrides.

    ``prefer`` may be ``None`` or ``"auto"`` (choose), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
    (or a ``torch.device``). Apple's ``mps`` is not offered: the course is tested on CPU and
    CUDA only.

    Shapes:
        returns: a ``torch.device``

    Raises:
        ValueError: ``prefer`` names an unknown device, or CUDA is asked for but not available
            (or the index is out of range).
    """
    if prefer is None or (isinstance(prefer, str) and prefer.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(prefer.strip().lower() if isinstance(prefer, str) else prefer)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"prefer: expected None, 'auto', 'cpu', 'cuda' or 'cuda:N', received {prefer!r}") from err
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"prefer: expected None, 'auto', 'cpu', 'cuda' or 'cuda:N', received {prefer!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"prefer: {prefer!r} asked for, but torch.cuda.is_available() is False")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"prefer: {prefer!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy, torch and every CUDA device; return a seeded generator.

    Pass the returned CPU ``torch.Generator`` to the data functions (``torch.randn(...,
    generator=gen)``) so the data stream does not depend on how many random numbers the model
    drew. Bitwise reproducibility on CUDA also needs deterministic kernels
    (``torch.use_deterministic_algorithms``), which this does not switch on.

    Shapes:
        returns: a ``torch.Generator`` on the CPU, seeded with ``seed``

    Raises:
        ValueError: ``seed`` is not an integer in ``[0, 2**32)`` (NumPy's range).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed: expected an integer in [0, 2**32), received {seed!r}")
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------
# Metric history
# --------------------------------------------------------------------------------------------


def _scalar(name: str, value) -> float:
    """A float from a Python/NumPy number or a one-element tensor."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name}: expected a number or a 0-d tensor, received a tensor of shape {tuple(value.shape)}")
        return float(value.detach().item())
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a number or a 0-d tensor, received {type(value).__name__}") from err


class History:
    """Named series of ``(step, value)``: what :func:`fit` records and plots.

    >>> h = History()
    >>> h.log(0, loss=torch.tensor(2.0), lr=1e-3)
    >>> h.log(1, loss=1.5)
    >>> h["loss"], h.steps("loss"), h.last("loss")
    ([2.0, 1.5], [0, 1], 1.5)

    Each name keeps its own steps, so metrics logged at different rates (training loss every
    step, validation every 100) live side by side.
    """

    def __init__(self) -> None:
        self._steps: dict[str, list[int]] = {}
        self._values: dict[str, list[float]] = {}

    def log(self, step: int, **metrics) -> None:
        """Record ``metrics`` (floats, NumPy scalars or 0-d tensors) at ``step``.

        Raises:
            ValueError: a value is not a scalar.
        """
        converted = {k: _scalar(k, v) for k, v in metrics.items()}  # all or nothing
        for k, v in converted.items():
            self._steps.setdefault(k, []).append(int(step))
            self._values.setdefault(k, []).append(v)

    def keys(self) -> list[str]:
        """The metric names, in the order they were first logged."""
        return list(self._values)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __len__(self) -> int:
        return len(self._values)

    def _get(self, name: str) -> str:
        if name not in self._values:
            raise KeyError(f"{name!r}: no such metric; logged: {self.keys()}")
        return name

    def __getitem__(self, name: str) -> list[float]:
        """The values logged for ``name`` (a copy)."""
        return list(self._values[self._get(name)])

    def steps(self, name: str) -> list[int]:
        """The steps at which ``name`` was logged (a copy)."""
        return list(self._steps[self._get(name)])

    def last(self, name: str) -> float:
        """The latest value of ``name``."""
        return self._values[self._get(name)][-1]

    def next_step(self) -> int:
        """One past the largest step logged so far (0 when empty): where :func:`fit` resumes."""
        return max((s[-1] for s in self._steps.values() if s), default=-1) + 1

    def to_dict(self) -> dict:
        """``{name: {"steps": [...], "values": [...]}}``, plain JSON-serialisable lists."""
        return {k: {"steps": list(self._steps[k]), "values": list(self._values[k])} for k in self._values}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: an entry lacks ``steps`` or ``values`` or their lengths differ.
        """
        h = cls()
        for k, v in d.items():
            if not (isinstance(v, dict) and "steps" in v and "values" in v and len(v["steps"]) == len(v["values"])):
                raise ValueError(f"{k}: expected {{'steps': [...], 'values': [...]}} of equal length, received {v!r}")
            h._steps[k] = [int(s) for s in v["steps"]]
            h._values[k] = [float(x) for x in v["values"]]
        return h

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={self._values[k][-1]:.4g}@{self._steps[k][-1]}" for k in self._values if self._values[k])
        return f"History({items})"

    def plot(self, keys=None, ax=None, smooth: float = 0.0, logy: bool = False):
        """Plot the named series against step on one matplotlib axis; return the axis.

        ``smooth`` in ``[0, 1)`` is the factor of a debiased exponential moving average
        (TensorBoard's slider): the raw curve is drawn faintly under the smoothed one.

        Raises:
            ValueError: a key was never logged, or ``smooth`` is outside ``[0, 1)``.
        """
        import matplotlib.pyplot as plt

        keys = self.keys() if keys is None else ([keys] if isinstance(keys, str) else list(keys))
        missing = [k for k in keys if k not in self._values]
        if missing:
            raise ValueError(f"keys: expected names among {self.keys()}, received unknown {missing}")
        if not 0.0 <= smooth < 1.0:
            raise ValueError(f"smooth: expected a number in [0, 1), received {smooth}")
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        for k in keys:
            steps, values = self._steps[k], self._values[k]
            if smooth > 0:
                (line,) = ax.plot(steps, values, alpha=0.3)
                ema, avg = [], 0.0
                for n, v in enumerate(values, 1):  # a loop over logged points, not over data
                    avg = smooth * avg + (1 - smooth) * v
                    ema.append(avg / (1 - smooth**n))
                ax.plot(steps, ema, color=line.get_color(), label=k)
            else:
                ax.plot(steps, values, label=k)
        ax.set_xlabel("step")
        if logy:
            ax.set_yscale("log")
        if keys:
            ax.legend()
        ax.grid(True, alpha=0.3)
        return ax


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _check_metrics(where: str, metrics) -> dict:
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise ValueError(f"{where}: expected a dict of metrics (or None), received {type(metrics).__name__}")
    return metrics


def fit(
    step_fn,
    steps: int,
    desc: str = "train",
    log_every: int = 1,
    history: History | None = None,
    progress: bool = True,
    eval_fn=None,
    eval_every: int | None = None,
    start: int | None = None,
    postfix_interval: float = 0.25,
) -> History:
    """Run ``step_fn(step)`` for ``steps`` steps with a progress bar; return the :class:`History`.

    * ``step_fn(step) -> dict`` of floats or 0-d tensors (or ``None``): logged at every
      ``log_every``-th step and at the last one. Converting a CUDA tensor to a float waits
      for the GPU, so on fast GPU loops log every few steps.
    * ``eval_fn(step) -> dict``: run after steps ``eval_every - 1, 2 eval_every - 1, ...`` and
      after the last step (only after the last one when ``eval_every`` is ``None``); logged
      under its own names.
    * The bar (``tqdm.auto``: a widget in Jupyter, text elsewhere) shows the latest metrics,
      refreshed at most every ``postfix_interval`` seconds.
    * Passing a ``history`` continues it: steps resume at ``history.next_step()`` unless
      ``start`` says otherwise, so running a notebook cell again trains further.

    Shapes:
        returns: the ``History`` (the one passed in, when given)

    Raises:
        ValueError: ``steps < 0``, ``log_every < 1``, ``eval_every < 1``, ``eval_every``
            without ``eval_fn``, or a function returns something other than a dict of scalars.
    """
    from tqdm.auto import tqdm

    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected a non-negative integer, received {steps!r}")
    if not isinstance(log_every, int) or log_every < 1:
        raise ValueError(f"log_every: expected a positive integer, received {log_every!r}")
    if eval_every is not None and (not isinstance(eval_every, int) or eval_every < 1):
        raise ValueError(f"eval_every: expected a positive integer or None, received {eval_every!r}")
    if eval_every is not None and eval_fn is None:
        raise ValueError("eval_every: given, but eval_fn is None")
    history = History() if history is None else history
    start = history.next_step() if start is None else int(start)
    postfix: dict[str, float] = {}
    last_postfix = -math.inf
    bar = tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        for i in range(steps):
            step = start + i
            final = i == steps - 1
            metrics = _check_metrics("step_fn", step_fn(step))
            if metrics and (i % log_every == 0 or final):
                history.log(step, **metrics)
                postfix.update({k: history.last(k) for k in metrics})
            if eval_fn is not None and (final or (eval_every is not None and (i + 1) % eval_every == 0)):
                results = _check_metrics("eval_fn", eval_fn(step))
                if results:
                    history.log(step, **results)
                    postfix.update({k: history.last(k) for k in results})
            bar.update(1)
            now = time.monotonic()
            if postfix and (final or now - last_postfix >= postfix_interval):
                bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=final)
                last_postfix = now
    finally:
        bar.close()
    return history


# --------------------------------------------------------------------------------------------
# Mixed precision
# --------------------------------------------------------------------------------------------


def _bf16_supported() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.4 has no including_emulation
        return bool(torch.cuda.is_bf16_supported())


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype :func:`autocast` uses on ``device``: bf16 or fp16 on CUDA, ``None`` on CPU.

    bf16 where the GPU has it natively (Ampere and later: A100, H100, RTX 30xx+), else fp16
    (T4, V100), which needs a :func:`grad_scaler` to keep small gradients from underflowing.

    Raises:
        ValueError: ``device`` is not a device name.
    """
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected a torch.device or a device name, received {device!r}") from err
    if device.type != "cuda":
        return None
    return torch.bfloat16 if _bf16_supported() else torch.float16


def autocast(device: str | torch.device, enabled: bool = True):
    """A context manager for mixed precision: ``torch.autocast`` on CUDA, a no-op on CPU.

    When it pays: on a GPU with tensor cores (T4, V100, A100, H100), for models dominated by
    large matrix multiplications and convolutions (3D conv generators at 64^3, U-Nets on 128^2
    images), where it roughly halves memory and speeds steps up to 2-3x. It does not pay for
    small MLPs or 32^3 toy models (launch-bound), and CPU autocast is not used by the course.
    Compute losses outside (or in float32): autocast already runs reductions and ``log``,
    ``softmax``, ``binary_cross_entropy_with_logits`` in float32.

    Raises:
        ValueError: ``device`` is not a device name.
    """
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def grad_scaler(device: str | torch.device, enabled: bool = True) -> "torch.amp.GradScaler":
    """A ``GradScaler`` that is active only when :func:`autocast` uses float16 on ``device``.

    Disabled, it passes through (``scale(loss)`` is ``loss``, ``step`` is ``optimizer.step()``),
    so one training step serves every device::

        scaler = train.grad_scaler(device)
        with train.autocast(device):
            loss = ...
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update()

    Raises:
        ValueError: ``device`` is not a device name.
    """
    active = enabled and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda" if active else "cpu", enabled=active)


# --------------------------------------------------------------------------------------------
# Checkpoints (safetensors)
# --------------------------------------------------------------------------------------------

_META_KEY = "lessons.metadata"
_ALIAS_KEY = "lessons.aliases"


def _state_dict(model_or_state_dict) -> dict:
    if isinstance(model_or_state_dict, torch.nn.Module):
        return model_or_state_dict.state_dict()
    if isinstance(model_or_state_dict, dict):
        return model_or_state_dict
    raise ValueError(
        f"model_or_state_dict: expected a torch.nn.Module or a dict of tensors, received {type(model_or_state_dict).__name__}"
    )


def save_checkpoint(path, model_or_state_dict, metadata: dict | None = None) -> Path:
    """Save a model's tensors (and JSON metadata) to a ``.safetensors`` file; return the path.

    Tied weights (several names for one tensor, e.g. an embedding shared with the output
    layer) are stored once; the other names are recorded as aliases and restored by
    :func:`load_checkpoint`. Tensors that only partly overlap in memory are stored as copies.
    ``metadata`` (any JSON-serialisable dict: config, History.to_dict(), step) is stored as a
    JSON string in the file's header. No pickle is involved.

    Raises:
        ValueError: a state-dict value is not a tensor, or ``metadata`` is not a
            JSON-serialisable dict.
    """
    from safetensors.torch import save_file

    state = _state_dict(model_or_state_dict)
    header = {"format": "pt"}
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValueError(f"metadata: expected a dict or None, received {type(metadata).__name__}")
        try:
            header[_META_KEY] = json.dumps(metadata, allow_nan=True)
        except (TypeError, ValueError) as err:
            raise ValueError(f"metadata: expected a JSON-serialisable dict, received one that is not ({err})") from err
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}  # exact view -> the name stored for it
    storages: set[tuple] = set()  # storages already used by a stored tensor
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"model_or_state_dict[{name!r}]: expected a torch.Tensor, received {type(value).__name__}")
        t = value.detach()
        if t.numel() == 0:
            tensors[name] = t.clone().contiguous()
            continue
        storage = (t.device, t.untyped_storage().data_ptr())
        view = (*storage, t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if view in seen:
            aliases[name] = seen[view]
            continue
        if storage in storages or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)  # shares memory with a stored tensor only in part
        seen[view] = name
        storages.add(storage)
        tensors[name] = t
    if aliases:
        header[_ALIAS_KEY] = json.dumps(aliases)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, os.fspath(path), metadata=header)
    return path


def load_checkpoint(path, model: torch.nn.Module | None = None, device: str | torch.device = "cpu"):
    """Load a file written by :func:`save_checkpoint`: ``(state_dict, metadata)``.

    Tensors are placed on ``device``. With ``model``, the state dict is also loaded into it
    (strict: every name must match). ``metadata`` is the dict that was saved, or ``None``.

    Raises:
        ValueError: the file is not a safetensors file.
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: ``model``'s names or shapes do not match (from ``load_state_dict``).
    """
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such checkpoint {path!r}")
    device = torch.device(device)
    try:
        with safe_open(path, framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as err:
        raise ValueError(f"path: expected a safetensors file, could not read {path!r} ({err})") from err
    for alias, name in json.loads(header.get(_ALIAS_KEY, "{}")).items():
        state[alias] = state[name]
    metadata = json.loads(header[_META_KEY]) if _META_KEY in header else None
    if model is not None:
        model.load_state_dict(state, strict=True)
    return state, metadata


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (tied ones counted once); only those with ``requires_grad`` if asked.

    Raises:
        ValueError: ``model`` is not a ``torch.nn.Module``.
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, received {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
