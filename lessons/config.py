"""Profiles: one notebook, three budgets.

``LESSONS_PROFILE`` picks how big every experiment is:

========  ==========================================  ==========================
profile   where                                       budget per notebook
========  ==========================================  ==========================
quick     tests and CI (2 CPU cores)                  <= 60 s
cpu       a laptop; the default without CUDA          <= 5 min on 2 cores
gpu       Colab T4 or any CUDA GPU; default with CUDA <= 10 min on a T4
========  ==========================================  ==========================

A module declares its sizes once, as a dataclass whose defaults are the ``gpu`` (paper-claim)
values, and a ``PROFILES`` class attribute holding the overrides for the smaller budgets::

    @dataclass
    class Config:
        steps: int = 3000          # optimisation steps
        image_size: int = 128      # pixels
        PROFILES: ClassVar[dict] = {"quick": dict(steps=30, image_size=32), "cpu": dict(steps=400)}

    cfg = config.resolve(Config)                 # profile from the environment
    cfg = config.resolve(Config, "quick", steps=5)

Sizes come from the profile, never from edits to a notebook. Unknown profiles and unknown
field names are rejected with ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import os

PROFILES = ("quick", "cpu", "gpu")
ENV_VAR = "LESSONS_PROFILE"

__all__ = ["PROFILES", "ENV_VAR", "current_profile", "resolve"]


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch is a hard dependency
        return False


def current_profile() -> str:
    """The active profile: ``$LESSONS_PROFILE`` if set, else ``gpu`` with CUDA, else ``cpu``.

    Raises:
        ValueError: ``$LESSONS_PROFILE`` names no known profile.
    """
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return "gpu" if _cuda_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR}: expected one of {PROFILES}, received {name!r}")
    return name


def resolve(cls, profile: str | None = None, **overrides):
    """Build ``cls`` (a dataclass) for ``profile`` (default: :func:`current_profile`).

    Precedence: explicit ``overrides`` > ``cls.PROFILES[profile]`` > the dataclass defaults.

    Raises:
        ValueError: ``cls`` is not a dataclass, the profile is unknown, or a profile entry or
            an override names a field the dataclass does not have.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"resolve: expected a dataclass type, received {cls!r}")
    profile = current_profile() if profile is None else str(profile).strip().lower()
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {PROFILES}, received {profile!r}")
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    table = getattr(cls, "PROFILES", {}) or {}
    unknown_profiles = set(table) - set(PROFILES)
    if unknown_profiles:
        raise ValueError(f"{cls.__name__}.PROFILES: expected keys in {PROFILES}, received {sorted(unknown_profiles)}")
    # Every profile's entry is checked, not only the active one: CI runs "quick", and a typo in
    # the "gpu" entry must fail there rather than on a reader's GPU.
    entries = [(f"{cls.__name__}.PROFILES[{name!r}]", entry) for name, entry in table.items()]
    for where, d in (*entries, ("overrides", overrides)):
        bad = set(d) - fields
        if bad:
            raise ValueError(f"{where}: unknown field(s) {sorted(bad)}; {cls.__name__} has {sorted(fields)}")
    values = dict(table.get(profile, {}))
    values.update(overrides)
    cfg = cls(**values)
    try:
        object.__setattr__(cfg, "profile", profile)
    except Exception:  # slots dataclass: the profile is simply not recorded
        pass
    return cfg
