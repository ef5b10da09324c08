"""Geometry: rotations, pinhole cameras ``K [R | t]``, projection and plane-induced homographies.

Conventions (the full version is ``book/notation.md``; the tests pin every one):

* Column vectors, radians, any leading batch shape ``...``. World frame right-handed, ``+y`` up,
  objects face ``+z``.
* Camera: OpenCV axes (``x`` right, ``y`` down the image, ``z`` forward).
  ``lambda (u, v, 1)^T = K (R X + t)`` with ``(R, t)`` = ``cam_from_world`` and ``lambda`` = depth
  (the camera ``z``). Camera centre ``C = -R^T t``. The centre of the pixel in row ``i``, column
  ``j`` is ``(u, v) = (j + 1/2, i + 1/2)``; a centred camera has principal point ``(W/2, H/2)``;
  ``grid_sample`` always with ``align_corners=False``.
* Viewpoint ``(azimuth, elevation, inplane, distance)``: camera centre
  ``C = d (cos(el) sin(az), sin(el), cos(el) cos(az))`` looking at the origin; with
  ``inplane = 0`` the world up vector points up in the image; ``inplane`` turns the image
  counter-clockwise on screen.
* Quaternions ``(w, x, y, z)``, scalar FIRST, Hamilton product. Axis-angle: axis times angle.
  Euler: ``(yaw, pitch, roll)`` intrinsic y-x-z, ``R = Ry(yaw) Rx(pitch) Rz(roll)``.
  6D: the first two columns of ``R`` concatenated.
* Plane ``n^T X + d = 0`` in the reference camera's frame; ``(R, t)`` maps the reference frame to
  the source frame; ``H = K_src (R - t n^T / d) K_ref^{-1}`` maps reference pixels to source
  pixels.

Functions
---------
rotations
    :func:`rotation_x`, :func:`rotation_y`, :func:`rotation_z`, :func:`skew`,
    :func:`euler_to_matrix`, :func:`matrix_to_euler`,
    :func:`quaternion_to_matrix`, :func:`matrix_to_quaternion`, :func:`quaternion_multiply`,
    :func:`quaternion_conjugate`, :func:`quaternion_invert`, :func:`quaternion_apply`,
    :func:`axis_angle_to_matrix`, :func:`matrix_to_axis_angle`,
    :func:`axis_angle_to_quaternion`, :func:`quaternion_to_axis_angle`,
    :func:`rotation_6d_to_matrix`, :func:`matrix_to_rotation_6d`,
    :func:`geodesic_distance`, :func:`random_rotation`
cameras
    :func:`intrinsics`, :func:`focal_from_fov`, :func:`fov_from_focal`, :func:`look_at`,
    :func:`camera_from_viewpoint`, :func:`viewpoint_from_rotation`, :func:`camera_center`,
    :func:`relative_pose`, :func:`transform_points`, :func:`project`, :func:`unproject`,
    :func:`pixel_grid`
homographies
    :func:`plane_homography`, :func:`fronto_parallel_homographies`, :func:`apply_homography`,
    :func:`warp_homography`
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lessons.checks import check_floating, check_shape

__all__ = [
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "skew",
    "euler_to_matrix",
    "matrix_to_euler",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "quaternion_multiply",
    "quaternion_conjugate",
    "quaternion_invert",
    "quaternion_apply",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "geodesic_distance",
    "random_rotation",
    "intrinsics",
    "focal_from_fov",
    "fov_from_focal",
    "look_at",
    "camera_from_viewpoint",
    "viewpoint_from_rotation",
    "camera_center",
    "relative_pose",
    "transform_points",
    "project",
    "unproject",
    "pixel_grid",
    "plane_homography",
    "fronto_parallel_homographies",
    "apply_homography",
    "warp_homography",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _float_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a floating tensor: tensors are checked, Python numbers become default-dtype."""
    if isinstance(x, torch.Tensor):
        check_floating(x, name)
        return x
    if isinstance(x, (int, float)):
        return torch.tensor(float(x), dtype=torch.get_default_dtype())
    raise ValueError(f"{name}: expected a float or a floating-point torch.Tensor, received {type(x).__name__}")


def _checked(x, name: str):
    """Check a tensor is floating; let Python numbers through unchanged."""
    if isinstance(x, torch.Tensor):
        check_floating(x, name)
    elif not isinstance(x, (int, float)):
        raise ValueError(f"{name}: expected a float or a floating-point torch.Tensor, received {type(x).__name__}")
    return x


def _common(*xs):
    """Bring tensors and numbers to one dtype/device (those of the first tensor, promoted)."""
    tensors = [x for x in xs if isinstance(x, torch.Tensor)]
    if not tensors:
        dtype, device = torch.get_default_dtype(), torch.device("cpu")
    else:
        dtype = tensors[0].dtype
        for x in tensors[1:]:
            dtype = torch.promote_types(dtype, x.dtype)
        device = tensors[0].device
    return [
        x.to(dtype=dtype, device=device) if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=dtype, device=device)
        for x in xs
    ]


def _matrix(*rows) -> torch.Tensor:
    """Stack nine (...) tensors given row by row into (..., 3, 3)."""
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _transpose(m: torch.Tensor) -> torch.Tensor:
    return m.transpose(-1, -2)


def _wrap_pi(a: torch.Tensor) -> torch.Tensor:
    """Map angles in [-pi, pi] to (-pi, pi] (atan2 returns -pi for a signed zero)."""
    return torch.where(a <= -math.pi, a + 2 * math.pi, a)


def _safe_denominator(z: torch.Tensor) -> torch.Tensor:
    """``z`` where ``|z| >= eps``, else ``+-eps`` with the sign of ``z`` (``+`` at 0); ``eps`` = machine epsilon."""
    eps = torch.finfo(z.dtype).eps
    return torch.where(z.abs() >= eps, z, torch.where(z < 0, -eps, eps).to(z))


def _safe_norm(v: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """Euclidean norm whose gradient at 0 is 0 instead of NaN."""
    n2 = (v * v).sum(dim=dim, keepdim=keepdim)
    pos = n2 > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, n2, torch.ones_like(n2))), torch.zeros_like(n2))


# --------------------------------------------------------------------------------------------
# elementary rotations, skew, Euler angles
# --------------------------------------------------------------------------------------------


def rotation_x(angle) -> torch.Tensor:
    """Rotation by ``angle`` about the ``+x`` axis (right-handed: ``+y`` turns towards ``+z``).

    ``Rx(a) = [[1, 0, 0], [0, cos a, -sin a], [0, sin a, cos a]]``.

    Shapes:
        angle: ``(...)`` tensor or float -> ``(..., 3, 3)``

    Raises:
        ValueError: ``angle`` is not a float or floating tensor.
    """
    a = _float_tensor(angle, "angle")
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return _matrix((o, z, z), (z, c, -s), (z, s, c))


def rotation_y(angle) -> torch.Tensor:
    """Rotation by ``angle`` about the ``+y`` (up) axis: ``+z`` turns towards ``+x``.

    ``Ry(a) = [[cos a, 0, sin a], [0, 1, 0], [-sin a, 0, cos a]]``.

    Shapes:
        angle: ``(...)`` tensor or float -> ``(..., 3, 3)``

    Raises:
        ValueError: ``angle`` is not a float or floating tensor.
    """
    a = _float_tensor(angle, "angle")
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return _matrix((c, z, s), (z, o, z), (-s, z, c))


def rotation_z(angle) -> torch.Tensor:
    """Rotation by ``angle`` about the ``+z`` axis: ``+x`` turns towards ``+y``.

    ``Rz(a) = [[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]]``.

    Shapes:
        angle: ``(...)`` tensor or float -> ``(..., 3, 3)``

    Raises:
        ValueError: ``angle`` is not a float or floating tensor.
    """
    a = _float_tensor(angle, "angle")
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return _matrix((c, -s, z), (s, c, z), (z, z, o))


def skew(v: torch.Tensor) -> torch.Tensor:
    """The cross-product matrix ``[v]_x``, so that ``[v]_x w = v x w``.

    ``[v]_x = [[0, -v_z, v_y], [v_z, 0, -v_x], [-v_y, v_x, 0]]``.

    Shapes:
        v: ``(..., 3)`` -> ``(..., 3, 3)``

    Raises:
        ValueError: ``v`` is not a floating tensor of shape ``(..., 3)``.
    """
    check_shape(v, "* 3", "v")
    check_floating(v, "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return _matrix((o, -z, y), (z, o, -x), (-y, x, o))


def _vee(m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`skew` on the antisymmetric part: ``(m21 - m12, m02 - m20, m10 - m01) / 2``."""
    return 0.5 * torch.stack(
        (m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]), dim=-1
    )


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrix from Euler angles ``(yaw, pitch, roll)``, intrinsic y-x-z.

    ``R = Ry(yaw) Rx(pitch) Rz(roll)``: yaw about the up axis, then pitch about the turned ``x``,
    then roll about the turned ``z``.

    Shapes:
        angles: ``(..., 3)`` -> ``(..., 3, 3)``

    Raises:
        ValueError: ``angles`` is not a floating tensor of shape ``(..., 3)``.
    """
    check_shape(angles, "* 3", "angles")
    check_floating(angles, "angles")
    yaw, pitch, roll = angles.unbind(-1)
    return rotation_y(yaw) @ rotation_x(pitch) @ rotation_z(roll)


def matrix_to_euler(R: torch.Tensor) -> torch.Tensor:
    """Euler angles ``(yaw, pitch, roll)`` (intrinsic y-x-z) of a rotation matrix.

    With ``R = Ry(a) Rx(b) Rz(c)``: row 1 of ``R`` is ``(cos b sin c, cos b cos c, -sin b)``, so
    ``roll = atan2(R10, R11)``. Then ``M = R Rz(-roll) = Ry(a) Rx(b)`` gives
    ``pitch = atan2(-M12, M11)`` and ``yaw = atan2(-M20, M00)``; both are well conditioned for
    every ``R``, so the angles reproduce ``R`` even close to gimbal lock. At gimbal lock
    (``pitch = +-pi/2``, ``|cos pitch|`` below a few machine epsilons) ``roll`` is set to ``0``
    and the yaw absorbs the rest; no NaN.

    Ranges: yaw, roll in ``[-pi, pi]``, pitch in ``[-pi/2, pi/2]``.

    Shapes:
        R: ``(..., 3, 3)`` -> ``(..., 3)``

    Raises:
        ValueError: ``R`` is not a floating tensor of shape ``(..., 3, 3)``.
    """
    check_shape(R, "* 3 3", "R")
    check_floating(R, "R")
    eps = 16 * torch.finfo(R.dtype).eps
    r10, r11 = R[..., 1, 0], R[..., 1, 1]
    lock = r10.abs() + r11.abs() <= eps
    roll = torch.atan2(torch.where(lock, torch.zeros_like(r10), r10), torch.where(lock, torch.ones_like(r11), r11))
    c, s = torch.cos(roll), torch.sin(roll)
    # M = R Rz(-roll): columns 0 and 1 of M
    m0 = R[..., :, 0] * c[..., None] - R[..., :, 1] * s[..., None]
    m1 = R[..., :, 0] * s[..., None] + R[..., :, 1] * c[..., None]
    pitch = torch.atan2(-R[..., 1, 2], m1[..., 1])
    yaw = torch.atan2(-m0[..., 2], m0[..., 0])
    return torch.stack((yaw, pitch, roll), dim=-1)


# --------------------------------------------------------------------------------------------
# quaternions (w, x, y, z)
# --------------------------------------------------------------------------------------------


def _check_quaternion(q, name="q"):
    check_shape(q, "* 4", name)
    check_floating(q, name)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of a quaternion ``q = (w, x, y, z)`` (scalar first; normalised here).

    For a unit ``q = (w, v)``: ``R = I + 2 w [v]_x + 2 [v]_x^2``, i.e. ``R p = q p q^*``.

    Shapes:
        q: ``(..., 4)`` -> ``(..., 3, 3)``

    Raises:
        ValueError: ``q`` is not a floating tensor of shape ``(..., 4)``.
    """
    _check_quaternion(q)
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    return _matrix(
        (1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)),
        (s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)),
        (s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)),
    )


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix.

    The four numbers ``(1 + R00 + R11 + R22, 1 + R00 - R11 - R22, 1 - R00 + R11 - R22,
    1 - R00 - R11 + R22)`` equal ``4 (w^2, x^2, y^2, z^2)``. The largest (at least 1) picks the
    branch; e.g. with ``w`` largest, ``q = (4w^2, R21 - R12, R02 - R20, R10 - R01) / (4w)``.
    Choosing the best-conditioned branch keeps rotations by ``pi`` (``w = 0``) exact and NaN-free.

    Shapes:
        R: ``(..., 3, 3)`` -> ``(..., 4)``

    Raises:
        ValueError: ``R`` is not a floating tensor of shape ``(..., 3, 3)``.
    """
    check_shape(R, "* 3 3", "R")
    check_floating(R, "R")
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    four_sq = torch.stack(
        (1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22), dim=-1
    )
    # candidate (..., branch, 4): each row is 4 * component * q
    candidates = torch.stack(
        (
            torch.stack((four_sq[..., 0], r21 - r12, r02 - r20, r10 - r01), dim=-1),
            torch.stack((r21 - r12, four_sq[..., 1], r01 + r10, r02 + r20), dim=-1),
            torch.stack((r02 - r20, r01 + r10, four_sq[..., 2], r12 + r21), dim=-1),
            torch.stack((r10 - r01, r02 + r20, r12 + r21, four_sq[..., 3]), dim=-1),
        ),
        dim=-2,
    )  # (..., 4, 4)
    # the chosen entry is >= 1, so clamping only protects the branches we do not pick
    denom = 2 * torch.sqrt(four_sq.clamp(min=0.1))
    candidates = candidates / denom[..., None]
    best = four_sq.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(candidates, -2, index).squeeze(-2)  # (..., 4)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``q1 q2`` of quaternions ``(w, x, y, z)``: rotate by ``q2``, then ``q1``.

    ``(w1, v1)(w2, v2) = (w1 w2 - v1.v2, w1 v2 + w2 v1 + v1 x v2)``;
    ``quaternion_to_matrix(q1 q2) = quaternion_to_matrix(q1) @ quaternion_to_matrix(q2)``.

    Shapes:
        q1: ``(..., 4)``, q2: ``(..., 4)`` (broadcast) -> ``(..., 4)``

    Raises:
        ValueError: an input is not a floating tensor of shape ``(..., 4)``.
    """
    _check_quaternion(q1, "q1")
    _check_quaternion(q2, "q2")
    w1, v1 = q1[..., :1], q1[..., 1:]
    w2, v2 = q2[..., :1], q2[..., 1:]
    v1, v2 = torch.broadcast_tensors(v1, v2)
    w = w1 * w2 - (v1 * v2).sum(-1, keepdim=True)
    v = w1 * v2 + w2 * v1 + torch.linalg.cross(v1, v2, dim=-1)
    return torch.cat((w, v), dim=-1)


def quaternion_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Conjugate ``(w, -x, -y, -z)``; the inverse rotation for a unit quaternion.

    Shapes:
        q: ``(..., 4)`` -> ``(..., 4)``

    Raises:
        ValueError: ``q`` is not a floating tensor of shape ``(..., 4)``.
    """
    _check_quaternion(q)
    return torch.cat((q[..., :1], -q[..., 1:]), dim=-1)


def quaternion_invert(q: torch.Tensor) -> torch.Tensor:
    """Multiplicative inverse ``q^* / |q|^2`` (equals the conjugate for a unit quaternion).

    Shapes:
        q: ``(..., 4)`` -> ``(..., 4)``

    Raises:
        ValueError: ``q`` is not a floating tensor of shape ``(..., 4)``.
    """
    _check_quaternion(q)
    return quaternion_conjugate(q) / (q * q).sum(-1, keepdim=True)


def quaternion_apply(q: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Rotate points by quaternions: ``q p q^*`` with ``q`` normalised first.

    For unit ``q = (w, v)``: ``p' = p + 2 w (v x p) + 2 v x (v x p)``.

    Shapes:
        q: ``(..., 4)``, points: ``(..., 3)`` (broadcast) -> ``(..., 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    _check_quaternion(q)
    check_shape(points, "* 3", "points")
    check_floating(points, "points")
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, v = q[..., :1], q[..., 1:]
    v, p = torch.broadcast_tensors(v, points)
    w = w.expand(*v.shape[:-1], 1)
    vxp = torch.linalg.cross(v, p, dim=-1)
    return p + 2 * w * vxp + 2 * torch.linalg.cross(v, vxp, dim=-1)


# --------------------------------------------------------------------------------------------
# axis-angle
# --------------------------------------------------------------------------------------------


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: rotation by ``|v|`` about ``v / |v|``.

    ``R = I + A [v]_x + B [v]_x^2`` with ``A = sin(theta)/theta``, ``B = (1 - cos theta)/theta^2``,
    ``theta = |v|``. Below ``theta^2 < 1e-4`` (f64: ``1e-6``) the Taylor series
    ``A = 1 - theta^2/6 + theta^4/120``, ``B = 1/2 - theta^2/24 + theta^4/720`` is used, so the map
    is smooth with finite gradients at ``v = 0``.

    Shapes:
        v: ``(..., 3)`` -> ``(..., 3, 3)``

    Raises:
        ValueError: ``v`` is not a floating tensor of shape ``(..., 3)``.
    """
    check_shape(v, "* 3", "v")
    check_floating(v, "v")
    theta2 = (v * v).sum(-1)
    small = theta2 < (1e-6 if v.dtype == torch.float64 else 1e-4)
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(safe2)
    A = torch.where(small, 1 - theta2 / 6 + theta2**2 / 120, torch.sin(theta) / theta)
    B = torch.where(small, 0.5 - theta2 / 24 + theta2**2 / 720, (1 - torch.cos(theta)) / safe2)
    K = skew(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    return eye + A[..., None, None] * K + B[..., None, None] * (K @ K)


def axis_angle_to_quaternion(v: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(cos(theta/2), sin(theta/2) v/theta)`` of the rotation vector ``v``.

    ``sin(theta/2)/theta`` uses its Taylor series ``1/2 - theta^2/48 + theta^4/3840`` near 0.

    Shapes:
        v: ``(..., 3)`` -> ``(..., 4)``

    Raises:
        ValueError: ``v`` is not a floating tensor of shape ``(..., 3)``.
    """
    check_shape(v, "* 3", "v")
    check_floating(v, "v")
    theta2 = (v * v).sum(-1, keepdim=True)
    small = theta2 < (1e-6 if v.dtype == torch.float64 else 1e-4)
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    half_sinc = torch.where(small, 0.5 - theta2 / 48 + theta2**2 / 3840, torch.sin(theta / 2) / theta)
    w = torch.where(small, 1 - theta2 / 8 + theta2**2 / 384, torch.cos(theta / 2))
    return torch.cat((w, half_sinc * v), dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Rotation vector (axis times angle, angle in ``[0, pi]``) of a quaternion ``(w, x, y, z)``.

    With ``q`` normalised and flipped to ``w >= 0``: ``theta = 2 atan2(|v|, w)`` and the result
    is ``v theta / |v|``; ``theta/|v| = 2/w (1 - |v|^2/(3 w^2))`` near ``v = 0``.

    Shapes:
        q: ``(..., 4)`` -> ``(..., 3)``

    Raises:
        ValueError: ``q`` is not a floating tensor of shape ``(..., 4)``.
    """
    _check_quaternion(q)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    n2 = (v * v).sum(-1, keepdim=True)
    small = n2 < (1e-12 if q.dtype == torch.float64 else 1e-6)
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    w_safe = torch.where(small, w, torch.ones_like(w))  # w ~ 1 where small
    ratio = torch.where(small, 2 / w_safe * (1 - n2 / (3 * w_safe**2)), 2 * torch.atan2(n, w) / n)
    return ratio * v


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation vector of a rotation matrix (through :func:`matrix_to_quaternion`).

    Exact at angle ``pi`` (then either sign of the axis may come back; both give the same ``R``).

    Shapes:
        R: ``(..., 3, 3)`` -> ``(..., 3)``

    Raises:
        ValueError: ``R`` is not a floating tensor of shape ``(..., 3, 3)``.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


# --------------------------------------------------------------------------------------------
# 6D representation, distances, sampling
# --------------------------------------------------------------------------------------------


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Rotation from the 6D representation (Zhou et al., 2019) by Gram-Schmidt.

    ``x = (a1, a2)``: ``b1 = a1/|a1|``, ``b2 = normalise(a2 - (b1.a2) b1)``, ``b3 = b1 x b2``;
    ``R = [b1 b2 b3]`` (columns).

    Shapes:
        x: ``(..., 6)`` -> ``(..., 3, 3)``

    Raises:
        ValueError: ``x`` is not a floating tensor of shape ``(..., 6)``.
    """
    check_shape(x, "* 6", "x")
    check_floating(x, "x")
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rotation_6d(R: torch.Tensor) -> torch.Tensor:
    """The 6D representation: the first two columns of ``R``, concatenated.

    Shapes:
        R: ``(..., 3, 3)`` -> ``(..., 6)``

    Raises:
        ValueError: ``R`` is not a floating tensor of shape ``(..., 3, 3)``.
    """
    check_shape(R, "* 3 3", "R")
    check_floating(R, "R")
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def geodesic_distance(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle of ``R1^T R2`` in ``[0, pi]``: the geodesic distance on SO(3).

    With ``M = R1^T R2``: ``sin(theta) = |vee(M - M^T)| / 2`` and ``cos(theta) = (tr M - 1)/2``,
    ``theta = atan2(sin, cos)``: accurate near ``0`` and near ``pi``, unlike ``acos``. The
    gradient at exactly ``theta = 0`` is 0 (a subgradient), not NaN.

    Shapes:
        R1: ``(..., 3, 3)``, R2: ``(..., 3, 3)`` (broadcast) -> ``(...)``

    Raises:
        ValueError: an input is not a floating tensor of shape ``(..., 3, 3)``.
    """
    check_shape(R1, "* 3 3", "R1")
    check_shape(R2, "* 3 3", "R2")
    check_floating(R1, "R1")
    check_floating(R2, "R2")
    M = _transpose(R1) @ R2
    sin = _safe_norm(_vee(M))
    cos = (M.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.atan2(sin, cos)


def random_rotation(shape=(), generator: torch.Generator | None = None, dtype=None, device=None) -> torch.Tensor:
    """Rotations drawn uniformly (Haar measure) on SO(3).

    A 4D standard Gaussian normalised is uniform on the unit sphere ``S^3``, and the map
    ``S^3 -> SO(3)`` (double cover) pushes that to the uniform measure on rotations.

    Shapes:
        -> ``(*shape, 3, 3)``

    Raises:
        ValueError: ``shape`` is not a tuple of non-negative ints.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ValueError(f"shape: expected a tuple of non-negative ints, received {shape}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    gen_device = generator.device if generator is not None else device
    q = torch.randn(*shape, 4, generator=generator, dtype=dtype, device=gen_device)
    return quaternion_to_matrix(q).to(device=device)


# --------------------------------------------------------------------------------------------
# cameras
# --------------------------------------------------------------------------------------------


def intrinsics(focal, height, width, principal=None, skew=0.0, *, focal_y=None) -> torch.Tensor:
    """The pinhole intrinsics ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` (pixels).

    ``focal`` is ``fx``: a float or a tensor ``(...)`` (one focal length per batch element);
    ``focal_y`` is ``fy`` with the same shapes, defaulting to ``fx`` (square pixels). A Python
    pair ``(fx, fy)`` is accepted as ``focal`` too. A tensor is never split into ``(fx, fy)``,
    so a batch of two focal lengths is simply a batch. ``principal`` defaults to the image
    centre ``(width/2, height/2)`` (pixel centres sit at half-integers); otherwise a pair of
    floats or a tensor ``(..., 2)``. ``skew`` is a float or a tensor ``(...)``. All batch shapes
    broadcast. Tensors fix the dtype/device; otherwise the default dtype on CPU.

    Shapes:
        focal, focal_y: float or ``(...)``; principal: ``(..., 2)`` -> ``(..., 3, 3)``

    Raises:
        ValueError: a non-floating tensor, ``focal_y`` given with a pair ``focal``, or
            ``principal`` not of shape ``(..., 2)``.
    """
    if isinstance(focal, (tuple, list)):
        if len(focal) != 2 or focal_y is not None:
            raise ValueError(f"focal: expected a float, a tensor (...) or a pair (fx, fy) without focal_y, received {focal!r}")
        focal, focal_y = focal
    fx = _float_tensor(focal, "focal")
    fy = fx if focal_y is None else _float_tensor(focal_y, "focal_y")
    if principal is None:
        cx, cy = width / 2.0, height / 2.0
    elif isinstance(principal, torch.Tensor):
        check_shape(principal, "* 2", "principal")
        check_floating(principal, "principal")
        cx, cy = principal.unbind(-1)
    else:
        if len(principal) != 2:
            raise ValueError(f"principal: expected a pair (cx, cy), received {principal!r}")
        cx, cy = principal
    if isinstance(skew, torch.Tensor):
        check_floating(skew, "skew")
    fx, fy, cx, cy, s = _common(fx, fy, cx, cy, skew)
    fx, fy, cx, cy, s = torch.broadcast_tensors(fx, fy, cx, cy, s)
    o, z = torch.ones_like(fx), torch.zeros_like(fx)
    return _matrix((fx, s, cx), (z, fy, cy), (z, z, o))


def focal_from_fov(fov, size):
    """Focal length (pixels) for a field of view ``fov`` (radians) across ``size`` pixels.

    ``f = size / (2 tan(fov / 2))``. Returns a float for float inputs, else a tensor.

    Shapes:
        fov: float or ``(...)``, size: float or ``(...)`` -> same

    Raises:
        ValueError: a non-floating tensor.
    """
    if not isinstance(fov, torch.Tensor) and not isinstance(size, torch.Tensor):
        return size / (2 * math.tan(fov / 2))
    fov, size = _common(_checked(fov, "fov"), _checked(size, "size"))
    return size / (2 * torch.tan(fov / 2))


def fov_from_focal(focal, size):
    """Field of view (radians) across ``size`` pixels for a focal length ``focal`` (pixels).

    ``fov = 2 atan(size / (2 f))``. Returns a float for float inputs, else a tensor.

    Shapes:
        focal: float or ``(...)``, size: float or ``(...)`` -> same

    Raises:
        ValueError: a non-floating tensor.
    """
    if not isinstance(focal, torch.Tensor) and not isinstance(size, torch.Tensor):
        return 2 * math.atan(size / (2 * focal))
    focal, size = _common(_checked(focal, "focal"), _checked(size, "size"))
    return 2 * torch.atan(size / (2 * focal))


def look_at(eye: torch.Tensor, target: torch.Tensor | None = None, up: torch.Tensor | None = None):
    """``cam_from_world`` ``(R, t)`` of a camera at ``eye`` looking at ``target`` (OpenCV axes).

    The rows of ``R`` are the camera axes in world coordinates:
    ``z = normalise(target - eye)`` (forward), ``x = normalise(z x up)`` (image right),
    ``y = z x x`` (image down, i.e. ``-up`` made orthogonal to ``z``), and ``t = -R eye``.
    So the world ``up`` projects upward in the image (decreasing ``v``).

    Fallback (no error, no NaN): where ``up`` is parallel to the viewing direction
    (``|z x up| < 1e-6 |up|``), ``up`` is replaced by ``(0, 0, z_y)`` if the camera looks along
    the world ``y`` axis (``|z_y| > 0.9``: looking down, the image's up is ``-z``; looking up, it
    is ``+z``), else by ``+y``. For the default ``up`` this is the limit of
    :func:`camera_from_viewpoint` at azimuth 0 and elevation ``+-pi/2``.

    Shapes:
        eye: ``(..., 3)``; target, up: ``(..., 3)`` (broadcast; default origin and ``+y``)
        -> R ``(..., 3, 3)``, t ``(..., 3)``

    Raises:
        ValueError: wrong shapes, or ``eye == target`` somewhere (this check syncs with the GPU).
    """
    check_shape(eye, "* 3", "eye")
    check_floating(eye, "eye")
    if target is None:
        target = torch.zeros(3, dtype=eye.dtype, device=eye.device)
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device)
    check_shape(target, "* 3", "target")
    check_shape(up, "* 3", "up")
    check_floating(target, "target")
    check_floating(up, "up")
    eye, target, up = torch.broadcast_tensors(eye, target, up)
    forward = target - eye
    dist = torch.linalg.vector_norm(forward, dim=-1, keepdim=True)
    if bool((dist <= torch.finfo(eye.dtype).tiny).any()):
        raise ValueError("look_at: eye and target coincide somewhere: the viewing direction is undefined")
    z = forward / dist
    x = torch.linalg.cross(z, up, dim=-1)
    up_norm = torch.linalg.vector_norm(up, dim=-1, keepdim=True)
    parallel = torch.linalg.vector_norm(x, dim=-1, keepdim=True) < 1e-6 * up_norm
    plus_y = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device)
    along_z = torch.stack((torch.zeros_like(z[..., 1]), torch.zeros_like(z[..., 1]), z[..., 1]), dim=-1)
    fallback = torch.where(z[..., 1:2].abs() > 0.9, along_z, plus_y)
    x = torch.where(parallel, torch.linalg.cross(z, fallback, dim=-1), x)
    x = F.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)
    R = torch.stack((x, y, z), dim=-2)
    t = -(R @ eye[..., None])[..., 0]
    return R, t


_OPENCV_FLIP = (1.0, -1.0, -1.0)  # diag(1, -1, -1) = Rx(pi): camera axes at azimuth 0, elevation 0


def camera_from_viewpoint(azimuth, elevation, inplane=0.0, distance=1.0):
    """``cam_from_world`` ``(R, t)`` of the viewpoint ``(azimuth, elevation, inplane, distance)``.

    The camera sits at ``C = d (cos(el) sin(az), sin(el), cos(el) cos(az))`` and looks at the
    origin. Closed form, smooth everywhere (also at ``el = +-pi/2``, where look-at is singular):

    ``R = Rz(-psi) D Rx(el) Ry(-az) = D (Ry(az) Rx(-el) Rz(-psi))^T``, ``D = diag(1, -1, -1)``,

    where ``D`` turns the world axes into OpenCV camera axes of the camera on ``+z`` looking
    down ``-z``, and ``Rz(-psi)`` (in camera coordinates; ``y`` points down the image) turns the
    image counter-clockwise on screen by ``psi``. Since ``R C = (0, 0, -d)``, ``t = (0, 0, d)``.
    For ``inplane = 0`` it equals ``look_at(C)`` with ``up = +y``.

    Shapes:
        each argument: float or tensor, broadcast to ``(...)`` -> R ``(..., 3, 3)``, t ``(..., 3)``

    Raises:
        ValueError: a non-floating tensor argument.
    """
    args = zip((azimuth, elevation, inplane, distance), ("azimuth", "elevation", "inplane", "distance"))
    az, el, psi, d = torch.broadcast_tensors(*_common(*(_checked(a, n) for a, n in args)))
    euler = torch.stack((az, -el, -psi), dim=-1)
    flip = torch.tensor(_OPENCV_FLIP, dtype=az.dtype, device=az.device)
    R = flip[:, None] * _transpose(euler_to_matrix(euler))
    z = torch.zeros_like(d)
    t = torch.stack((z, z, d), dim=-1)
    return R, t


def viewpoint_from_rotation(R: torch.Tensor):
    """``(azimuth, elevation, inplane)`` of a camera rotation; inverse of :func:`camera_from_viewpoint`.

    ``R^T D = Ry(az) Rx(-el) Rz(-psi)``, so the Euler angles of ``R^T D`` are ``(az, -el, -psi)``.
    Ranges: azimuth in ``(-pi, pi]``, elevation in ``[-pi/2, pi/2]``, inplane in ``(-pi, pi]``. At
    ``el = +-pi/2`` the in-plane angle is set to 0 and the azimuth absorbs it.

    Shapes:
        R: ``(..., 3, 3)`` -> three tensors ``(...)``

    Raises:
        ValueError: ``R`` is not a floating tensor of shape ``(..., 3, 3)``.
    """
    check_shape(R, "* 3 3", "R")
    check_floating(R, "R")
    flip = torch.tensor(_OPENCV_FLIP, dtype=R.dtype, device=R.device)
    yaw, pitch, roll = matrix_to_euler(_transpose(R) * flip).unbind(-1)
    return _wrap_pi(yaw), -pitch, _wrap_pi(-roll)


def camera_center(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Camera centre in world coordinates, ``C = -R^T t``.

    Shapes:
        R: ``(..., 3, 3)``, t: ``(..., 3)`` -> ``(..., 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    check_shape(R, "* 3 3", "R")
    check_shape(t, "* 3", "t")
    check_floating(R, "R")
    check_floating(t, "t")
    return -(_transpose(R) @ t[..., None])[..., 0]


def relative_pose(R_a: torch.Tensor, t_a: torch.Tensor, R_b: torch.Tensor, t_b: torch.Tensor):
    """Pose mapping camera-a coordinates to camera-b coordinates: ``X_b = R_ab X_a + t_ab``.

    From ``X_a = R_a X + t_a`` and ``X_b = R_b X + t_b``: ``R_ab = R_b R_a^T``,
    ``t_ab = t_b - R_ab t_a``.

    Shapes:
        R_a, R_b: ``(..., 3, 3)``; t_a, t_b: ``(..., 3)`` -> R_ab ``(..., 3, 3)``, t_ab ``(..., 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    for x, n, spec in ((R_a, "R_a", "* 3 3"), (t_a, "t_a", "* 3"), (R_b, "R_b", "* 3 3"), (t_b, "t_b", "* 3")):
        check_shape(x, spec, n)
        check_floating(x, n)
    R_ab = R_b @ _transpose(R_a)
    t_ab = t_b - (R_ab @ t_a[..., None])[..., 0]
    return R_ab, t_ab


def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rigid transform ``R X + t`` of a batch of point sets.

    Shapes:
        points: ``(..., N, 3)``, R: ``(..., 3, 3)``, t: ``(..., 3)`` (batch dims broadcast)
        -> ``(..., N, 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    check_shape(points, "* N 3", "points")
    check_shape(R, "* 3 3", "R")
    check_shape(t, "* 3", "t")
    for x, n in ((points, "points"), (R, "R"), (t, "t")):
        check_floating(x, n)
    return points @ _transpose(R) + t[..., None, :]


def project(points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor):
    """Pinhole projection ``lambda (u, v, 1)^T = K (R X + t)``; returns pixels and depth ``z``.

    Points at or behind the camera are not masked: their depth (``<= 0``) comes back as is and
    their pixels are ``(K X_c)_{uv} / z'`` with the safe denominator ``z' = z`` where
    ``|z| >= eps`` and ``z' = eps`` (with the sign of ``z``, ``+`` at 0) otherwise,
    ``eps = finfo(dtype).eps``: always finite, no inf/NaN. Mask with ``depth > 0`` yourself.

    Shapes:
        points: ``(..., N, 3)``, K: ``(..., 3, 3)``, R: ``(..., 3, 3)``, t: ``(..., 3)``
        -> pixels ``(..., N, 2)``, depth ``(..., N)``

    Raises:
        ValueError: wrong shapes (e.g. ``K`` of shape ``(3, 4)``) or non-floating dtypes.
    """
    check_shape(K, "* 3 3", "K")
    check_floating(K, "K")
    X_c = transform_points(points, R, t)
    uvw = X_c @ _transpose(K)
    z = X_c[..., 2]
    pixels = uvw[..., :2] / _safe_denominator(z)[..., None]
    return pixels, z


def unproject(pixels: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """World points at the given depths along the rays of the given pixels (inverse of :func:`project`).

    ``X_c = z K^{-1} (u, v, 1)^T``, ``X = R^T (X_c - t)``.

    Shapes:
        pixels: ``(..., N, 2)``, depth: ``(..., N)``, K, R: ``(..., 3, 3)``, t: ``(..., 3)``
        -> ``(..., N, 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    check_shape(pixels, "* N 2", "pixels")
    check_shape(depth, "* N", "depth")
    check_shape(K, "* 3 3", "K")
    check_shape(R, "* 3 3", "R")
    check_shape(t, "* 3", "t")
    for x, n in ((pixels, "pixels"), (depth, "depth"), (K, "K"), (R, "R"), (t, "t")):
        check_floating(x, n)
    if pixels.shape[-2] != depth.shape[-1]:
        raise ValueError(f"depth: expected shape (..., {pixels.shape[-2]}) to match pixels, received {tuple(depth.shape)}")
    homog = torch.cat((pixels, torch.ones_like(pixels[..., :1])), dim=-1)  # (..., N, 3)
    rays = homog @ _transpose(torch.linalg.inv(K))
    X_c = rays * depth[..., None]
    return (X_c - t[..., None, :]) @ R


def pixel_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Pixel centres ``(u, v) = (j + 1/2, i + 1/2)`` of an ``height x width`` image.

    ``grid[i, j] = (j + 0.5, i + 0.5)``: ``u`` along the width (columns), ``v`` down the rows.

    Shapes:
        -> ``(H, W, 2)``

    Raises:
        ValueError: ``height`` or ``width`` is not a positive int.
    """
    for v, n in ((height, "height"), (width, "width")):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{n}: expected a positive int, received {v!r}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    u = torch.arange(width, device=device, dtype=dtype) + 0.5
    v = torch.arange(height, device=device, dtype=dtype) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack((uu, vv), dim=-1)


# --------------------------------------------------------------------------------------------
# homographies
# --------------------------------------------------------------------------------------------


def plane_homography(K_ref, K_src, R, t, n, d) -> torch.Tensor:
    """Homography induced by the plane ``n^T X + d = 0`` (reference camera frame).

    A point on the plane satisfies ``-n^T X / d = 1``, so its source-camera coordinates are
    ``R X + t = (R - t n^T / d) X`` and ``H = K_src (R - t n^T / d) K_ref^{-1}`` maps reference
    pixels to source pixels. ``(R, t)`` maps the reference frame to the source frame (see
    :func:`relative_pose`); ``n`` points towards the reference camera and ``d > 0`` is the
    plane's distance.

    Shapes:
        K_ref, K_src, R: ``(..., 3, 3)``; t, n: ``(..., 3)``; d: ``(...)`` or float (broadcast)
        -> ``(..., 3, 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    for x, name, spec in ((K_ref, "K_ref", "* 3 3"), (K_src, "K_src", "* 3 3"), (R, "R", "* 3 3"), (t, "t", "* 3"), (n, "n", "* 3")):
        check_shape(x, spec, name)
        check_floating(x, name)
    d = _checked(d, "d")
    if not isinstance(d, torch.Tensor):
        d = torch.tensor(float(d), dtype=R.dtype, device=R.device)
    A = R - t[..., :, None] * n[..., None, :] / d[..., None, None]
    return K_src @ A @ torch.linalg.inv(K_ref)


def fronto_parallel_homographies(K_ref, K_src, R, t, depths) -> torch.Tensor:
    """Homographies of the fronto-parallel planes ``z = depth`` of the reference camera, all at once.

    ``n = (0, 0, -1)``, ``d = depth``: ``H_p = K_src (R + t e_3^T / depth_p) K_ref^{-1}``.

    Shapes:
        K_ref, K_src, R: ``(..., 3, 3)``; t: ``(..., 3)``; depths: ``(P,)`` or ``(..., P)``
        -> ``(..., P, 3, 3)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    check_shape(depths, "* P", "depths")
    check_floating(depths, "depths")
    for x, name, spec in ((K_ref, "K_ref", "* 3 3"), (K_src, "K_src", "* 3 3"), (R, "R", "* 3 3"), (t, "t", "* 3")):
        check_shape(x, spec, name)
        check_floating(x, name)
    n = torch.tensor([0.0, 0.0, -1.0], dtype=R.dtype, device=R.device)
    return plane_homography(K_ref[..., None, :, :], K_src[..., None, :, :], R[..., None, :, :], t[..., None, :], n, depths)


def apply_homography(H: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Map pixels by homographies: ``(u', v') = (H (u, v, 1)^T)_{12} / (H (u, v, 1)^T)_3``.

    The denominator is made safe as in :func:`project` (``|w| >= eps``), so no inf/NaN.

    Shapes:
        H: ``(..., 3, 3)``, pixels: ``(..., N, 2)`` (batch dims broadcast) -> ``(..., N, 2)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes.
    """
    return _apply_homography(H, pixels)[0]


def _apply_homography(H, pixels):
    check_shape(H, "* 3 3", "H")
    check_shape(pixels, "* N 2", "pixels")
    check_floating(H, "H")
    check_floating(pixels, "pixels")
    homog = torch.cat((pixels, torch.ones_like(pixels[..., :1])), dim=-1)
    mapped = homog @ _transpose(H)  # (..., N, 3)
    w = mapped[..., 2]
    return mapped[..., :2] / _safe_denominator(w)[..., None], w


def warp_homography(image, H, height, width, padding_mode="zeros", mode="bilinear", return_mask=False):
    """Warp a source image into a reference view: ``out[p] = image(H p)``, one ``grid_sample``.

    ``H`` maps OUTPUT (reference) pixel centres ``p = (j + 1/2, i + 1/2)`` to SOURCE pixels
    ``(u, v)``, sampled with ``align_corners=False`` at the normalised coordinate
    ``(2u/W_s - 1, 2v/H_s - 1)``. With ``H`` of shape ``(B, P, 3, 3)`` (a plane sweep) all ``P``
    planes are stacked along the grid's height, so the image is not copied ``P`` times.

    The validity mask (``return_mask=True``) is 1 where the source point lies in front of the
    source camera (``w > 0``) and inside the source image ``[0, W_s] x [0, H_s]``, else 0.
    Points behind the source camera are sent outside the image, and sample positions are
    clamped to at most half an image beyond its border (no effect with ``"zeros"`` or
    ``"border"`` padding; with ``"reflection"`` only that first half image reflects).

    Shapes:
        image: ``(B, C, H_s, W_s)``, H: ``(B, 3, 3)`` or ``(B, P, 3, 3)``
        -> ``(B, C, H, W)`` or ``(B, P, C, H, W)``; mask ``(B, 1, H, W)`` or ``(B, P, 1, H, W)``

    Raises:
        ValueError: wrong shapes or non-floating dtypes, bad ``height``/``width``.
    """
    dims = check_shape(image, "B C Hs Ws", "image")
    check_floating(image, "image")
    check_floating(H, "H")
    planes = H.dim() == 4
    check_shape(H, "B P 3 3" if planes else "B 3 3", "H", dims)
    B, C, Hs, Ws = image.shape
    Hm = H if planes else H[:, None]  # (B, P, 3, 3)
    P = Hm.shape[1]
    grid = pixel_grid(height, width, device=image.device, dtype=H.dtype).reshape(1, 1, height * width, 2)
    uv, w = _apply_homography(Hm, grid)  # (B, P, H*W, 2), (B, P, H*W)
    scale = torch.tensor([2.0 / Ws, 2.0 / Hs], dtype=uv.dtype, device=uv.device)
    norm = uv * scale - 1
    front = w > 0
    # behind the source camera -> outside; clamping keeps grid_sample's integer indices in range
    norm = torch.where(front[..., None], norm, torch.full_like(norm, -2.0)).clamp(-2.0, 2.0)
    norm = norm.reshape(B, P * height, width, 2).to(image.dtype)
    out = F.grid_sample(image, norm, mode=mode, padding_mode=padding_mode, align_corners=False)  # (B, C, P*H, W)
    out = out.reshape(B, C, P, height, width).permute(0, 2, 1, 3, 4)  # (B, P, C, H, W)
    if not planes:
        out = out[:, 0]
    if not return_mask:
        return out
    inside = front & (uv[..., 0] >= 0) & (uv[..., 0] <= Ws) & (uv[..., 1] >= 0) & (uv[..., 1] <= Hs)
    mask = inside.to(image.dtype).reshape(B, P, 1, height, width)
    return out, (mask if planes else mask[:, 0])
