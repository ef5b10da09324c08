"""Renders per second of lessons.render: meshes, voxels and the PTN projector.

Not a test: a table of throughput for a ~2000-triangle mesh and a 32^3 voxel grid at 128x128
(and 256x256), batch sizes 1 and 16, on the CPU (and CUDA when present). Each case is warmed
up, then timed ``repeats`` times (``time.perf_counter``, with ``torch.cuda.synchronize`` on a
GPU); the table shows the median. ``--quick`` runs a few-second subset.

    python benchmarks/bench_render.py --threads 2
    python benchmarks/bench_render.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lessons import geometry, mesh, render


def test_mesh(device, dtype):
    """A ~2000-triangle object: a 32-segment cylinder merged with boxes and a finer cylinder."""
    parts = [
        mesh.cylinder((0.0, -0.1, 0.0), 0.25, 0.6, axis="y", segments=200, dtype=dtype, device=device),
        mesh.cylinder((0.0, 0.3, 0.0), 0.1, 0.3, axis="x", segments=296, dtype=dtype, device=device),
        mesh.box((0.0, -0.45, 0.0), (0.9, 0.1, 0.6), dtype=dtype, device=device),
    ]
    return mesh.merge(parts)


def ball(resolution, device, dtype):
    """A ball of occupied voxels, radius 0.35 (a 32^3 grid gives ~ 2.6k exposed triangles)."""
    c = (torch.arange(resolution, device=device, dtype=dtype) + 0.5) / resolution - 0.5
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    return ((x**2 + y**2 + z**2) < 0.35**2).to(dtype)


def cameras(B, size, device, dtype):
    g = torch.Generator().manual_seed(0)
    az = torch.rand(B, generator=g, dtype=dtype) * 6.28
    el = torch.rand(B, generator=g, dtype=dtype) * 0.6
    R, t = geometry.camera_from_viewpoint(az, el, torch.zeros(B, dtype=dtype), torch.full((B,), 2.2, dtype=dtype))
    K = geometry.intrinsics(torch.full((B,), 1.6 * size, dtype=dtype), size, size)
    return K.to(device), R.to(device), t.to(device)


def timeit(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few-second subset")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: both when present)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float32
    devices = [torch.device(args.device)] if args.device else [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    sizes = [128] if args.quick else [128, 256]
    batches = [1, 16] if not args.quick else [1, 4]
    warmup, repeats = (1, 3) if args.quick else (2, 7)
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), float32; median of {repeats} after {warmup} warm-up")
    print(f"{'device':6} {'what':22} {'size':>5} {'B':>3} {'ms/batch':>10} {'renders/s':>10}")
    for device in devices:
        v, f = test_mesh(device, dtype)
        occ = ball(32, device, dtype)
        for size in sizes:
            for B in batches:
                K, R, t = cameras(B, size, device, dtype)
                V = v.expand(B, -1, -1)
                vol = occ.expand(B, 1, -1, -1, -1)
                cases = {
                    f"mesh ({f.shape[0]} tris)": lambda: render.render_mesh(V, f, K, R, t, size, size),
                    "mesh antialias=2": lambda: render.render_mesh(V, f, K, R, t, size, size, antialias=2),
                    "voxels 32^3": lambda: render.render_voxels(vol, K, R, t, size, size),
                    "ptn_project 32^3": lambda: render.ptn_project(vol, K, R, t, size, size),
                }
                for name, fn in cases.items():
                    with torch.no_grad():
                        sec = timeit(fn, device, warmup, repeats)
                    print(f"{device.type:6} {name:22} {size:>5} {B:>3} {1e3 * sec:>10.1f} {B / sec:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
