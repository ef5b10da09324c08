"""Tests of lessons.io: mesh and binvox readers/writers, malformed files, the voxelizer."""

from __future__ import annotations

import math
import re
import struct
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lessons import io

# ---------------------------------------------------------------------------------------------
# meshes built here, so the tests depend on nothing but lessons.io
# ---------------------------------------------------------------------------------------------


def box(lo, hi, dtype=torch.float64):
    """Axis-aligned box: 8 corners (bit 2 = x, bit 1 = y, bit 0 = z), 12 outward CCW triangles."""
    lo, hi = torch.tensor(lo, dtype=dtype), torch.tensor(hi, dtype=dtype)
    bits = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=dtype)
    v = lo + bits * (hi - lo)
    f = torch.tensor(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )
    return v, f


def icosphere(level: int, r: float = 1.0, dtype=torch.float64):
    """Icosahedron subdivided ``level`` times, projected to the sphere of radius r (CCW out)."""
    t = (1 + 5**0.5) / 2
    v = torch.tensor(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]],
        dtype=torch.float64,
    )
    f = torch.tensor(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    )
    v = v / v.norm(dim=1, keepdim=True)
    for _ in range(level):
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values
        ue, inv = torch.unique(edges, dim=0, return_inverse=True)
        mid = v[ue[:, 0]] + v[ue[:, 1]]
        m = inv.view(3, -1) + len(v)
        v = torch.cat([v, mid / mid.norm(dim=1, keepdim=True)])
        a, b, c, ab, bc, ca = f[:, 0], f[:, 1], f[:, 2], m[0], m[1], m[2]
        f = torch.cat([torch.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return (v * r).to(dtype), f


def octahedron(r: float):
    v = torch.tensor([[r, 0, 0], [-r, 0, 0], [0, r, 0], [0, -r, 0], [0, 0, r], [0, 0, -r]], dtype=torch.float64)
    f = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def signed_volume(v, f):
    return float((v[f[:, 0]] * torch.linalg.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6)


def centres(R: int) -> torch.Tensor:
    """Voxel centres ``(R, R, R, 3)`` indexed [z, y, x], last axis (x, y, z), per notation.md."""
    c = (torch.arange(R, dtype=torch.float64) + 0.5) / R - 0.5
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    return torch.stack([x, y, z], -1)


def iou(a, b):
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def ball_volume(r):
    return 4.0 / 3.0 * math.pi * r**3


# ---------------------------------------------------------------------------------------------
# OFF / OBJ round trips and polygons
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["off", "obj"])
@pytest.mark.parametrize("nv,nf", [(1, 0), (3, 1), (50, 80)])
def test_round_trip(tmp_path, fmt, nv, nf, dtype, generator):
    v = torch.randn(nv, 3, generator=generator, dtype=torch.float64).to(dtype) * 10
    f = torch.randint(0, nv, (nf, 3), generator=generator)
    path = tmp_path / f"mesh.{fmt}"
    (io.save_off if fmt == "off" else io.save_obj)(path, v, f)
    v2, f2 = io.load_mesh(path)
    assert v2.dtype == torch.float32 and f2.dtype == torch.int64
    assert v2.shape == (nv, 3) and f2.shape == (nf, 3)
    assert torch.equal(v2, v.to(torch.float32))  # written with enough digits to be exact
    assert torch.equal(f2, f)


def test_round_trip_upper_case_extension(tmp_path):
    v, f = box([0, 0, 0], [1, 2, 3])
    io.save_off(tmp_path / "Box.OFF", v, f)
    v2, f2 = io.load_mesh(str(tmp_path / "Box.OFF"))
    assert torch.equal(v2, v.float()) and torch.equal(f2, f)


def test_off_quad_and_pentagon_fans(tmp_path):
    p = tmp_path / "poly.off"
    p.write_text("OFF\n6 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 0 0\n2 1 0\n4 0 1 2 3\n5 1 4 5 2 3\n")
    v, f = io.load_mesh(p)
    assert v.shape == (6, 3)
    # fans (p0, p_i, p_{i+1}) keep the polygon's winding
    assert f.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2], [1, 2, 3]]


def test_obj_polygons_forms_and_negative_indices(tmp_path):
    p = tmp_path / "forms.obj"
    p.write_text(
        "# comment\nmtllib x.mtl\no thing\ng group1\n"
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0 1.0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvn 0 0 1\nusemtl red\ns off\n"
        "f 1/1/1 2/2/1 3/3/1\n"  # v/vt/vn
        "f 1//1 3//1 4//1 # trailing comment\n"  # v//vn
        "f 1/1 2/2 3/3 4/1\n"  # v/vt quad -> 2 triangles
        "f -4 -3 -1\n"  # relative to the 4 vertices so far
        "v 2 0 0\n"
        "f -1 -4 -5\n"  # now relative to 5 vertices: 5 2 1
        "l 1 2\n"
    )
    v, f = io.load_mesh(p)
    assert v.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]]
    assert f.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 3], [0, 1, 3], [4, 1, 0]]


def test_off_modelnet_glued_header_comments_colours(tmp_path):
    v, f = box([-1, -1, -1], [1, 1, 1])
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    lines = ["OFF8 6 0", "# a comment", ""]
    lines += [" ".join(f"{x:g}" for x in row) + "  # vertex" for row in v.tolist()]
    lines += ["4 " + " ".join(map(str, q)) + " 255 0 0" for q in quads]  # RGB after the indices
    p = tmp_path / "chair_0001.off"
    p.write_text("\n".join(lines) + "\n")
    v2, f2 = io.load_mesh(p)
    assert v2.shape == (8, 3) and f2.shape == (12, 3)
    assert torch.equal(v2, v.float())
    assert signed_volume(v2.double(), f2) == pytest.approx(8.0)  # the fans keep the outward winding


def test_off_header_on_its_own_line_with_crlf_and_bom(tmp_path):
    p = tmp_path / "tri.off"
    p.write_bytes(b"\xef\xbb\xbfOFF\r\n3 1 0\r\n0 0 0\r\n1 0 0\r\n0 1 0\r\n3 0 1 2\r\n")
    v, f = io.load_mesh(p)
    assert v.shape == (3, 3) and f.tolist() == [[0, 1, 2]]


# ---------------------------------------------------------------------------------------------
# STL
# ---------------------------------------------------------------------------------------------

TET_V = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
TET_F = [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]  # outward


def stl_binary(tris, header=b"binary header", count=None):
    out = header.ljust(80, b" ")[:80] + struct.pack("<I", len(tris) if count is None else count)
    for t in tris:
        out += struct.pack("<3f", 0, 0, 0) + b"".join(struct.pack("<3f", *c) for c in t) + b"\0\0"
    return out


def stl_ascii(tris):
    s = "solid tet vertex-named\n"
    for t in tris:
        s += "  facet normal 0 0 0\n    outer loop\n"
        s += "".join(f"      vertex {c[0]:e} {c[1]:e} {c[2]:e}\n" for c in t)
        s += "    endloop\n  endfacet\n"
    return s + "endsolid tet\n"


def face_set(v, f):
    """Faces as sets of corner coordinates, each rotated to start at its smallest corner."""
    out = set()
    for tri in v[f].tolist():
        k = tri.index(min(tri))
        out.add(tuple(map(tuple, tri[k:] + tri[:k])))
    return out


@pytest.mark.parametrize("header", [b"binary header", b"solid but binary"])
def test_stl_binary_and_ascii_agree(tmp_path, header):
    tris = [[TET_V[i] for i in face] for face in TET_F]
    (tmp_path / "a.stl").write_text(stl_ascii(tris))
    (tmp_path / "b.STL").write_bytes(stl_binary(tris, header))
    va, fa = io.load_mesh(tmp_path / "a.stl")
    vb, fb = io.load_mesh(tmp_path / "b.STL")
    for v, f in ((va, fa), (vb, fb)):
        assert v.shape == (4, 3) and f.shape == (4, 3)  # merged into an indexed mesh
        assert sorted(v.tolist()) == sorted(TET_V)
        assert signed_volume(v.double(), f) == pytest.approx(1 / 6)  # winding kept
    assert face_set(va, fa) == face_set(vb, fb) == face_set(torch.tensor(TET_V), torch.tensor(TET_F))


# ---------------------------------------------------------------------------------------------
# binvox
# ---------------------------------------------------------------------------------------------


def rle_decode(payload: bytes) -> np.ndarray:
    """Naive reference decoder: one run at a time."""
    out = []
    for i in range(0, len(payload), 2):
        out += [payload[i]] * payload[i + 1]
    return np.array(out, np.uint8)


def payload(path) -> bytes:
    data = path.read_bytes()
    return data[data.index(b"\ndata\n") + len(b"\ndata\n") :]


@pytest.mark.parametrize("R", [1, 5, 16])
def test_binvox_round_trip(tmp_path, R, generator):
    occ = torch.rand(R, R, R, generator=generator) < 0.3
    p = tmp_path / "model.binvox"
    io.write_binvox(p, occ, translate=(-0.25, 0.5, 1e-3), scale=2.5)
    occ2, meta = io.read_binvox(p)
    assert occ2.dtype == torch.bool and torch.equal(occ2, occ)
    assert meta["dims"] == (R, R, R) and meta["translate"] == (-0.25, 0.5, 1e-3) and meta["scale"] == 2.5


def test_binvox_axis_order_pin(tmp_path):
    """binvox's flat index is x R^2 + z R + y (y fastest); we index [z, y, x]."""
    R, (x, y, z) = 4, (1, 2, 3)
    occ = torch.zeros(R, R, R, dtype=torch.bool)
    occ[z, y, x] = True
    p = tmp_path / "one.binvox"
    io.write_binvox(p, occ)
    flat = rle_decode(payload(p))
    assert flat.size == R**3 and np.flatnonzero(flat).tolist() == [x * R * R + z * R + y]
    back, _ = io.read_binvox(p)
    assert back.nonzero().tolist() == [[z, y, x]]


def test_binvox_hand_built_bytes(tmp_path):
    # R = 2, flat order (x, z, y): runs 0 x5, 1 x1, 0 x2 -> flat index 5 = (x=1, z=0, y=1).
    data = bytes([0, 5, 1, 1, 0, 2])
    p = tmp_path / "hand.binvox"
    p.write_bytes(b"#binvox 1\ndim 2 2 2\ntranslate 0.5 -1 2\nscale 0.25\ndata\n" + data)
    occ, meta = io.read_binvox(p)
    assert occ.nonzero().tolist() == [[0, 1, 1]]  # [z, y, x]
    assert meta == {"dims": (2, 2, 2), "translate": (0.5, -1.0, 2.0), "scale": 0.25, "version": 1}
    io.write_binvox(tmp_path / "again.binvox", occ)
    assert payload(tmp_path / "again.binvox") == data


def test_binvox_runs_longer_than_255(tmp_path):
    p = tmp_path / "full.binvox"
    io.write_binvox(p, torch.ones(8, 8, 8, dtype=torch.bool))  # one run of 512
    assert payload(p) == bytes([1, 255, 1, 255, 1, 2])
    sparse = torch.zeros(16, 16, 16, dtype=torch.bool)
    sparse[3, 7, 11] = sparse[15, 0, 0] = True  # runs of thousands of zeros around them
    io.write_binvox(p, sparse)
    counts = payload(p)[1::2]
    assert max(counts) == 255 and min(counts) >= 1
    assert torch.equal(io.read_binvox(p)[0], sparse)
    # decoded positions follow x R^2 + z R + y: [z=3, y=7, x=11] and [z=15, y=0, x=0]
    got = np.flatnonzero(rle_decode(payload(p))).tolist()
    assert got == [15 * 16, 11 * 256 + 3 * 16 + 7]


def test_binvox_version_2_values(tmp_path):
    p = tmp_path / "v2.binvox"
    p.write_bytes(b"#binvox 2\ndim 1 1 1\ndata\n" + bytes([7, 1]))
    occ, meta = io.read_binvox(p)
    assert occ.tolist() == [[[True]]] and meta["version"] == 2 and meta["scale"] == 1.0


# ---------------------------------------------------------------------------------------------
# malformed input: ValueError naming the file, quickly, without allocating what is declared
# ---------------------------------------------------------------------------------------------

TRI_OFF = "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
TRI_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
BV = b"#binvox 1\ndim 2 2 2\ndata\n"

MALFORMED = [
    ("empty.off", b"", "empty"),
    ("comments.off", b"# nothing\n\n   \n", "only comments"),
    ("header.off", b"PLY\n3 1 0\n", "header 'OFF'"),
    ("nocounts.off", b"OFF\n", "counts"),
    ("badcounts.off", b"OFF\n3.0 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "counts"),
    ("truncated.off", TRI_OFF.rsplit("\n", 3)[0].encode(), "data lines follow"),
    ("extra.off", (TRI_OFF + "3 0 1 2\n").encode(), "data lines follow"),
    ("huge.off", b"OFF\n1000000000000 1 0\n0 0 0\n", "1000000000000 vertices"),
    ("nonnumeric.off", TRI_OFF.replace("1 0 0", "1 zero 0").encode(), "line 4"),
    ("short_vertex.off", TRI_OFF.replace("1 0 0", "1 0").encode(), "3 vertex coordinates"),
    ("nan.off", TRI_OFF.replace("1 0 0", "nan 0 0").encode(), "not finite"),
    ("inf.off", TRI_OFF.replace("1 0 0", "1 -inf 0").encode(), "not finite"),
    ("f32range.off", TRI_OFF.replace("1 0 0", "1e39 0 0").encode(), "not finite"),
    ("range.off", TRI_OFF.replace("3 0 1 2", "3 0 1 3").encode(), "out of range"),
    ("negative.off", TRI_OFF.replace("3 0 1 2", "3 0 -1 2").encode(), "out of range"),
    ("short_face.off", TRI_OFF.replace("3 0 1 2", "3 0 1").encode(), "lists 2"),
    ("two_gon.off", TRI_OFF.replace("3 0 1 2", "2 0 1").encode(), "at least 3"),
    ("float_index.off", TRI_OFF.replace("3 0 1 2", "3 0 1.5 2").encode(), "not an integer"),
    ("overflow.off", TRI_OFF.replace("3 0 1 2", "3 0 1 99999999999999999999999").encode(), "integer"),
    ("novertices.off", b"OFF\n0 0 0\n", "no vertices"),
    ("empty.obj", b"", "empty"),
    ("novertices.obj", b"# only\ng a comment\nvt 0 0\n", "no vertices"),
    ("zero.obj", TRI_OBJ.replace("f 1 2 3", "f 0 1 2").encode(), "index 0"),
    ("range.obj", TRI_OBJ.replace("f 1 2 3", "f 1 2 4").encode(), "out of range"),
    ("relative.obj", TRI_OBJ.replace("f 1 2 3", "f -1 -2 -4").encode(), "out of range"),
    ("nonnumeric.obj", TRI_OBJ.replace("v 1 0 0", "v 1 O 0").encode(), "line 2"),
    ("short_v.obj", TRI_OBJ.replace("v 1 0 0", "v 1 0").encode(), "3 coordinates"),
    ("short_f.obj", TRI_OBJ.replace("f 1 2 3", "f 1 2").encode(), "at least 3"),
    ("letters.obj", TRI_OBJ.replace("f 1 2 3", "f a/1 b/2 c/3").encode(), "not an integer"),
    ("slash.obj", TRI_OBJ.replace("f 1 2 3", "f /1 2 3").encode(), "not an integer"),
    ("overflow.obj", TRI_OBJ.replace("f 1 2 3", "f 1 2 99999999999999999999999").encode(), "integer"),
    ("nan.obj", TRI_OBJ.replace("v 1 0 0", "v 1 nan 0").encode(), "not finite"),
    ("empty.stl", b"", "empty"),
    ("short.stl", b"not an stl", "too short"),
    ("count.stl", stl_binary([[TET_V[0], TET_V[1], TET_V[2]]], count=10**9), "1000000000 triangles"),
    ("count_small.stl", stl_binary([[TET_V[0], TET_V[1], TET_V[2]]] * 2, count=1), "declares 1 triangles"),
    ("zero.stl", stl_binary([]), "0 triangles"),
    ("nan.stl", stl_binary([[[0, 0, 0], [float("nan"), 0, 0], [0, 1, 0]]]), "not finite"),
    ("facets.stl", stl_ascii([[TET_V[0], TET_V[1], TET_V[2]]]).replace("      vertex", "      vertx", 1).encode(), "2 vertices"),
    ("nofacet.stl", b"solid x\nendsolid x\n", "no 'facet'"),
    ("nonnumeric.stl", stl_ascii([[TET_V[0], TET_V[1], TET_V[2]]]).replace("1.000000e+00", "one", 1).encode(), "not a number"),
    ("empty.binvox", b"", "empty"),
    ("magic.binvox", b"#voxbin 1\ndim 2 2 2\ndata\n" + bytes([0, 8]), "#binvox 1"),
    ("version.binvox", b"#binvox 3\ndim 2 2 2\ndata\n" + bytes([0, 8]), "version"),
    ("nodata.binvox", b"#binvox 1\ndim 2 2 2\n", "no 'data'"),
    ("nodim.binvox", b"#binvox 1\ndata\n" + bytes([0, 8]), "no 'dim'"),
    ("dims.binvox", b"#binvox 1\ndim 1000000 1000000 1000000\ndata\n" + bytes([1, 255]) * 4, "1000000000000000000 voxels"),
    ("noncubic.binvox", b"#binvox 1\ndim 2 2 1\ndata\n" + bytes([0, 4]), "cubic"),
    ("zero_dim.binvox", b"#binvox 1\ndim 0 0 0\ndata\n", "cubic"),
    ("float_dim.binvox", b"#binvox 1\ndim 2.0 2 2\ndata\n" + bytes([0, 8]), "positive integers"),
    ("unknown.binvox", b"#binvox 1\ndim 2 2 2\ncolour red\ndata\n" + bytes([0, 8]), "unknown header"),
    ("translate.binvox", b"#binvox 1\ndim 2 2 2\ntranslate 0 x 0\ndata\n" + bytes([0, 8]), "not numbers"),
    ("scale.binvox", b"#binvox 1\ndim 2 2 2\nscale inf\ndata\n" + bytes([0, 8]), "not finite"),
    ("odd.binvox", BV + bytes([0, 7, 1]), "odd number"),
    ("short_runs.binvox", BV + bytes([0, 3, 1, 4]), "add up to 7"),
    ("long_runs.binvox", BV + bytes([0, 5, 1, 4]), "add up to 9"),
]


@pytest.mark.parametrize("name,content,fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_raises_value_error_naming_the_file(tmp_path, name, content, fragment):
    p = tmp_path / name
    p.write_bytes(content)
    reader = io.read_binvox if name.endswith(".binvox") else io.load_mesh
    with pytest.raises(ValueError, match=re.escape(name)) as err:
        reader(p)
    assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize("name", ["huge.off", "count.stl", "dims.binvox"])
def test_absurd_counts_do_not_allocate(tmp_path, name):
    content = dict((m[0], m[1]) for m in MALFORMED)[name]
    p = tmp_path / name
    p.write_bytes(content)
    reader = io.read_binvox if name.endswith(".binvox") else io.load_mesh
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=re.escape(name)):
            reader(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # well under a megabyte, whatever the file declares


def test_unknown_extension_and_missing_file(tmp_path):
    p = tmp_path / "mesh.ply"
    p.write_text("ply\n")
    with pytest.raises(ValueError, match=r"mesh\.ply.*unknown mesh extension '\.ply'"):
        io.load_mesh(p)
    with pytest.raises(FileNotFoundError):
        io.load_mesh(tmp_path / "missing.off")
    with pytest.raises(FileNotFoundError):
        io.read_binvox(tmp_path / "missing.binvox")


def test_writers_check_their_inputs(tmp_path):
    v, f = box([0, 0, 0], [1, 1, 1])
    for save in (io.save_off, io.save_obj):
        with pytest.raises(ValueError, match=r"vertices: expected shape \(V, 3\).*received \(8, 2\)"):
            save(tmp_path / "x", v[:, :2], f)
        with pytest.raises(ValueError, match=r"faces: expected dtype"):
            save(tmp_path / "x", v, f.float())
        with pytest.raises(ValueError, match=r"faces: expected indices in \[0, 8\)"):
            save(tmp_path / "x", v, f + 1)
        with pytest.raises(ValueError, match="vertices: expected finite"):
            save(tmp_path / "x", v * float("nan"), f)
    occ = torch.zeros(4, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"occupancy: expected shape \(R, R, R\)"):
        io.write_binvox(tmp_path / "x.binvox", torch.zeros(4, 4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="occupancy: expected dtype"):
        io.write_binvox(tmp_path / "x.binvox", occ.float())
    with pytest.raises(ValueError, match="translate"):
        io.write_binvox(tmp_path / "x.binvox", occ, translate=(0, 0))
    with pytest.raises(ValueError, match="scale"):
        io.write_binvox(tmp_path / "x.binvox", occ, scale=0.0)


# ---------------------------------------------------------------------------------------------
# fuzz: nothing but ValueError, whatever the bytes
# ---------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

TOKENS = [
    "OFF", "OFF3", "COFF", "v", "vt", "vn", "f", "g", "#", "solid", "facet", "normal", "outer", "loop",
    "vertex", "endloop", "endfacet", "endsolid", "#binvox", "dim", "translate", "scale", "data",
    "0", "1", "2", "3", "4", "-1", "-2", "1.5", "1e39", "nan", "inf", "-0", "1/2/3", "1//2", "/",
    "99999999999999999999999", "1000000000000", "x", "\t", "",
]


def check_reader(tmp_path, name: str, content: bytes):
    p = tmp_path / name
    p.write_bytes(content)
    try:
        if name.endswith(".binvox"):
            occ, meta = io.read_binvox(p)
            assert occ.dtype == torch.bool and occ.dim() == 3
        else:
            v, f = io.load_mesh(p)
            assert v.dtype == torch.float32 and v.shape[1] == 3 and bool(torch.isfinite(v).all())
            assert f.dtype == torch.int64 and f.shape[1] == 3
            assert f.numel() == 0 or (0 <= int(f.min()) and int(f.max()) < len(v))
    except ValueError as err:
        assert name in str(err)


@FUZZ
@given(data=st.binary(max_size=300), ext=st.sampled_from(["off", "obj", "stl", "binvox"]))
def test_fuzz_random_bytes(tmp_path, data, ext):
    check_reader(tmp_path, f"fuzz.{ext}", data)


@FUZZ
@given(
    lines=st.lists(st.lists(st.sampled_from(TOKENS), max_size=6), max_size=12),
    ext=st.sampled_from(["off", "obj", "stl", "binvox"]),
    tail=st.binary(max_size=20),
)
def test_fuzz_random_token_lines(tmp_path, lines, ext, tail):
    text = "\n".join(" ".join(line) for line in lines) + "\n"
    check_reader(tmp_path, f"tokens.{ext}", text.encode() + (tail if ext == "binvox" else b""))


# ---------------------------------------------------------------------------------------------
# normalize_mesh
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_normalize_mesh_batch_shapes(batch, dtype, generator):
    v = (torch.rand(*batch, 20, 3, generator=generator, dtype=torch.float64) * torch.tensor([4.0, 1.0, 2.0]) + 7).to(dtype)
    out, center, scale = io.normalize_mesh(v, margin=0.1)
    assert out.shape == v.shape and center.shape == (*batch, 3) and scale.shape == batch
    lo, hi = out.amin(-2), out.amax(-2)
    tol = dict(atol=1e-5, rtol=0) if dtype == torch.float32 else dict(atol=1e-12, rtol=0)
    torch.testing.assert_close((hi - lo).amax(-1), torch.full(batch, 0.9, dtype=dtype), **tol)  # longest side
    torch.testing.assert_close(lo + hi, torch.zeros_like(lo), **tol)  # centred
    torch.testing.assert_close(out / scale[..., None, None] + center[..., None, :], v, **tol)  # undo


def test_normalize_mesh_gradcheck(generator):
    v = torch.rand(6, 3, generator=generator, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: io.normalize_mesh(x), (v,))


def test_normalize_mesh_errors():
    with pytest.raises(ValueError, match="zero extent"):
        io.normalize_mesh(torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"vertices: expected shape \(\*batch, V, 3\)"):
        io.normalize_mesh(torch.ones(4, 2))
    with pytest.raises(ValueError, match="margin"):
        io.normalize_mesh(torch.rand(4, 3), margin=1.0)
    with pytest.raises(ValueError, match="at least one vertex"):
        io.normalize_mesh(torch.rand(0, 3))


# ---------------------------------------------------------------------------------------------
# voxelize
# ---------------------------------------------------------------------------------------------


def test_box_mesh_is_closed_and_outward():
    v, f = box([0, 0, 0], [1, 2, 3])
    assert signed_volume(v, f) == pytest.approx(6.0)
    assert signed_volume(*icosphere(2)) > 0 and signed_volume(*octahedron(1.0)) > 0


def test_unit_cube_is_solid(dtype, device):
    v, f = box([-0.5] * 3, [0.5] * 3, dtype)
    occ = io.voxelize(v.to(device), f.to(device), 16)
    assert occ.shape == (16, 16, 16) and occ.dtype == torch.bool and occ.device.type == device.type
    assert bool(occ.all())  # normalised to side 0.95: every voxel centre is inside


@pytest.mark.parametrize("surface,n", [("overlap", 10**3), ("crossing", 8**3 + 6 * 8**2), ("none", 8**3)])
def test_cube_counts_by_surface_mode(surface, n):
    # half side 0.28 at R = 16: centres inside for i in 4..11; boxes touched for i in 3..12
    v, f = box([-0.28] * 3, [0.28] * 3)
    occ = io.voxelize(v, f, 16, normalize=False, surface=surface)
    assert int(occ.sum()) == n
    assert bool(occ[4:12, 4:12, 4:12].all())  # the interior is filled
    if surface == "overlap":
        assert bool(occ[3:13, 3:13, 3:13].all())


def test_exact_ties_cube_on_voxel_boundaries():
    # Faces on voxel boundaries and rays exactly through the faces' diagonals (y = z etc.).
    v, f = box([-0.25] * 3, [0.25] * 3)
    occ = io.voxelize(v, f, 16, normalize=False, surface="none")
    expected = torch.zeros(16, 16, 16, dtype=torch.bool)
    expected[4:12, 4:12, 4:12] = True
    assert torch.equal(occ, expected)


def test_octahedron_rays_through_vertices_and_edges():
    # R = 15: the middle rows of centres pass exactly through the apexes and along the edges.
    v, f = octahedron(0.41)
    occ = io.voxelize(v, f, 15, normalize=False, surface="none")
    expected = centres(15).abs().sum(-1) < 0.41
    assert torch.equal(occ, expected)


def test_convex_mesh_matches_naive_halfspace_reference():
    v, f = icosphere(2, 0.43)
    v = v * torch.tensor([1.0, 0.8, 0.6]) + torch.tensor([0.03, -0.02, 0.05])  # an ellipsoid, off centre
    occ = io.voxelize(v, f, 16, normalize=False, surface="none")
    # naive reference: a centre is inside a convex mesh iff it is behind every face's plane
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    n = torch.linalg.cross(b - a, c - a)
    x = centres(16).reshape(-1, 1, 3)
    expected = (((x - a) * n).sum(-1) < 0).all(-1).reshape(16, 16, 16)
    assert torch.equal(occ, expected)


def test_axis_order_pin():
    """A box at +x fills high indices of the last axis, +y the middle one, +z the first one."""
    R = 8
    for axis, dim in ((0, 2), (1, 1), (2, 0)):
        lo, hi = [-0.2] * 3, [0.2] * 3
        lo[axis], hi[axis] = 0.1, 0.45
        occ = io.voxelize(*box(lo, hi), R, normalize=False, surface="none")
        idx = occ.nonzero()[:, dim]
        assert len(idx) > 0 and int(idx.min()) >= R // 2, (axis, idx.unique())


def test_sphere_volume_and_surface_modes_nest():
    r, R = 0.45, 32
    v, f = icosphere(3, r)
    none, crossing, overlap = (io.voxelize(v, f, R, normalize=False, surface=s) for s in ("none", "crossing", "overlap"))
    vol = float(none.sum()) / R**3
    assert vol == pytest.approx(ball_volume(r), rel=0.05)
    assert bool((none <= crossing).all() and (crossing <= overlap).all())
    assert float(overlap.sum()) > float(crossing.sum()) > float(none.sum())


def test_large_mesh_64(generator):
    """About 5k triangles at 64^3 (a second or so on one core), chunked; same as unchunked."""
    v, f = icosphere(4, 0.5)  # 5120 faces
    occ = io.voxelize(v, f, 64, surface="none")  # normalised: radius 0.475
    assert float(occ.sum()) / 64**3 == pytest.approx(ball_volume(0.475), rel=0.02)
    small = io.voxelize(v, f, 16, max_pairs=97)
    assert torch.equal(small, io.voxelize(v, f, 16))


def test_hole_still_filled():
    v, f = icosphere(3, 0.45)
    closed = io.voxelize(v, f, 24, normalize=False)
    holed = io.voxelize(v, f[1:], 24, normalize=False)  # one face removed
    assert iou(closed, holed) > 0.95
    cv, cf = box([-0.3] * 3, [0.3] * 3)
    big_hole = io.voxelize(cv, cf[2:], 16, normalize=False)  # a whole side of the cube missing
    assert iou(io.voxelize(cv, cf, 16, normalize=False), big_hole) > 0.95


def test_flipped_duplicated_and_unmerged_faces(generator):
    v, f = icosphere(3, 0.45)
    closed = io.voxelize(v, f, 24, normalize=False)
    flip = torch.rand(len(f), generator=generator) < 0.3
    flipped = torch.where(flip[:, None], f[:, [0, 2, 1]], f)
    assert iou(closed, io.voxelize(v, flipped, 24, normalize=False)) > 0.95
    assert torch.equal(closed, io.voxelize(v, f[:, [0, 2, 1]], 24, normalize=False))  # all flipped
    duplicated = torch.cat([f, f[:100], f[100:200, [1, 0, 2]]])  # some twice, some in both windings
    assert torch.equal(closed, io.voxelize(v, duplicated, 24, normalize=False))  # merged first
    soup_v = v[f].reshape(-1, 3)  # every triangle with its own 3 vertices, as in an STL
    soup_f = torch.arange(len(soup_v)).reshape(-1, 3)
    assert torch.equal(closed, io.voxelize(soup_v, soup_f, 24, normalize=False))


def test_intersecting_closed_parts_union():
    va, fa = box([-0.35, -0.1, -0.1], [0.2, 0.1, 0.1])
    vb, fb = box([-0.05, -0.3, -0.2], [0.15, 0.35, 0.25])
    v, f = torch.cat([va, vb]), torch.cat([fa, fb + len(va)])
    occ = io.voxelize(v, f, 16, normalize=False, surface="none")
    x = centres(16)
    in_a = ((x > va.amin(0)) & (x < va.amax(0))).all(-1)
    in_b = ((x > vb.amin(0)) & (x < vb.amax(0))).all(-1)
    assert bool((in_a & in_b).any()) and torch.equal(occ, in_a | in_b)  # the overlap stays filled


def test_open_quad_gives_a_thin_layer():
    n = torch.tensor([0.3, 0.5, 0.8], dtype=torch.float64)
    n = n / n.norm()
    u = torch.linalg.cross(n, torch.tensor([1.0, 0, 0], dtype=torch.float64))
    u = u / u.norm()
    w = torch.linalg.cross(n, u)
    v = torch.stack([0.3 * (a * u + b * w) for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]) + 0.02
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    R = 16
    assert not bool(io.voxelize(v, f, R, normalize=False, surface="none").any())  # no interior
    occ = io.voxelize(v, f, R, normalize=False)
    dist = ((centres(R)[occ] - 0.02) @ n).abs()
    assert len(dist) > 0 and float(dist.max()) <= math.sqrt(3) / 2 / R + 1e-9  # touches the plane
    assert int(occ.sum()) < 3 * (0.6 * R) ** 2  # a layer, not a slab


def test_overlap_matches_naive_clipping_reference(generator):
    """Triangle-box overlap against a loop reference: clip each triangle by each voxel's box."""
    R = 4
    v = torch.rand(9, 3, generator=generator, dtype=torch.float64) - 0.5
    f = torch.arange(9).reshape(3, 3)

    def clip(poly, axis, c, keep_below):
        out = []
        for i in range(len(poly)):
            p, q = poly[i], poly[(i + 1) % len(poly)]
            din, dq = (c - p[axis], c - q[axis]) if keep_below else (p[axis] - c, q[axis] - c)
            if din >= 0:
                out.append(p)
            if (din >= 0) != (dq >= 0):
                out.append(p + (q - p) * (din / (din - dq)))
        return out

    expected = torch.zeros(R, R, R, dtype=torch.bool)
    for k in range(R):
        for j in range(R):
            for i in range(R):
                lo = torch.tensor([i, j, k], dtype=torch.float64) / R - 0.5
                for tri in v[f]:
                    poly = list(tri)
                    for axis in range(3):
                        poly = clip(poly, axis, float(lo[axis]), False)
                        poly = clip(poly, axis, float(lo[axis]) + 1 / R, True) if poly else poly
                    expected[k, j, i] |= bool(poly)
    got = io.voxelize(v, f, R, normalize=False, surface="overlap")
    assert torch.equal(got, expected)


def test_normalize_true_equals_normalize_mesh_then_false():
    v, f = box([1.0, 5.0, -2.0], [3.0, 6.0, -1.5])  # 2 x 1 x 0.5, far from the origin
    occ = io.voxelize(v, f, 16)
    vn, center, scale = io.normalize_mesh(v)
    assert torch.equal(occ, io.voxelize(vn, f, 16, normalize=False))
    torch.testing.assert_close(center, torch.tensor([2.0, 5.5, -1.75], dtype=torch.float64))
    assert float(scale) == pytest.approx(0.95 / 2)
    zyx = occ.nonzero()
    assert zyx[:, 2].unique().tolist() == list(range(16))  # the longest side (x) spans the cube
    assert len(zyx[:, 1].unique()) == 8 and len(zyx[:, 0].unique()) == 4  # 0.475 and 0.2375 wide
    assert not bool(io.voxelize(v, f, 16, normalize=False).any())  # in place it is outside the cube


def test_float32_and_float64_agree(generator):
    v, f = icosphere(2, 0.4)
    v = v + 0.01 * torch.randn(v.shape, generator=generator, dtype=torch.float64)
    assert torch.equal(io.voxelize(v.float(), f, 20), io.voxelize(v, f, 20))
    assert torch.equal(io.voxelize(v, f.int(), 20), io.voxelize(v, f, 20))


def test_voxelize_errors():
    v, f = box([0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match=r"vertices: expected shape \(V, 3\)"):
        io.voxelize(v[None], f, 8)
    with pytest.raises(ValueError, match=r"faces: expected shape \(F, 3\)"):
        io.voxelize(v, f[:, :2], 8)
    with pytest.raises(ValueError, match="faces: expected dtype"):
        io.voxelize(v, f.double(), 8)
    with pytest.raises(ValueError, match="vertices: expected a floating-point"):
        io.voxelize(f, f, 8)
    with pytest.raises(ValueError, match=r"faces: expected indices in \[0, 8\)"):
        io.voxelize(v, f - 1, 8)
    with pytest.raises(ValueError, match="finite"):
        io.voxelize(v * float("inf"), f, 8)
    with pytest.raises(ValueError, match="resolution"):
        io.voxelize(v, f, 0)
    with pytest.raises(ValueError, match="surface"):
        io.voxelize(v, f, 8, surface="shell")
    with pytest.raises(ValueError, match="max_pairs"):
        io.voxelize(v, f, 8, max_pairs=0)
    with pytest.raises(ValueError, match="zero extent"):
        io.voxelize(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 8)
    empty = io.voxelize(v, f[:0], 8)
    assert empty.shape == (8, 8, 8) and not bool(empty.any())
