"""Tests for lessons.config (profiles) and lessons.checks (the shape/dtype check helper)."""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest
import torch

from lessons import checks, config
from lessons.checks import ShapeError, check_dtype, check_floating, check_same_device, check_shape

# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


@dataclass
class Demo:
    steps: int = 3000  # the gpu (paper) value
    image_size: int = 128
    lr: float = 1e-3
    sizes: list = field(default_factory=lambda: [32, 64])
    PROFILES: ClassVar[dict] = {"quick": dict(steps=30, image_size=32), "cpu": dict(steps=400)}


class TestProfile:
    def test_from_env_var(self, monkeypatch):
        for name in ("quick", "cpu", "gpu"):
            monkeypatch.setenv(config.ENV_VAR, name)
            assert config.current_profile() == name
        monkeypatch.setenv(config.ENV_VAR, "  GPU ")  # case and spaces forgiven
        assert config.current_profile() == "gpu"

    def test_default_depends_on_cuda(self, monkeypatch):
        monkeypatch.delenv(config.ENV_VAR, raising=False)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert config.current_profile() == "cpu"
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert config.current_profile() == "gpu"
        monkeypatch.setenv(config.ENV_VAR, "")  # empty is unset
        assert config.current_profile() == "gpu"

    def test_unknown_profile(self, monkeypatch):
        monkeypatch.setenv(config.ENV_VAR, "fast")
        with pytest.raises(ValueError, match=r"LESSONS_PROFILE: expected one of \('quick', 'cpu', 'gpu'\), received 'fast'"):
            config.current_profile()
        with pytest.raises(ValueError, match="LESSONS_PROFILE"):
            config.resolve(Demo)  # the environment is read when no profile is given
        with pytest.raises(ValueError, match=r"profile: expected one of .*received 'tiny'"):
            config.resolve(Demo, "tiny")


class TestResolve:
    def test_precedence_overrides_profile_defaults(self):
        gpu = config.resolve(Demo, "gpu")
        assert (gpu.steps, gpu.image_size, gpu.lr) == (3000, 128, 1e-3)  # defaults
        quick = config.resolve(Demo, "quick")
        assert (quick.steps, quick.image_size, quick.lr) == (30, 32, 1e-3)  # profile > defaults
        cpu = config.resolve(Demo, "cpu")
        assert (cpu.steps, cpu.image_size) == (400, 128)  # a profile overrides only what it names
        both = config.resolve(Demo, "quick", steps=5, lr=0.1)
        assert (both.steps, both.image_size, both.lr) == (5, 32, 0.1)  # overrides > profile
        assert quick.profile == "quick" and both.profile == "quick"

    def test_profile_from_env(self, monkeypatch):
        monkeypatch.setenv(config.ENV_VAR, "quick")
        assert config.resolve(Demo).steps == 30
        monkeypatch.setenv(config.ENV_VAR, "cpu")
        assert config.resolve(Demo).steps == 400

    def test_profile_entries_are_copied(self):
        a = config.resolve(Demo, "quick", sizes=[1])
        a.steps = 1
        assert Demo.PROFILES["quick"] == dict(steps=30, image_size=32)
        assert config.resolve(Demo, "gpu").sizes == [32, 64]

    def test_unknown_override_field(self):
        with pytest.raises(ValueError, match=r"overrides: unknown field\(s\) \['stepz'\]; Demo has \['image_size', 'lr', 'sizes', 'steps'\]"):
            config.resolve(Demo, "quick", stepz=3)

    def test_unknown_field_in_profiles(self):
        @dataclass
        class Bad:
            steps: int = 10
            PROFILES: ClassVar[dict] = {"quick": dict(stepz=1)}

        with pytest.raises(ValueError, match=r"Bad.PROFILES\['quick'\]: unknown field\(s\) \['stepz'\]"):
            config.resolve(Bad, "quick")

    def test_typo_in_another_profile_is_caught_under_quick(self):
        # CI runs the quick profile only: a typo in the gpu entry must still fail there, not on a
        # reader's GPU ten minutes into a notebook.
        @dataclass
        class Typo:
            steps: int = 10
            PROFILES: ClassVar[dict] = {"quick": dict(steps=1), "gpu": dict(stepz=1000)}

        with pytest.raises(ValueError, match=r"Typo.PROFILES\['gpu'\]: unknown field\(s\) \['stepz'\]"):
            config.resolve(Typo, "quick")

    def test_unknown_profile_key_in_profiles(self):
        @dataclass
        class BadKey:
            steps: int = 10
            PROFILES: ClassVar[dict] = {"laptop": dict(steps=1)}

        with pytest.raises(ValueError, match=r"BadKey.PROFILES: expected keys in .*received \['laptop'\]"):
            config.resolve(BadKey, "quick")

    def test_not_a_dataclass(self):
        class Plain:
            steps = 3

        with pytest.raises(ValueError, match="resolve: expected a dataclass type"):
            config.resolve(Plain, "quick")
        with pytest.raises(ValueError, match="resolve: expected a dataclass type"):
            config.resolve(Demo(), "quick")  # an instance, not the type

    def test_no_profiles_table_and_frozen(self):
        @dataclass(frozen=True)
        class Frozen:
            steps: int = 10

        cfg = config.resolve(Frozen, "quick", steps=2)
        assert cfg.steps == 2 and cfg.profile == "quick"


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


class TestCheckShape:
    def test_named_and_fixed_dims(self):
        dims = check_shape(torch.zeros(4, 10, 3), "B N 3", "points")
        assert dims == {"B": 4, "N": 10}
        with pytest.raises(ShapeError, match=r"points: expected shape \(B, N, 3\), received \(4, 10, 2\)"):
            check_shape(torch.zeros(4, 10, 2), "B N 3", "points")
        with pytest.raises(ShapeError, match=r"K: expected shape \(3, 3\), received \(3,\)"):
            check_shape(torch.zeros(3), "3 3", "K")
        # a name repeated within one spec must agree with itself
        check_shape(torch.zeros(2, 3, 3), "B N N", "R")
        with pytest.raises(ShapeError, match=r"R: expected shape \(B, N, N\), received \(2, 3, 4\)"):
            check_shape(torch.zeros(2, 3, 4), "B N N", "R")

    def test_bound_dims_across_calls(self):
        dims = check_shape(torch.zeros(4, 10, 3), "B N 3", "points")
        assert check_shape(torch.zeros(4, 3, 3), "B 3 3", "K", dims) is dims
        with pytest.raises(ShapeError, match=r"K: expected shape \(B, 3, 3\) with \{'B': 4\}, received \(5, 3, 3\)"):
            check_shape(torch.zeros(5, 3, 3), "B 3 3", "K", dims)
        assert dims == {"B": 4, "N": 10}  # a failed call binds nothing
        check_shape(torch.zeros(4, 7), "B M", "w", dims)
        assert dims == {"B": 4, "N": 10, "M": 7}

    def test_star_batch(self):
        for shape in [(3,), (2, 3), (2, 5, 3)]:
            check_shape(torch.zeros(shape), "* 3", "v")
        with pytest.raises(ShapeError, match=r"v: expected shape \(\*, 3\), received \(2, 4\)"):
            check_shape(torch.zeros(2, 4), "* 3", "v")
        with pytest.raises(ShapeError, match=r"R: expected shape \(\*, 3, 3\), received \(3,\)"):
            check_shape(torch.zeros(3), "* 3 3", "R")
        # a named star binds the whole leading shape, across calls too
        dims = check_shape(torch.zeros(2, 5, 3, 3), "*batch 3 3", "R")
        assert dims == {"*batch": (2, 5)}
        check_shape(torch.zeros(2, 5, 3), "*batch 3", "t", dims)
        with pytest.raises(ShapeError, match=r"t: expected shape \(\*batch, 3\) with \{'\*batch': \(2, 5\)\}, received \(5, 3\)"):
            check_shape(torch.zeros(5, 3), "*batch 3", "t", dims)
        assert check_shape(torch.zeros(()), "*", "scalar") == {}

    def test_underscore_and_scalar(self):
        check_shape(torch.zeros(2, 99), "B _", "x")
        check_shape(torch.zeros(()), "", "s")
        with pytest.raises(ShapeError, match=r"s: expected shape \(\), received \(1,\)"):
            check_shape(torch.zeros(1), "", "s")

    def test_star_elsewhere_than_first_is_a_spec_error(self):
        # "B * 3" would otherwise bind a dimension named "*" and silently match only 3-D tensors.
        with pytest.raises(ValueError, match=r"spec: .*\*.* only as the first entry.*'B \* 3'"):
            check_shape(torch.zeros(2, 4, 3), "B * 3", "x")

    def test_wrong_type_and_error_class(self):
        with pytest.raises(ShapeError, match=r"x: expected a torch.Tensor of shape \(B, 3\), received ndarray"):
            check_shape(np.zeros((2, 3)), "B 3", "x")
        with pytest.raises(ShapeError, match="received list"):
            check_shape([1, 2, 3], "3", "x")
        assert issubclass(ShapeError, ValueError)

    def test_dtype_checks(self):
        check_floating(torch.zeros(2), "x")
        check_floating(torch.zeros(2, dtype=torch.float16), "x")
        with pytest.raises(ShapeError, match="x: expected a floating-point dtype, received torch.int64"):
            check_floating(torch.zeros(2, dtype=torch.int64), "x")
        with pytest.raises(ShapeError, match="x: expected a floating-point torch.Tensor, received float"):
            check_floating(1.0, "x")
        check_dtype(torch.zeros(2, dtype=torch.int64), torch.int64, "faces")
        check_dtype(torch.zeros(2, dtype=torch.int32), (torch.int32, torch.int64), "faces")
        with pytest.raises(ShapeError, match=r"faces: expected dtype in \['torch.int64'\], received torch.float32"):
            check_dtype(torch.zeros(2), torch.int64, "faces")
        with pytest.raises(ShapeError, match="faces: expected dtype in .* received list"):
            check_dtype([1], [torch.int64], "faces")

    def test_same_device(self):
        check_same_device(a=torch.zeros(1), b=torch.zeros(2), c=None, d=3.0)
        meta = torch.zeros(1, device="meta")
        with pytest.raises(ValueError, match="expected all tensors on one device, received .*'b': device\\(type='meta'\\)"):
            check_same_device(a=torch.zeros(1), b=meta)

    def test_exported_names(self):
        assert set(checks.__all__) == {"ShapeError", "check_shape", "check_floating", "check_dtype", "check_same_device"}
