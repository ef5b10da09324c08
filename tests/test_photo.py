"""Tests of lessons.data.photo: the "photographed" second domain."""

import math

import pytest
import torch

from lessons.data import photo, renders


def _images(B=2, H=16, W=16, dtype=torch.float32, seed=0):
    return torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(seed)).to(dtype)


# --- materials, lights, backgrounds ---------------------------------------------------------


@pytest.mark.parametrize("B,P", [(1, 1), (3, 5)])
def test_material_colors_come_from_the_palette(B, P, generator):
    c = photo.material_colors(B, P, generator, photo.PhotoStyle(material_jitter=0.0))
    assert c.shape == (B, P, 3)
    table = torch.tensor(list(photo.MATERIALS.values()))
    # every colour is exactly one of the materials when there is no jitter
    d = (c[..., None, :] - table).abs().amax(-1).amin(-1)
    assert torch.all(d < 1e-6)
    # at most two materials per shape
    for b in range(B):
        assert len({tuple(x.tolist()) for x in c[b]}) <= 2


def test_material_colors_bad_input():
    with pytest.raises(ValueError, match="num_parts"):
        photo.material_colors(2, 0)


def test_studio_lights_count_and_harshness(generator):
    style = photo.PhotoStyle()
    L = photo.studio_lights(64, generator, style)
    assert L.positions.shape == (64, style.lights[1], 3)
    on = (L.colors.abs().sum(-1) > 0).sum(-1)
    assert on.min() >= style.lights[0] and on.max() <= style.lights[1]
    # little ambient, strong key light: the key light is brighter than the ambient everywhere
    assert torch.all(L.colors[:, 0].amax(-1) > L.ambient.amax(-1))
    assert float(L.ambient.max()) <= style.ambient[1] + 1e-6
    dist = L.positions.norm(dim=-1)
    assert torch.all((dist > 2.5 - 1e-5) & (dist < 4 + 1e-5))


def test_studio_lights_bad_input():
    with pytest.raises(ValueError, match="n: expected"):
        photo.studio_lights(0)


def test_room_backgrounds_wall_above_floor(generator):
    bg = photo.room_backgrounds(4, 24, 20, generator, photo.PhotoStyle(textured_walls=0.0))
    assert bg.shape == (4, 3, 24, 20) and bg.min() >= 0 and bg.max() <= 1
    # without texture every row is constant across the columns
    assert torch.allclose(bg, bg[..., :1].expand_as(bg))
    # and the top row and bottom row differ (wall vs floor)
    assert torch.all((bg[:, :, 0, 0] - bg[:, :, -1, 0]).abs().amax(1) > 1e-3)


def test_style_rejects_bad_ranges():
    with pytest.raises(ValueError, match="defocus"):
        photo.PhotoStyle(defocus=(2.0, 1.0))
    with pytest.raises(ValueError, match="lights"):
        photo.PhotoStyle(lights=(0, 2))


# --- degradations ---------------------------------------------------------------------------


@pytest.mark.parametrize("B", [1, 3])
def test_color_cast_formula(B, dtype):
    x = _images(B, dtype=dtype)
    gains = torch.tensor([1.1, 0.9, 1.0], dtype=dtype).expand(B, 3)
    out = photo.color_cast(x, gains, exposure=0.8, gamma=1.2)
    ref = (x * gains[:, :, None, None] * 0.8).clamp(0, 1).clamp_min(1e-6) ** 1.2
    torch.testing.assert_close(out, ref)
    # identity parameters keep the image
    torch.testing.assert_close(photo.color_cast(x, torch.ones(B, 3, dtype=dtype)), x.clamp_min(1e-6))


def test_color_cast_bad_shape():
    with pytest.raises(ValueError, match=r"gains: expected shape \(B, 3\)"):
        photo.color_cast(_images(2), torch.ones(3, 3))


def test_gaussian_blur_properties(dtype):
    x = _images(3, 12, 12, dtype)
    torch.testing.assert_close(photo.gaussian_blur(x, 0.0), x)  # sigma 0: identity
    y = photo.gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0], dtype=dtype))
    torch.testing.assert_close(y[0], x[0])
    # a constant image stays constant; blur lowers the variance
    c = torch.full((1, 3, 8, 8), 0.3, dtype=dtype)
    torch.testing.assert_close(photo.gaussian_blur(c, 1.5), c)
    assert y[2].var() < y[1].var() < x[1].var() * 1.0001


def test_gaussian_blur_matches_a_naive_convolution():
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0  # an impulse: the output is the kernel itself
    y = photo.gaussian_blur(x, 1.0)
    r = torch.arange(-3, 4, dtype=torch.float64)
    g = torch.exp(-(r[:, None] ** 2 + r[None] ** 2) / 2)
    torch.testing.assert_close(y[0, 0, 1:8, 1:8], g / g.sum())


def test_gaussian_blur_rejects_negative_sigma():
    with pytest.raises(ValueError, match="sigma"):
        photo.gaussian_blur(_images(2), torch.tensor([1.0, -1.0]))


def test_motion_blur_spreads_along_the_direction():
    x = torch.zeros(2, 1, 15, 15, dtype=torch.float64)
    x[:, 0, 7, 7] = 1.0
    y = photo.motion_blur(x, torch.tensor([6.0, 6.0], dtype=torch.float64), torch.tensor([0.0, math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(y.sum((2, 3)), torch.ones(2, 1, dtype=torch.float64))  # mass kept
    # angle 0: along the image x axis (a row); angle pi/2: along y (a column)
    assert y[0, 0, 7].sum() > 0.9 and y[1, 0, :, 7].sum() > 0.9
    torch.testing.assert_close(photo.motion_blur(x, 0.0, 0.3), x)  # length 0: identity


def test_vignette_formula():
    x = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    y = photo.vignette(x, 0.5)
    # pixel (0, 0): centre offset (-1.5, -1.5), half diagonal^2 = 8: r^2 = 4.5 / 8
    torch.testing.assert_close(y[0, 0, 0, 0], torch.tensor(1 - 0.5 * 4.5 / 8, dtype=torch.float64))
    assert y[0, 0, 1, 1] > y[0, 0, 0, 0]


def test_sensor_noise_level(generator):
    x = torch.full((1, 3, 64, 64), 0.5)
    y = photo.sensor_noise(x, 0.01, 0.02, generator)
    expected = math.sqrt(0.01 * 0.5 + 0.02**2)
    assert abs(float((y - x).std()) - expected) < 0.1 * expected
    torch.testing.assert_close(photo.sensor_noise(x, 0.0, 0.0, generator), x)


def test_jpeg_blocks_dct_is_orthonormal_and_step_zero_is_identity(dtype):
    D = photo._dct_matrix(8, None, dtype)
    torch.testing.assert_close(D @ D.t(), torch.eye(8, dtype=dtype))
    x = _images(2, 16, 16, dtype)
    torch.testing.assert_close(photo.jpeg_blocks(x, 0.0), x, atol=1e-5, rtol=0)


def test_jpeg_blocks_quantises_within_blocks():
    x = _images(1, 13, 11, torch.float64)  # not a multiple of 8: padded and cropped back
    y = photo.jpeg_blocks(x, 0.2)
    assert y.shape == x.shape
    # a coarse step removes most of the detail inside each block: less variance than the input
    assert y.var() < x.var()
    # a block of constant colour survives (only its DC coefficient is non-zero)
    c = torch.full((1, 3, 8, 8), 0.5, dtype=torch.float64)
    torch.testing.assert_close(photo.jpeg_blocks(c, 0.01), c, atol=0.02, rtol=0)


def test_photo_transform_shapes_range_and_determinism():
    x = _images(3, 16, 16)
    a, params = photo.photo_transform(x, torch.Generator().manual_seed(1), return_params=True)
    b = photo.photo_transform(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert params["gains"].shape == (3, 3) and params["defocus"].shape == (3,)
    assert (a - x).abs().mean() > 0.01  # it does change the image


def test_photo_transform_bad_shape():
    with pytest.raises(ValueError, match=r"images: expected shape \(B, 3, H, W\)"):
        photo.photo_transform(torch.rand(2, 1, 8, 8))


# --- the set --------------------------------------------------------------------------------


def test_make_photo_set_labels_and_domain():
    d = photo.make_photo_set(["chair", "table"], n=4, image_size=16, seed=0, antialias=1)
    assert d["image"].shape == (4, 3, 16, 16)
    assert d["category"].tolist() == [2, 5, 2, 5]  # chair, table in shapes.CATEGORIES
    # other instances than the synthetic set's first shapes
    s = renders.make_render_set(["chair", "table"], n=4, image_size=16, seed=0, antialias=1)
    assert not set(d["shape_seed"].tolist()) & set(s["shape_seed"].tolist())
    # labels are exact: R is the camera of the viewpoint
    from lessons import geometry

    v = d["viewpoint"]
    R, _ = geometry.camera_from_viewpoint(v[:, 0], v[:, 1], v[:, 2])
    torch.testing.assert_close(R, d["R"])
    d2 = photo.make_photo_set(["chair", "table"], n=4, image_size=16, seed=0, antialias=1)
    torch.testing.assert_close(d["image"], d2["image"])


def test_make_photo_set_bad_input():
    with pytest.raises(ValueError, match="categories"):
        photo.make_photo_set(["lamp"], n=2)
    with pytest.raises(ValueError, match="fields"):
        photo.make_photo_set(["chair"], n=2, fields=("image", "bogus"))
