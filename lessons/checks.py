"""One place that checks shapes and dtypes, so every public function fails the same clear way.

A shape spec is a string of space-separated dimensions:

* an integer (``3``) must match exactly;
* a name (``B``, ``N``, ``H``) binds on first use and must agree wherever it appears again,
  within one call and across calls that share a ``dims`` dict;
* ``*`` (optionally ``*batch``) as the first entry matches any number of leading dimensions;
* ``_`` matches any single dimension.

>>> dims = check_shape(torch.zeros(4, 10, 3), "B N 3", "points")
>>> check_shape(torch.zeros(4, 3, 3), "B 3 3", "K", dims)   # B must be 4 again
{'B': 4, 'N': 10}

On a mismatch :class:`ShapeError` (a ``ValueError``) names the argument, the expected and the
received shape.
"""

from __future__ import annotations

import torch

__all__ = ["ShapeError", "check_shape", "check_floating", "check_dtype", "check_same_device"]


class ShapeError(ValueError):
    """A tensor had the wrong shape or dtype. Subclasses ``ValueError``."""


def _fmt(spec: str) -> str:
    return "(" + ", ".join(spec.split()) + ")"


def check_shape(x, spec: str, name: str = "input", dims: dict | None = None) -> dict:
    """Check ``x.shape`` against ``spec``; return the dict of bound names (``dims``, updated).

    Raises:
        ShapeError: ``x`` is not a tensor, or its shape does not match ``spec``.
    """
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor of shape {_fmt(spec)}, received {type(x).__name__}")
    dims = {} if dims is None else dims
    want = spec.split()
    if any(w.startswith("*") for w in want[1:]):
        raise ValueError(f"spec: '*' (or '*name') may appear only as the first entry, received {spec!r}")
    got = tuple(x.shape)
    star = bool(want) and want[0].startswith("*")
    fixed = want[1:] if star else want
    ok = len(got) >= len(fixed) if star else len(got) == len(fixed)
    bound: dict = {}
    if ok:
        tail = got[len(got) - len(fixed):] if fixed else ()
        if star and want[0] != "*":
            key = want[0]
            lead = got[: len(got) - len(fixed)]
            if key in dims and tuple(dims[key]) != lead:
                ok = False
            bound[key] = lead
        for w, g in zip(fixed, tail):
            if w == "_":
                continue
            if w.lstrip("-").isdigit():
                ok = ok and int(w) == g
            else:
                seen = bound.get(w, dims.get(w))
                if seen is not None and seen != g:
                    ok = False
                bound[w] = g
    if not ok:
        hints = {k: v for k, v in dims.items() if k in want or "*" + k in want}
        extra = f" with {hints}" if hints else ""
        raise ShapeError(f"{name}: expected shape {_fmt(spec)}{extra}, received {got}")
    dims.update(bound)
    return dims


def check_floating(x, name: str = "input") -> None:
    """Raise :class:`ShapeError` unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name}: expected a floating-point torch.Tensor, received {type(x).__name__}")
    if not x.is_floating_point():
        raise ShapeError(f"{name}: expected a floating-point dtype, received {x.dtype}")


def check_dtype(x, dtypes, name: str = "input") -> None:
    """Raise :class:`ShapeError` unless ``x.dtype`` is one of ``dtypes``."""
    dtypes = tuple(dtypes) if isinstance(dtypes, (tuple, list, set)) else (dtypes,)
    if not isinstance(x, torch.Tensor) or x.dtype not in dtypes:
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"{name}: expected dtype in {[str(d) for d in dtypes]}, received {got}")


def check_same_device(**tensors) -> None:
    """Raise ``ValueError`` if the named tensors are not all on one device."""
    devs = {k: v.device for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    if len(set(devs.values())) > 1:
        raise ValueError(f"expected all tensors on one device, received {devs}")
