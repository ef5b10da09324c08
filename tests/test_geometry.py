"""Tests of lessons.geometry: conventions pinned, round trips, references (roma, kornia, naive loops)."""

from __future__ import annotations

import math

import kornia
import pytest
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

from lessons import geometry as g

BATCHES = [(), (4,), (2, 3)]
PI = math.pi


def close(a, b, atol=1e-6, rtol=1e-6):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def tol(dtype):
    return 1e-12 if dtype == torch.float64 else 2e-5


def is_rotation(R, atol):
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    close(R.transpose(-1, -2) @ R, eye, atol=atol, rtol=0)
    close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol, rtol=0)


def axis_rotations_by_pi(dtype=torch.float64, generator=None):
    """Rotations by exactly pi about x, y, z and about random unit axes (built as 2 a a^T - I)."""
    axes = torch.cat([torch.eye(3, dtype=dtype), torch.randn(5, 3, generator=generator, dtype=dtype)])
    axes = axes / axes.norm(dim=-1, keepdim=True)
    R = 2 * axes[:, :, None] * axes[:, None, :] - torch.eye(3, dtype=dtype)
    return axes, R


def roma_quat(q_wxyz):
    """Our (w, x, y, z) -> roma's (x, y, z, w)."""
    return torch.cat((q_wxyz[..., 1:], q_wxyz[..., :1]), dim=-1)


# ------------------------------------------------------------------------------------------
# elementary rotations, skew
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", BATCHES)
def test_elementary_rotations_shapes_and_orthonormal(shape, dtype, device, generator):
    a = (torch.rand(shape, generator=generator, dtype=dtype) * 2 * PI).to(device)
    for rot in (g.rotation_x, g.rotation_y, g.rotation_z):
        R = rot(a)
        assert R.shape == (*shape, 3, 3) and R.dtype == dtype and R.device == device
        is_rotation(R.cpu(), 10 * tol(dtype))


def test_elementary_rotation_pins():
    ex, ey, ez = torch.eye(3, dtype=torch.float64)
    # right-handed: Rx turns y to z, Ry turns z to x (+z towards +x), Rz turns x to y
    close(g.rotation_x(PI / 2) @ ey.float(), ez.float())
    close(g.rotation_y(torch.tensor(PI / 2, dtype=torch.float64)) @ ez, ex)
    close(g.rotation_z(torch.tensor(PI / 2, dtype=torch.float64)) @ ex, ey)
    # small +a about y moves +z towards +x (positive x component)
    assert (g.rotation_y(torch.tensor(0.1, dtype=torch.float64)) @ ez)[0] > 0
    # written out entry by entry
    a = torch.tensor(0.3, dtype=torch.float64)
    c, s = math.cos(0.3), math.sin(0.3)
    close(g.rotation_y(a), torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64))


@pytest.mark.parametrize("shape", BATCHES)
def test_skew_is_cross_product(shape, generator):
    v = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    w = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    S = g.skew(v)
    assert S.shape == (*shape, 3, 3)
    close((S @ w[..., None])[..., 0], torch.linalg.cross(v, w, dim=-1))
    close(S, -S.transpose(-1, -2))


# ------------------------------------------------------------------------------------------
# Euler
# ------------------------------------------------------------------------------------------


def test_euler_order_pin_explicit_product():
    yaw, pitch, roll = 0.4, -0.7, 1.1
    cy, sy, cp, sp, cr, sr = (f(x) for x in (yaw, pitch, roll) for f in (math.cos, math.sin))
    Ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    Rx = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]], dtype=torch.float64)
    Rz = torch.tensor([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]], dtype=torch.float64)
    R = g.euler_to_matrix(torch.tensor([yaw, pitch, roll], dtype=torch.float64))
    close(R, Ry @ Rx @ Rz)
    # a different order (e.g. extrinsic / Rz Rx Ry) must differ: the test above has teeth
    assert (R - Rz @ Rx @ Ry).abs().max() > 0.1


@pytest.mark.parametrize("shape", BATCHES)
def test_euler_agrees_with_roma_intrinsic_YXZ(shape, generator):
    # roma: upper-case axes = intrinsic (axes attached to the rotating body), lower-case =
    # extrinsic; 'YXZ' with angles (yaw, pitch, roll) is R = Ry(yaw) Rx(pitch) Rz(roll).
    angles = (torch.rand(*shape, 3, generator=generator, dtype=torch.float64) - 0.5) * 2 * PI
    close(g.euler_to_matrix(angles), roma.euler_to_rotmat("YXZ", angles), atol=1e-12, rtol=0)
    # and the extrinsic 'yxz' is a different thing
    if shape == ():
        assert (roma.euler_to_rotmat("yxz", angles) - g.euler_to_matrix(angles)).abs().max() > 1e-3


@pytest.mark.parametrize("shape", BATCHES)
def test_euler_round_trips(shape, dtype, generator):
    u = torch.rand(*shape, 3, generator=generator, dtype=torch.float64)
    angles = torch.stack((u[..., 0] * 2 - 1, (u[..., 1] * 2 - 1) * 0.49, u[..., 2] * 2 - 1), -1) * PI
    angles = angles.to(dtype)
    back = g.matrix_to_euler(g.euler_to_matrix(angles))
    assert back.shape == (*shape, 3)
    close(back, angles, atol=1e3 * tol(dtype), rtol=0)
    R = g.random_rotation(shape, generator=generator, dtype=dtype)
    e = g.matrix_to_euler(R)
    assert (e[..., 1].abs() <= PI / 2 + 1e-6).all()
    close(g.euler_to_matrix(e), R, atol=50 * tol(dtype), rtol=0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_euler_gimbal_lock_picks_roll_zero(sign, dtype):
    yaw = torch.tensor([0.3, -2.0, 1.0, 0.0], dtype=dtype)
    roll = torch.tensor([0.5, 1.0, -1.0, 0.0], dtype=dtype)
    pitch = torch.full_like(yaw, sign * PI / 2)
    R = g.euler_to_matrix(torch.stack((yaw, pitch, roll), -1)).requires_grad_(True)
    e = g.matrix_to_euler(R)
    assert torch.isfinite(e).all()
    close(e[..., 2], torch.zeros_like(yaw), atol=0, rtol=0)
    close(e[..., 1], pitch, atol=1e-3 if dtype == torch.float32 else 1e-7, rtol=0)
    close(g.euler_to_matrix(e.detach()), R.detach(), atol=10 * tol(dtype), rtol=0)
    e.sum().backward()
    assert torch.isfinite(R.grad).all()


def test_euler_near_gimbal_lock_still_reconstructs():
    pitch = PI / 2 - torch.logspace(-14, -2, 7, dtype=torch.float64)
    angles = torch.stack((torch.full_like(pitch, 0.7), pitch, torch.full_like(pitch, -0.4)), -1)
    R = g.euler_to_matrix(angles)
    close(g.euler_to_matrix(g.matrix_to_euler(R)), R, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------
# quaternions
# ------------------------------------------------------------------------------------------


def test_quaternion_w_first_pin():
    a = 0.8
    q = torch.tensor([math.cos(a / 2), math.sin(a / 2), 0.0, 0.0], dtype=torch.float64)
    close(g.quaternion_to_matrix(q), g.rotation_x(torch.tensor(a, dtype=torch.float64)))
    # (0, 0, 0, 1) is a half turn about +z, NOT the identity (which a w-last reading would give)
    close(g.quaternion_to_matrix(torch.tensor([0.0, 0, 0, 1])), torch.diag(torch.tensor([-1.0, -1, 1])))
    close(g.quaternion_to_matrix(torch.tensor([1.0, 0, 0, 0])), torch.eye(3))
    # matrix_to_quaternion returns w first too
    close(g.matrix_to_quaternion(g.rotation_x(torch.tensor(a, dtype=torch.float64))), q)


@pytest.mark.parametrize("shape", BATCHES)
def test_quaternion_to_matrix_agrees_with_roma_and_kornia(shape, generator):
    q = torch.randn(*shape, 4, generator=generator, dtype=torch.float64)
    R = g.quaternion_to_matrix(q)  # normalises q
    qn = q / q.norm(dim=-1, keepdim=True)
    close(R, roma.unitquat_to_rotmat(roma_quat(qn)), atol=1e-12, rtol=0)  # roma is x, y, z, w
    flat = qn.reshape(-1, 4)
    close(R.reshape(-1, 3, 3), kornia.geometry.conversions.quaternion_to_rotation_matrix(flat), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", BATCHES)
def test_quaternion_matrix_round_trips(shape, dtype, generator):
    q = torch.randn(*shape, 4, generator=generator, dtype=torch.float64).to(dtype)
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)
    back = g.matrix_to_quaternion(g.quaternion_to_matrix(q))
    assert back.shape == (*shape, 4) and (back[..., 0] >= 0).all()
    close(back, q, atol=100 * tol(dtype), rtol=0)
    R = g.random_rotation(shape, generator=generator, dtype=dtype)
    close(g.quaternion_to_matrix(g.matrix_to_quaternion(R)), R, atol=100 * tol(dtype), rtol=0)


def test_matrix_to_quaternion_at_pi_and_identity(generator):
    axes, R = axis_rotations_by_pi(generator=generator)
    q = g.matrix_to_quaternion(R)
    assert torch.isfinite(q).all()
    close(q[:, 0], torch.zeros(len(R), dtype=R.dtype), atol=1e-12, rtol=0)
    close(q[:, 1:].abs(), axes.abs(), atol=1e-12, rtol=0)  # axis up to sign
    close(g.quaternion_to_matrix(q), R, atol=1e-12, rtol=0)
    close(g.matrix_to_quaternion(torch.eye(3)), torch.tensor([1.0, 0, 0, 0]))
    # gradients through the chosen branch stay finite at pi
    Rg = R.clone().requires_grad_(True)
    g.matrix_to_quaternion(Rg).sum().backward()
    assert torch.isfinite(Rg.grad).all()


@pytest.mark.parametrize("shape", BATCHES)
def test_quaternion_algebra(shape, generator):
    q1 = torch.randn(*shape, 4, generator=generator, dtype=torch.float64)
    q2 = torch.randn(*shape, 4, generator=generator, dtype=torch.float64)
    q3 = torch.randn(*shape, 4, generator=generator, dtype=torch.float64)
    # the product composes rotations: R(q1 q2) = R(q1) R(q2)
    close(g.quaternion_to_matrix(g.quaternion_multiply(q1, q2)), g.quaternion_to_matrix(q1) @ g.quaternion_to_matrix(q2))
    mul = g.quaternion_multiply
    close(mul(mul(q1, q2), q3), mul(q1, mul(q2, q3)))
    ident = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand_as(q1)
    close(mul(q1, g.quaternion_invert(q1)), ident)
    qn = q1 / q1.norm(dim=-1, keepdim=True)
    close(g.quaternion_conjugate(qn), g.quaternion_invert(qn))
    p = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    close(g.quaternion_apply(q1, p), (g.quaternion_to_matrix(q1) @ p[..., None])[..., 0])
    # Hamilton product pin: i * j = k
    i, j, k = torch.eye(4, dtype=torch.float64)[1:]
    close(mul(i, j), k)


def test_quaternion_apply_broadcasts_points(generator):
    q = torch.randn(2, 1, 4, generator=generator, dtype=torch.float64)
    p = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64)
    out = g.quaternion_apply(q, p)
    assert out.shape == (2, 5, 3)
    close(out, p @ g.quaternion_to_matrix(q[:, 0]).transpose(-1, -2))


# ------------------------------------------------------------------------------------------
# axis-angle
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", BATCHES)
def test_axis_angle_agrees_with_roma_and_kornia(shape, generator):
    v = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    R = g.axis_angle_to_matrix(v)
    close(R, roma.rotvec_to_rotmat(v), atol=1e-12, rtol=0)
    close(R.reshape(-1, 3, 3), kornia.geometry.conversions.axis_angle_to_rotation_matrix(v.reshape(-1, 3)), atol=1e-12, rtol=0)
    # pin: angle a about +z is Rz(a)
    close(g.axis_angle_to_matrix(torch.tensor([0, 0, 0.6], dtype=torch.float64)), g.rotation_z(torch.tensor(0.6, dtype=torch.float64)))


@pytest.mark.parametrize("shape", BATCHES)
def test_axis_angle_round_trips(shape, dtype, generator):
    v = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True) * torch.rand(shape, generator=generator, dtype=torch.float64)[..., None] * 3.0
    v = v.to(dtype)
    close(g.matrix_to_axis_angle(g.axis_angle_to_matrix(v)), v, atol=200 * tol(dtype), rtol=0)
    close(g.quaternion_to_axis_angle(g.axis_angle_to_quaternion(v)), v, atol=200 * tol(dtype), rtol=0)
    close(g.quaternion_to_matrix(g.axis_angle_to_quaternion(v)), g.axis_angle_to_matrix(v), atol=20 * tol(dtype), rtol=0)
    R = g.random_rotation(shape, generator=generator, dtype=dtype)
    w = g.matrix_to_axis_angle(R)
    assert (w.norm(dim=-1) <= PI + 1e-6).all()
    close(g.axis_angle_to_matrix(w), R, atol=100 * tol(dtype), rtol=0)


def test_axis_angle_at_pi(generator):
    axes, R = axis_rotations_by_pi(generator=generator)
    v = g.matrix_to_axis_angle(R)
    assert torch.isfinite(v).all()
    close(v.norm(dim=-1), torch.full((len(R),), PI, dtype=R.dtype), atol=1e-12, rtol=0)
    close(g.axis_angle_to_matrix(v), R, atol=1e-12, rtol=0)
    close(g.axis_angle_to_matrix(PI * axes), R, atol=1e-12, rtol=0)
    close(g.quaternion_to_axis_angle(g.axis_angle_to_quaternion(PI * axes)).abs(), PI * axes.abs(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype_", [torch.float32, torch.float64])
def test_axis_angle_tiny_angles_and_identity(dtype_, generator):
    for scale in (0.0, 1e-9, 1e-6, 1e-3, 2e-2):
        v = (torch.randn(6, 3, generator=generator, dtype=torch.float64) * scale).to(dtype_)
        R = g.axis_angle_to_matrix(v)
        ref = roma.rotvec_to_rotmat(v.double())
        close(R.double(), ref, atol=10 * tol(dtype_), rtol=0)
        if dtype_ == torch.float64:
            close(g.matrix_to_axis_angle(R), v, atol=1e-10, rtol=0)
        q = g.axis_angle_to_quaternion(v)
        close(q.double(), roma_quat_to_ours(roma.rotvec_to_unitquat(v.double())), atol=10 * tol(dtype_), rtol=0)
        close(g.quaternion_to_axis_angle(q), v, atol=10 * tol(dtype_), rtol=0)
    close(g.axis_angle_to_matrix(torch.zeros(3)), torch.eye(3), atol=0, rtol=0)


def roma_quat_to_ours(q_xyzw):
    q = torch.cat((q_xyzw[..., 3:], q_xyzw[..., :3]), dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def test_axis_angle_gradient_at_zero_is_finite_and_correct():
    # d R / d v_k at v = 0 is the generator skew(e_k)
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    J = torch.autograd.functional.jacobian(g.axis_angle_to_matrix, v)  # (3, 3, 3)
    assert torch.isfinite(J).all()
    for k in range(3):
        close(J[..., k], g.skew(torch.eye(3, dtype=torch.float64)[k]))
    assert gradcheck(g.axis_angle_to_matrix, (v,))
    for f in (g.axis_angle_to_quaternion, lambda x: g.quaternion_to_axis_angle(g.axis_angle_to_quaternion(x))):
        J = torch.autograd.functional.jacobian(f, v)
        assert torch.isfinite(J).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3))
def test_axis_angle_round_trip_hypothesis(xs):
    v = torch.tensor(xs, dtype=torch.float64)
    if v.norm() >= PI - 1e-6:  # beyond pi the vector is not canonical
        v = v / v.norm() * (PI - 1e-3)
    close(g.matrix_to_axis_angle(g.axis_angle_to_matrix(v)), v, atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------------
# 6D
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", BATCHES)
def test_rotation_6d(shape, dtype, generator):
    R = g.random_rotation(shape, generator=generator, dtype=dtype)
    x = g.matrix_to_rotation_6d(R)
    assert x.shape == (*shape, 6)
    # columns, not rows
    close(x[..., :3], R[..., :, 0], atol=0, rtol=0)
    close(x[..., 3:], R[..., :, 1], atol=0, rtol=0)
    close(g.rotation_6d_to_matrix(x), R, atol=20 * tol(dtype), rtol=0)
    # arbitrary 6-vectors give rotations whose first column is a1 / |a1|
    y = torch.randn(*shape, 6, generator=generator, dtype=torch.float64).to(dtype)
    Ry = g.rotation_6d_to_matrix(y)
    is_rotation(Ry, 20 * tol(dtype))
    close(Ry[..., :, 0], y[..., :3] / y[..., :3].norm(dim=-1, keepdim=True), atol=20 * tol(dtype), rtol=0)
    # and the second column lies in span(a1, a2) on a2's side
    assert ((Ry[..., :, 1] * y[..., 3:]).sum(-1) >= 0).all()


# ------------------------------------------------------------------------------------------
# geodesic distance and sampling
# ------------------------------------------------------------------------------------------


def test_geodesic_distance_is_the_angle_near_0_and_pi():
    a = torch.tensor([0.0, 1e-8, 1e-4, 0.3, 2.0, PI - 1e-4, PI - 1e-7, PI], dtype=torch.float64)
    d = g.geodesic_distance(torch.eye(3, dtype=torch.float64), g.rotation_z(a))
    close(d, a, atol=1e-14, rtol=1e-10)
    close(g.geodesic_distance(torch.eye(3, dtype=torch.float64), g.rotation_z(-a)), a, atol=1e-14, rtol=1e-10)
    # float32 stays accurate at small angles too (acos would give 0 or ~3e-4 noise)
    d32 = g.geodesic_distance(torch.eye(3), g.rotation_z(torch.tensor(1e-4)))
    close(d32, torch.tensor(1e-4), atol=0, rtol=1e-3)


@pytest.mark.parametrize("shape", BATCHES)
def test_geodesic_distance_properties(shape, generator):
    R1, R2, R3 = (g.random_rotation(shape, generator=generator, dtype=torch.float64) for _ in range(3))
    d12 = g.geodesic_distance(R1, R2)
    assert d12.shape == shape and (d12 >= 0).all() and (d12 <= PI).all()
    close(d12, g.geodesic_distance(R2, R1))
    assert (g.geodesic_distance(R1, R3) <= d12 + g.geodesic_distance(R2, R3) + 1e-12).all()
    Q = g.random_rotation((), generator=generator, dtype=torch.float64)
    close(g.geodesic_distance(Q @ R1, Q @ R2), d12)  # left-invariant
    close(d12, roma.rotmat_geodesic_distance(R1, R2), atol=1e-10, rtol=0)
    # the angle of the relative axis-angle
    close(d12, g.matrix_to_axis_angle(R1.transpose(-1, -2) @ R2).norm(dim=-1), atol=1e-10, rtol=0)


def test_geodesic_distance_gradients():
    R2 = g.rotation_y(torch.tensor(0.4, dtype=torch.float64))

    def f(v):
        return g.geodesic_distance(g.axis_angle_to_matrix(v), R2)

    v = torch.tensor([[0.3, -0.2, 0.5], [1.0, 0.4, -0.7]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(f, (v,))
    R = torch.eye(3, dtype=torch.float64, requires_grad=True)
    g.geodesic_distance(R, torch.eye(3, dtype=torch.float64)).backward()
    assert torch.isfinite(R.grad).all()


def test_random_rotation(generator):
    R = g.random_rotation((2000,), generator=generator, dtype=torch.float64)
    assert R.shape == (2000, 3, 3)
    is_rotation(R, 1e-12)
    # Haar measure: E[R] = 0, and the angle has density (1 - cos a) / pi, mean pi/2 + 2/pi
    assert R.mean(0).abs().max() < 0.06
    angle = g.geodesic_distance(torch.eye(3, dtype=torch.float64), R)
    assert abs(angle.mean().item() - (PI / 2 + 2 / PI)) < 0.05
    a = g.random_rotation((2, 3), generator=torch.Generator().manual_seed(1))
    b = g.random_rotation((2, 3), generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 3, 3, 3) and a.dtype == torch.get_default_dtype()
    close(a, b, atol=0, rtol=0)
    assert g.random_rotation().shape == (3, 3)


# ------------------------------------------------------------------------------------------
# intrinsics
# ------------------------------------------------------------------------------------------


def test_intrinsics_values_and_shapes(dtype):
    K = g.intrinsics(50.0, 48, 64)
    close(K, torch.tensor([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]]))
    f = torch.tensor([[40.0, 50.0, 60.0]], dtype=dtype)
    K = g.intrinsics(f, 48, 64)
    assert K.shape == (1, 3, 3, 3) and K.dtype == dtype
    close(K[0, 2, 1, 1], torch.tensor(60.0, dtype=dtype))
    K = g.intrinsics(torch.tensor(40.0, dtype=dtype), 48, 64, principal=(10.0, 20.0), skew=0.5, focal_y=torch.tensor(30.0, dtype=dtype))
    close(K, torch.tensor([[40.0, 0.5, 10], [0, 30, 20], [0, 0, 1]], dtype=dtype))
    K = g.intrinsics(torch.full((5,), 40.0, dtype=dtype), 48, 64, principal=torch.zeros(5, 2, dtype=dtype), focal_y=torch.full((5,), 30.0, dtype=dtype))
    assert K.shape == (5, 3, 3)


def test_intrinsics_batch_of_two_focals_is_a_batch():
    # A (2,) tensor is two cameras, never (fx, fy): the trap this API used to have.
    K = g.intrinsics(torch.tensor([40.0, 60.0]), 48, 64)
    assert K.shape == (2, 3, 3)
    close(K[:, 0, 0], torch.tensor([40.0, 60.0]))
    close(K[:, 1, 1], torch.tensor([40.0, 60.0]))
    with pytest.raises(ValueError, match="focal"):
        g.intrinsics((40.0, 30.0), 48, 64, focal_y=20.0)


def test_focal_fov_round_trip():
    assert math.isclose(g.focal_from_fov(PI / 2, 64), 32.0)
    fov = torch.linspace(0.2, 2.5, 7, dtype=torch.float64)
    close(g.fov_from_focal(g.focal_from_fov(fov, 64), 64), fov)
    assert math.isclose(g.fov_from_focal(g.focal_from_fov(0.7, 100), 100), 0.7)


# ------------------------------------------------------------------------------------------
# look-at and viewpoints
# ------------------------------------------------------------------------------------------

K64 = g.intrinsics(torch.tensor(64.0, dtype=torch.float64), 64, 64)


def vp_centre(az, el, d):
    return d[..., None] * torch.stack((torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)), -1)


@pytest.mark.parametrize("shape", BATCHES)
def test_look_at_properties(shape, generator):
    eye = torch.randn(*shape, 3, generator=generator, dtype=torch.float64) * 3
    target = torch.randn(*shape, 3, generator=generator, dtype=torch.float64) * 0.3
    R, t = g.look_at(eye, target)
    assert R.shape == (*shape, 3, 3) and t.shape == (*shape, 3)
    is_rotation(R, 1e-12)
    close(g.camera_center(R, t), eye)
    px, depth = g.project(target[..., None, :], K64, R, t)
    close(px[..., 0, :], torch.full((*shape, 2), 32.0, dtype=torch.float64))  # target on the optical axis
    close(depth[..., 0], (target - eye).norm(dim=-1))
    # world up projects upward in the image: decreasing v
    px_up, _ = g.project((target + 0.1 * torch.tensor([0, 1.0, 0], dtype=torch.float64))[..., None, :], K64, R, t)
    assert (px_up[..., 0, 1] < 32.0).all()
    close(px_up[..., 0, 0], torch.full(shape, 32.0, dtype=torch.float64))


def test_look_at_front_view_pin():
    R, t = g.look_at(torch.tensor([0, 0, 3.0], dtype=torch.float64))
    # camera on +z looking at -z: world +x to the right of the image, world +y up, OpenCV axes
    close(R, torch.diag(torch.tensor([1.0, -1, -1], dtype=torch.float64)))
    px, _ = g.project(torch.tensor([[0.2, 0, 0], [0, 0.2, 0]], dtype=torch.float64), K64, R, t)
    assert px[0, 0] > 32 and px[1, 1] < 32


def test_look_at_degenerate_cases():
    with pytest.raises(ValueError, match="coincide"):
        g.look_at(torch.ones(3), torch.ones(3))
    # up parallel to the view direction: documented fallback, no NaN, matches the viewpoint closed form
    R, t = g.look_at(torch.tensor([[0, 2.0, 0], [0, -2.0, 0], [0, 0, 2.0]], dtype=torch.float64),
                     up=torch.tensor([[0, 1.0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64))
    assert torch.isfinite(R).all()
    is_rotation(R, 1e-12)
    for el, i in ((PI / 2, 0), (-PI / 2, 1)):
        Rv, tv = g.camera_from_viewpoint(torch.tensor(0.0, dtype=torch.float64), el, 0.0, 2.0)
        close(R[i], Rv)
        close(t[i], tv)


@pytest.mark.parametrize("shape", BATCHES)
def test_camera_from_viewpoint_matches_look_at(shape, generator):
    az = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * PI
    el = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * 1.4
    d = 1 + torch.rand(shape, generator=generator, dtype=torch.float64) * 3
    R, t = g.camera_from_viewpoint(az, el, 0.0, d)
    assert R.shape == (*shape, 3, 3) and t.shape == (*shape, 3)
    C = vp_centre(az, el, d)
    R_la, t_la = g.look_at(C)
    close(R, R_la, atol=1e-12, rtol=0)
    close(t, t_la, atol=1e-12, rtol=0)
    close(g.camera_center(R, t), C)


def test_viewpoint_pins():
    f64 = dict(dtype=torch.float64)
    # azimuth 0: camera on +z, sees the front (+z face is nearer than the back)
    R, t = g.camera_from_viewpoint(torch.tensor(0.0, **f64), 0.0, 0.0, 2.0)
    close(g.camera_center(R, t), torch.tensor([0, 0, 2.0], **f64))
    _, depth = g.project(torch.tensor([[0, 0, 0.5], [0, 0, -0.5]], **f64), K64, R, t)
    assert depth[0] < depth[1]
    # azimuth +90 deg: camera on +x
    R, t = g.camera_from_viewpoint(torch.tensor(PI / 2, **f64), 0.0, 0.0, 2.0)
    close(g.camera_center(R, t), torch.tensor([2.0, 0, 0], **f64))
    # elevation > 0: above the ground, and the origin projects to the image centre
    R, t = g.camera_from_viewpoint(torch.tensor(0.3, **f64), 0.5, 0.0, 2.0)
    assert g.camera_center(R, t)[1] > 0
    px, depth = g.project(torch.zeros(1, 3, **f64), K64, R, t)
    close(px[0], torch.tensor([32.0, 32.0], **f64))
    close(depth[0], torch.tensor(2.0, **f64))
    # world up projects upward
    px_up, _ = g.project(torch.tensor([[0, 0.1, 0]], **f64), K64, R, t)
    assert px_up[0, 1] < 32.0
    close(t, torch.tensor([0, 0, 2.0], **f64))


def test_inplane_turns_the_image_counter_clockwise():
    f64 = dict(dtype=torch.float64)
    psi = 0.4
    X = torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.3, 0.0]], **f64)
    p0, _ = g.project(X, K64, *g.camera_from_viewpoint(torch.tensor(0.2, **f64), 0.3, 0.0, 2.0))
    p1, _ = g.project(X, K64, *g.camera_from_viewpoint(torch.tensor(0.2, **f64), 0.3, psi, 2.0))
    centre = torch.tensor([32.0, 32.0], **f64)
    a0, a1 = p0 - centre, p1 - centre
    # on screen (v down), counter-clockwise by psi is (x, y) -> (x cos + y sin, -x sin + y cos)
    c, s = math.cos(psi), math.sin(psi)
    close(a1, torch.stack((a0[:, 0] * c + a0[:, 1] * s, -a0[:, 0] * s + a0[:, 1] * c), -1))
    # a point to the right of the centre (a0 = (+, 0)) moves up the screen (v decreases)
    p_right, _ = g.project(X[:1], K64, *g.camera_from_viewpoint(torch.tensor(0.0, **f64), 0.0, psi, 2.0))
    assert p_right[0, 0] > 32 and p_right[0, 1] < 32


@pytest.mark.parametrize("shape", BATCHES)
def test_viewpoint_round_trip(shape, dtype, generator):
    az = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * PI
    el = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * 1.5
    psi = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * PI
    az, el, psi = az.to(dtype), el.to(dtype), psi.to(dtype)
    R, t = g.camera_from_viewpoint(az, el, psi, 2.0)
    assert R.dtype == dtype
    a2, e2, p2 = g.viewpoint_from_rotation(R)
    assert a2.shape == shape
    at = 500 * tol(dtype)
    close(a2, az, atol=at, rtol=0)
    close(e2, el, atol=at, rtol=0)
    close(p2, psi, atol=at, rtol=0)
    # ranges: azimuth and inplane in (-pi, pi]
    a, e, p = g.viewpoint_from_rotation(g.camera_from_viewpoint(torch.tensor(PI, dtype=dtype), 0.2, -PI, 1.0)[0])
    assert -PI < a.item() <= PI + 1e-6 and -PI < p.item() <= PI + 1e-6


def test_viewpoint_at_the_poles_is_smooth_and_round_trips():
    f64 = dict(dtype=torch.float64)
    az = torch.tensor([0.3, -1.0, 2.0], **f64, requires_grad=True)
    for el in (PI / 2, -PI / 2):
        R, t = g.camera_from_viewpoint(az, el, 0.5, 2.0)
        is_rotation(R.detach(), 1e-12)
        close(g.camera_center(R, t).detach(), torch.tensor([0, 2.0 * math.sin(el), 0], **f64).expand(3, 3), atol=1e-12, rtol=0)
        R.sum().backward()
        assert torch.isfinite(az.grad).all()
        az.grad = None
        a2, e2, p2 = g.viewpoint_from_rotation(R.detach())
        close(e2, torch.full((3,), el, **f64), atol=1e-7, rtol=0)
        close(p2, torch.zeros(3, **f64), atol=0, rtol=0)
        close(g.camera_from_viewpoint(a2, e2, p2, 2.0)[0], R.detach(), atol=1e-12, rtol=0)


def test_camera_from_viewpoint_broadcasts_floats_and_tensors():
    R, t = g.camera_from_viewpoint(torch.zeros(4, 1), torch.zeros(3), 0.0, torch.ones(4, 3))
    assert R.shape == (4, 3, 3, 3) and t.shape == (4, 3, 3)
    R, t = g.camera_from_viewpoint(0.0, 0.0, 0.0, 2.0)
    assert R.shape == (3, 3) and R.dtype == torch.get_default_dtype()


def test_relative_pose(generator):
    Ra, Rb = g.random_rotation((2, 3), generator=generator, dtype=torch.float64), g.random_rotation((2, 3), generator=generator, dtype=torch.float64)
    ta, tb = torch.randn(2, 3, 3, generator=generator, dtype=torch.float64), torch.randn(2, 3, 3, generator=generator, dtype=torch.float64)
    X = torch.randn(2, 3, 7, 3, generator=generator, dtype=torch.float64)
    Rab, tab = g.relative_pose(Ra, ta, Rb, tb)
    close(g.transform_points(g.transform_points(X, Ra, ta), Rab, tab), g.transform_points(X, Rb, tb))
    Rid, tid = g.relative_pose(Ra, ta, Ra, ta)
    close(Rid, torch.eye(3, dtype=torch.float64).expand(2, 3, 3, 3))
    close(tid, torch.zeros(2, 3, 3, dtype=torch.float64), atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------
# points, projection
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", BATCHES)
def test_transform_points_matches_loop(shape, generator):
    X = torch.randn(*shape, 5, 3, generator=generator, dtype=torch.float64)
    R = g.random_rotation(shape, generator=generator, dtype=torch.float64)
    t = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    out = g.transform_points(X, R, t)
    Xf, Rf, tf, of = X.reshape(-1, 5, 3), R.reshape(-1, 3, 3), t.reshape(-1, 3), out.reshape(-1, 5, 3)
    for b in range(Xf.shape[0]):
        for n in range(5):
            close(of[b, n], Rf[b] @ Xf[b, n] + tf[b])
    # one camera for a batch of point sets broadcasts
    assert g.transform_points(torch.randn(2, 4, 5, 3, dtype=torch.float64), R[(0,) * len(shape)], t[(0,) * len(shape)]).shape == (2, 4, 5, 3)


@pytest.mark.parametrize("shape", BATCHES)
def test_project_matches_loop_and_unproject_round_trip(shape, dtype, device, generator):
    az = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 * PI
    R, t = g.camera_from_viewpoint(az, 0.3, 0.2, 3.0)
    K = g.intrinsics((70.0, 60.0), 48, 64, principal=(30.0, 25.0), skew=0.3).to(torch.float64)
    X = (torch.rand(*shape, 6, 3, generator=generator, dtype=torch.float64) - 0.5)
    px, depth = g.project(X.to(device, dtype), K.to(device, dtype), R.to(device, dtype), t.to(device, dtype))
    assert px.shape == (*shape, 6, 2) and depth.shape == (*shape, 6) and px.device == device and px.dtype == dtype
    px, depth = px.cpu().double(), depth.cpu().double()
    Xf, Rf, tf = X.reshape(-1, 6, 3), R.reshape(-1, 3, 3), t.reshape(-1, 3)
    for b in range(Xf.shape[0]):
        for n in range(6):
            h = K @ (Rf[b] @ Xf[b, n] + tf[b])
            close(px.reshape(-1, 6, 2)[b, n], h[:2] / h[2], atol=1e3 * tol(dtype), rtol=0)
            close(depth.reshape(-1, 6)[b, n], h[2], atol=1e2 * tol(dtype), rtol=0)
    back = g.unproject(px.to(dtype), depth.to(dtype), K.to(dtype), R.to(dtype), t.to(dtype))
    close(back.double(), X, atol=1e2 * tol(dtype), rtol=0)


def test_project_behind_and_at_the_camera_is_finite():
    R, t = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    X = torch.tensor([[0.1, 0.2, -1.0], [0.1, 0.2, 0.0], [0.1, 0.2, 1e-30]], dtype=torch.float64, requires_grad=True)
    px, depth = g.project(X, K64, R, t)
    assert torch.isfinite(px).all()
    close(depth.detach(), torch.tensor([-1.0, 0.0, 1e-30], dtype=torch.float64), atol=0, rtol=0)
    close(px[0].detach(), torch.tensor([32 - 6.4, 32 - 12.8], dtype=torch.float64))  # divided by z = -1 as is
    px.sum().backward()
    assert torch.isfinite(X.grad).all()


def test_project_gradcheck():
    R, t = g.camera_from_viewpoint(torch.tensor(0.3, dtype=torch.float64), 0.2, 0.1, 3.0)
    X = torch.rand(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) - 0.5
    K = K64.clone()

    def f(X, K, R, t):
        return g.project(X, K, R, t)

    assert gradcheck(f, (X.requires_grad_(), K.requires_grad_(), R.requires_grad_(), t.requires_grad_()))


def test_pixel_grid_convention(dtype):
    grid = g.pixel_grid(3, 5, dtype=dtype)
    assert grid.shape == (3, 5, 2) and grid.dtype == dtype
    i, j = 2, 4
    close(grid[i, j], torch.tensor([j + 0.5, i + 0.5], dtype=dtype))
    # the pixel centres land exactly on the pixels under grid_sample(align_corners=False)
    image = torch.rand(1, 2, 3, 5, generator=torch.Generator().manual_seed(1), dtype=dtype)
    norm = grid * torch.tensor([2 / 5, 2 / 3], dtype=dtype) - 1
    out = torch.nn.functional.grid_sample(image, norm[None], mode="bilinear", align_corners=False)
    close(out, image, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------
# homographies
# ------------------------------------------------------------------------------------------


def two_cameras(generator, shape=()):
    """Reference camera (frame = its own) and a source camera close to it; (R, t) ref -> src."""
    K_ref = g.intrinsics(torch.tensor(60.0, dtype=torch.float64), 40, 50, focal_y=torch.tensor(55.0, dtype=torch.float64)).expand(*shape, 3, 3)
    K_src = g.intrinsics(torch.tensor(65.0, dtype=torch.float64), 44, 48, principal=(23.0, 21.0)).expand(*shape, 3, 3)
    v = torch.randn(*shape, 3, generator=generator, dtype=torch.float64) * 0.1
    R = g.axis_angle_to_matrix(v)
    t = torch.randn(*shape, 3, generator=generator, dtype=torch.float64) * 0.3
    return K_ref, K_src, R, t


def naive_plane_transfer(pixel, K_ref, K_src, R, t, n, d):
    """Unproject one reference pixel to the plane n.X + d = 0, move it to the source frame, project."""
    ray = torch.linalg.solve(K_ref, torch.cat((pixel, torch.ones(1, dtype=pixel.dtype))))
    s = -d / (n @ ray)  # n.(s ray) + d = 0
    X = s * ray
    Xs = R @ X + t
    h = K_src @ Xs
    return h[:2] / h[2]


@pytest.mark.parametrize("shape", [(), (3,)])
def test_plane_homography_matches_naive_transfer(shape, generator):
    K_ref, K_src, R, t = two_cameras(generator, shape)
    n = torch.randn(*shape, 3, generator=generator, dtype=torch.float64) * 0.2 + torch.tensor([0, 0, -1.0], dtype=torch.float64)
    n = n / n.norm(dim=-1, keepdim=True)
    d = 2 + torch.rand(shape, generator=generator, dtype=torch.float64)
    H = g.plane_homography(K_ref, K_src, R, t, n, d)
    assert H.shape == (*shape, 3, 3)
    pixels = torch.rand(*shape, 7, 2, generator=generator, dtype=torch.float64) * 40
    out = g.apply_homography(H, pixels)
    flat = [x.reshape(-1, *x.shape[len(shape):]) for x in (K_ref, K_src, R, t, n, d, pixels, out)]
    for b in range(flat[0].shape[0]):
        for k in range(7):
            ref = naive_plane_transfer(flat[6][b, k], *(x[b] for x in flat[:6]))
            close(flat[7][b, k], ref, atol=1e-9, rtol=0)


def test_plane_homography_maps_projections_of_plane_points(generator):
    K_ref, K_src, R, t = two_cameras(generator)
    n = torch.tensor([0.1, -0.2, -1.0], dtype=torch.float64)
    n = n / n.norm()
    d = torch.tensor(2.5, dtype=torch.float64)
    # points on the plane in the reference frame: X = p - (n.p + d) n
    p = torch.randn(20, 3, generator=generator, dtype=torch.float64) * 0.5
    X = p - ((p @ n) + d)[:, None] * n
    close(X @ n + d, torch.zeros(20, dtype=torch.float64), atol=1e-12, rtol=0)
    I, zero = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    x_ref, _ = g.project(X, K_ref, I, zero)
    x_src, _ = g.project(X, K_src, R, t)
    H = g.plane_homography(K_ref, K_src, R, t, n, d)
    close(g.apply_homography(H, x_ref), x_src, atol=1e-9, rtol=0)
    # with camera poses instead: (R, t) from relative_pose of two world cameras
    Ra, ta = g.camera_from_viewpoint(torch.tensor(0.1, dtype=torch.float64), 0.2, 0.0, 3.0)
    Rb, tb = g.camera_from_viewpoint(torch.tensor(0.3, dtype=torch.float64), 0.1, 0.05, 3.2)
    Rab, tab = g.relative_pose(Ra, ta, Rb, tb)
    Xw = torch.rand(10, 2, dtype=torch.float64, generator=generator) - 0.5
    Xw = torch.cat((Xw, torch.zeros(10, 1, dtype=torch.float64)), -1)  # on the world plane z = 0
    n_a = Ra @ torch.tensor([0, 0, 1.0], dtype=torch.float64)  # world plane in camera-a coordinates
    d_a = -(n_a @ ta)
    H = g.plane_homography(K_ref, K_src, Rab, tab, n_a, d_a)
    close(g.apply_homography(H, g.project(Xw, K_ref, Ra, ta)[0]), g.project(Xw, K_src, Rb, tb)[0], atol=1e-9, rtol=0)


@pytest.mark.parametrize("depth_shape", [(5,), (3, 5)])
def test_fronto_parallel_homographies_equal_per_plane(depth_shape, generator):
    K_ref, K_src, R, t = two_cameras(generator, (3,))
    depths = 1 + torch.rand(depth_shape, generator=generator, dtype=torch.float64) * 4
    Hs = g.fronto_parallel_homographies(K_ref, K_src, R, t, depths)
    assert Hs.shape == (3, 5, 3, 3)
    n = torch.tensor([0, 0, -1.0], dtype=torch.float64)
    for b in range(3):
        for p in range(5):
            dp = depths[p] if len(depth_shape) == 1 else depths[b, p]
            close(Hs[b, p], g.plane_homography(K_ref[b], K_src[b], R[b], t[b], n, dp))
    # and the plane really is z = depth: a reference pixel at that depth lands where its 3D point projects
    px = torch.tensor([[12.0, 30.0]], dtype=torch.float64)
    d0 = depths[..., 0] if len(depth_shape) == 1 else depths[0, 0]
    X = g.unproject(px, d0.reshape(1), K_ref[0], torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    close(g.apply_homography(Hs[0, 0], px), g.project(X, K_src[0], R[0], t[0])[0])


@pytest.mark.parametrize("shape", BATCHES)
def test_apply_homography_matches_loop(shape, generator):
    H = torch.eye(3, dtype=torch.float64) + 0.1 * torch.randn(*shape, 3, 3, generator=generator, dtype=torch.float64)
    pixels = torch.rand(*shape, 4, 2, generator=generator, dtype=torch.float64) * 10
    out = g.apply_homography(H, pixels)
    assert out.shape == (*shape, 4, 2)
    Hf, pf, of = H.reshape(-1, 3, 3), pixels.reshape(-1, 4, 2), out.reshape(-1, 4, 2)
    for b in range(Hf.shape[0]):
        for k in range(4):
            h = Hf[b] @ torch.cat((pf[b, k], torch.ones(1, dtype=torch.float64)))
            close(of[b, k], h[:2] / h[2])


def translation_homography(dx, dy, dtype=torch.float64):
    return torch.tensor([[1.0, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=dtype)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_warp_identity_and_integer_translation(mode, dtype, device, generator):
    image = torch.rand(2, 3, 6, 7, generator=generator, dtype=torch.float64).to(device, dtype)
    H = torch.eye(3, dtype=dtype, device=device).expand(2, 3, 3)
    out, mask = g.warp_homography(image, H, 6, 7, mode=mode, return_mask=True)
    assert out.shape == (2, 3, 6, 7) and mask.shape == (2, 1, 6, 7)
    close(out, image, atol=1e-6, rtol=0)
    assert (mask == 1).all()
    # output pixel p samples source pixel p + (dx, dy): the image moves left by dx and up by dy
    dx, dy = 2, 1
    Ht = translation_homography(dx, dy, dtype).to(device).expand(2, 3, 3)
    out, mask = g.warp_homography(image, Ht, 6, 7, mode=mode, return_mask=True)
    close(out[:, :, : 6 - dy, : 7 - dx], image[:, :, dy:, dx:], atol=1e-6, rtol=0)
    assert (out[:, :, :, 7 - dx:] == 0).all() and (out[:, :, 6 - dy:, :] == 0).all()
    assert (mask[:, :, : 6 - dy, : 7 - dx] == 1).all() and (mask[:, :, :, 7 - dx:] == 0).all()


def test_warp_plane_sweep_equals_per_plane_warp(generator):
    K_ref, K_src, R, t = two_cameras(generator, (2,))
    depths = torch.tensor([1.5, 2.0, 4.0], dtype=torch.float64)
    Hs = g.fronto_parallel_homographies(K_ref, K_src, R, t, depths)  # (2, 3, 3, 3)
    image = torch.rand(2, 3, 44, 48, generator=generator, dtype=torch.float64)
    out, mask = g.warp_homography(image, Hs, 40, 50, return_mask=True)
    assert out.shape == (2, 3, 3, 40, 50) and mask.shape == (2, 3, 1, 40, 50)
    for p in range(3):
        o, m = g.warp_homography(image, Hs[:, p], 40, 50, return_mask=True)
        close(out[:, p], o, atol=1e-12, rtol=0)
        close(mask[:, p], m, atol=0, rtol=0)
    # naive reference for one output pixel: bilinear sample of the source at H p
    b, p, i, j = 1, 2, 17, 23
    u, v = g.apply_homography(Hs[b, p], torch.tensor([[j + 0.5, i + 0.5]], dtype=torch.float64))[0]
    x, y = u.item() - 0.5, v.item() - 0.5  # source pixel-index coordinates
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    img = image[b]
    ref = (img[:, y0, x0] * (1 - fx) * (1 - fy) + img[:, y0, x0 + 1] * fx * (1 - fy)
           + img[:, y0 + 1, x0] * (1 - fx) * fy + img[:, y0 + 1, x0 + 1] * fx * fy)
    close(out[b, p, :, i, j], ref, atol=1e-12, rtol=0)


def test_warp_agrees_with_kornia_warp_perspective(generator):
    # kornia puts pixel centres at integers (align_corners=True) and wants M = source -> destination;
    # ours: centres at +1/2 and H = destination -> source. So M = T^-1 H^-1 T with T = translate(1/2).
    image = torch.rand(1, 2, 20, 24, generator=generator, dtype=torch.float64)
    H = torch.tensor([[1.05, 0.03, -1.3], [-0.02, 0.97, 0.8], [1e-3, -5e-4, 1.0]], dtype=torch.float64)
    ours = g.warp_homography(image, H[None], 20, 24)
    T = translation_homography(0.5, 0.5)
    M = torch.linalg.inv(T) @ torch.linalg.inv(H) @ T
    theirs = kornia.geometry.transform.warp_perspective(image, M[None], (20, 24), align_corners=True)
    close(ours[..., 2:-2, 2:-2], theirs[..., 2:-2, 2:-2], atol=1e-9, rtol=0)


def test_warp_mask_behind_the_source_camera():
    image = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    H = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))[None]  # w = -1 everywhere
    out, mask = g.warp_homography(image, H, 4, 4, return_mask=True)
    assert (mask == 0).all() and (out == 0).all()


def test_warp_homography_gradcheck(generator):
    image = torch.rand(1, 1, 5, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    H = (translation_homography(0.3, 0.2) + 0.01 * torch.randn(3, 3, generator=generator, dtype=torch.float64))[None]
    assert gradcheck(lambda im, h: g.warp_homography(im, h, 4, 5), (image, H.requires_grad_()))


# ------------------------------------------------------------------------------------------
# gradchecks (float64)
# ------------------------------------------------------------------------------------------


def test_rotation_gradchecks(generator):
    x = torch.randn(2, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    assert gradcheck(g.euler_to_matrix, (x,))
    q = torch.randn(2, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    assert gradcheck(g.quaternion_to_matrix, (q,))
    assert gradcheck(g.axis_angle_to_matrix, (x,))
    small = (1e-4 * torch.randn(2, 3, generator=generator, dtype=torch.float64)).requires_grad_()
    assert gradcheck(g.axis_angle_to_matrix, (small,))
    six = torch.randn(2, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    assert gradcheck(g.rotation_6d_to_matrix, (six,))
    R = g.random_rotation((2,), generator=generator, dtype=torch.float64).requires_grad_()
    assert gradcheck(g.matrix_to_quaternion, (R,))
    assert gradcheck(g.matrix_to_euler, (R,))


def test_plane_homography_gradcheck(generator):
    K_ref, K_src, R, t = two_cameras(generator)
    n = torch.tensor([0.1, 0.0, -1.0], dtype=torch.float64)
    d = torch.tensor(2.0, dtype=torch.float64)
    args = tuple(x.clone().requires_grad_() for x in (K_ref, K_src, R, t, n, d))
    assert gradcheck(g.plane_homography, args)


# ------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: g.project(torch.zeros(5, 3), torch.zeros(3, 4), torch.eye(3), torch.zeros(3)), r"K: expected shape \(\*, 3, 3\), received \(3, 4\)"),
        (lambda: g.project(torch.zeros(5, 2), torch.eye(3), torch.eye(3), torch.zeros(3)), r"points: expected shape \(\*, N, 3\), received \(5, 2\)"),
        (lambda: g.quaternion_to_matrix(torch.zeros(3)), r"q: expected shape \(\*, 4\), received \(3,\)"),
        (lambda: g.matrix_to_quaternion(torch.zeros(2, 3)), r"R: expected shape \(\*, 3, 3\), received \(2, 3\)"),
        (lambda: g.euler_to_matrix(torch.zeros(2, 4)), r"angles: expected shape \(\*, 3\), received \(2, 4\)"),
        (lambda: g.axis_angle_to_matrix(torch.zeros(4)), r"v: expected shape \(\*, 3\)"),
        (lambda: g.rotation_6d_to_matrix(torch.zeros(2, 9)), r"x: expected shape \(\*, 6\), received \(2, 9\)"),
        (lambda: g.geodesic_distance(torch.eye(3), torch.zeros(3, 4)), r"R2: expected shape"),
        (lambda: g.euler_to_matrix(torch.zeros(2, 3, dtype=torch.long)), r"angles: expected a floating-point dtype, received torch.int64"),
        (lambda: g.unproject(torch.zeros(5, 2), torch.zeros(4), torch.eye(3), torch.eye(3), torch.zeros(3)), r"depth: expected shape"),
        (lambda: g.look_at(torch.zeros(2)), r"eye: expected shape \(\*, 3\), received \(2,\)"),
        (lambda: g.apply_homography(torch.eye(3), torch.zeros(4, 3)), r"pixels: expected shape \(\*, N, 2\), received \(4, 3\)"),
        (lambda: g.warp_homography(torch.zeros(2, 1, 4, 4), torch.eye(3).expand(3, 3, 3), 4, 4), r"H: expected shape \(B, 3, 3\) with \{'B': 2"),
        (lambda: g.warp_homography(torch.zeros(1, 4, 4), torch.eye(3)[None], 4, 4), r"image: expected shape \(B, C, Hs, Ws\), received \(1, 4, 4\)"),
        (lambda: g.fronto_parallel_homographies(torch.eye(3), torch.eye(3), torch.eye(3), torch.zeros(3), torch.tensor(1.0)), r"depths: expected shape"),
        (lambda: g.intrinsics(50.0, 4, 4, principal=torch.zeros(3)), r"principal: expected shape \(\*, 2\), received \(3,\)"),
        (lambda: g.pixel_grid(0, 4), r"height: expected a positive int"),
        (lambda: g.random_rotation((2, -1)), r"shape: expected a tuple of non-negative ints"),
        (lambda: g.rotation_x("a"), r"angle: expected a float"),
    ],
)
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
