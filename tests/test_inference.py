"""Tests of porescope.segmentation.inference (sliding-window inference).

Reference results are computed independently: the same network applied once to the whole
(mirror-padded) image, or hand-built 1x1 convolutions whose decision is known in closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from porescope.segmentation.inference import (
    normalise,
    padding_for,
    predict_mask,
    predict_proba,
    tile_starts,
    window_weights,
)

torch.set_num_threads(2)


def _conv_model(seed: int = 0, out_channels: int = 1, symmetric: bool = False) -> torch.nn.Module:
    """Two 3x3 zero-padded convolutions: receptive-field radius 2 px.

    With ``symmetric`` every kernel is averaged over its horizontal, vertical and double flip, so
    the model commutes with image flips (zero padding is flip-symmetric too).
    """
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Conv2d(6, out_channels, 3, padding=1),
    )
    with torch.no_grad():
        for layer in (m[0], m[2]):
            w = torch.randn(layer.weight.shape, generator=g)
            if symmetric:
                w = (w + w.flip(2) + w.flip(3) + w.flip(2, 3)) / 4
            layer.weight.copy_(w)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.1)
    return m.eval()


def _untiled(model: torch.nn.Module, image: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """Model applied once to the whole mirror-padded image, padding cropped: the reference."""
    (t, b), (l, r) = padding_for(image.shape, tile, overlap)
    padded = np.pad(image, ((t, b), (l, r)), mode="reflect")
    with torch.no_grad():
        logits = model(torch.from_numpy(normalise(padded))[None, None]).float()
    prob = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)
    return prob[0, :, t : t + image.shape[0], l : l + image.shape[1]].numpy()


def _image(shape, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish random texture so that the model output varies over the image
    from scipy import ndimage as ndi

    noise = ndi.gaussian_filter(rng.normal(size=shape), 3)
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-12)
    return (noise * 255).astype(np.uint8)


# ---------------------------------------------------------------------------- pure helpers


def test_normalise_range_and_type():
    img = np.array([[0, 51, 255]], dtype=np.uint8)
    out = normalise(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]], atol=1e-7)
    with pytest.raises(TypeError, match="uint8"):
        normalise(img.astype(np.uint16))


@pytest.mark.parametrize("length,tile,overlap", [(256, 256, 64), (257, 256, 64), (1000, 256, 64), (4160, 256, 64),
                                                 (100, 32, 0), (97, 32, 16), (33, 32, 16), (500, 128, 64)])
def test_tile_starts_cover_and_stay_inside(length, tile, overlap):
    s = tile_starts(length, tile, overlap)
    assert s[0] == 0 and s[-1] == length - tile
    assert np.all(np.diff(s) > 0) and np.all(np.diff(s) <= tile - overlap)
    covered = np.zeros(length, bool)
    for a in s:
        covered[a : a + tile] = True
    assert covered.all()
    # no window more than needed: dropping any interior window would leave a gap or shrink overlap
    assert len(s) == int(np.ceil((length - tile) / (tile - overlap))) + 1


def test_tile_starts_rejects_bad_arguments():
    with pytest.raises(ValueError, match="pad"):
        tile_starts(100, 128, 32)
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(1000, 128, 65)
    with pytest.raises(ValueError, match="tile"):
        tile_starts(1000, 0, 0)


@pytest.mark.parametrize("tile,overlap", [(256, 64), (32, 16), (64, 6), (64, 1), (128, 64)])
def test_window_weights_partition_of_unity(tile, overlap):
    w = window_weights(tile, overlap)
    assert w.shape == (tile,) and w.min() >= 0 and w.max() <= 1
    np.testing.assert_allclose(w, w[::-1])
    stride = tile - overlap
    # neighbours a nominal stride apart sum to 1 over the shared zone
    np.testing.assert_allclose(w[stride:] + w[: tile - stride], 1.0, atol=1e-12)
    dead = overlap // 4
    assert np.all(w[:dead] == 0) and np.all(w[dead:tile - dead] > 0)


def test_padding_for():
    assert padding_for((301, 437), 256, 64) == ((32, 32), (32, 32))
    assert padding_for((10, 300), 256, 64) == ((32, 32 + 182), (32, 32))
    assert padding_for((1, 1), 32, 0) == ((0, 31), (0, 31))


# --------------------------------------------------------------------------- tiled == untiled


@pytest.mark.parametrize("tile,overlap,batch", [(64, 16, 4), (32, 8, 3), (96, 32, 1)])
def test_tiled_equals_untiled_when_receptive_field_fits(tile, overlap, batch):
    """Receptive-field radius 2 <= overlap // 4 = the zero-weight band at each window edge.

    Every pixel a window contributes to (non-zero weight) is >= 2 px from the window's inner
    edges, so its value is computed from pixels inside the window exactly as in the untiled run;
    at the padded image's own edge the untiled run sees the same zero padding. The blend is a
    weighted mean of identical values, hence equal to the untiled value up to float rounding.
    """
    model = _conv_model(0)
    img = _image((301, 437))
    tiled = predict_proba(model, img, tile=tile, overlap=overlap, batch_size=batch)
    ref = _untiled(model, img, tile, overlap)
    assert tiled.shape == (1, 301, 437) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, ref, atol=2e-6, rtol=0)
    assert np.ptp(ref) > 0.1  # the comparison is not between constants


def test_tiled_differs_when_receptive_field_exceeds_dead_band():
    """Control: with overlap 4 the dead band is 1 px < radius 2, so seams must show."""
    model = _conv_model(0)
    img = _image((120, 150))
    tiled = predict_proba(model, img, tile=32, overlap=4)
    ref = _untiled(model, img, 32, 4)
    assert np.abs(tiled - ref).max() > 1e-4


def test_multiclass_probabilities_tiled_equal_untiled_and_sum_to_one():
    model = _conv_model(3, out_channels=3)
    img = _image((70, 95), seed=4)
    tiled = predict_proba(model, img, tile=32, overlap=16)
    assert tiled.shape == (3, 70, 95)
    np.testing.assert_allclose(tiled.sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(tiled, _untiled(model, img, 32, 16), atol=2e-6)


def test_float_input_is_taken_as_normalised():
    model = _conv_model(0)
    img = _image((50, 60))
    a = predict_proba(model, img, tile=32, overlap=8)
    b = predict_proba(model, normalise(img), tile=32, overlap=8)
    np.testing.assert_allclose(a, b, atol=1e-7)


# ----------------------------------------------------------------------------------- smp Unet


def _smp_unet(depth: int):
    from porescope.segmentation.torch_compat import import_smp

    smp = import_smp()
    torch.manual_seed(0)
    decoder = (256, 128, 64, 32, 16)[5 - depth :]
    return smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1,
                    encoder_depth=depth, decoder_channels=decoder).eval()


def test_smp_unet_window_centres_equal_the_window_alone():
    """Stitching with a real smp model (full-depth resnet18 Unet, random init): inside a window's
    weight-1 zone, where its nominal neighbours have weight 0, the blended output must be the
    output of that window run alone, whatever the receptive field."""
    model = _smp_unet(5)
    img = _image((192, 256), seed=7)
    tile, overlap = 128, 64
    tiled = predict_proba(model, img, tile=tile, overlap=overlap)
    (t, _), (l, _) = padding_for(img.shape, tile, overlap)
    padded = np.pad(img, padding_for(img.shape, tile, overlap), mode="reflect")
    assert list(tile_starts(padded.shape[0], tile, overlap)) == [0, 64, 128]  # nominal grid
    assert list(tile_starts(padded.shape[1], tile, overlap)) == [0, 64, 128, 192]
    c0, c1 = overlap - overlap // 4, tile - overlap + overlap // 4  # weight-1 zone of a window
    for y0, x0 in [(64, 64), (64, 128)]:
        with torch.inference_mode():
            x = torch.from_numpy(normalise(padded[y0 : y0 + tile, x0 : x0 + tile]))[None, None]
            alone = torch.sigmoid(model(x))[0].numpy()
        got = tiled[:, y0 + c0 - t : y0 + c1 - t, x0 + c0 - l : x0 + c1 - l]
        np.testing.assert_allclose(got, alone[:, c0:c1, c0:c1], atol=1e-5)


def test_smp_unet_tiled_close_to_untiled():
    """Tiled vs untiled with an smp Unet (resnet18 encoder cut to depth 3, stride 8, random init).

    Exact equality is impossible: the receptive field (~100 px at depth 3) exceeds the 16-px zero
    band, and windows see less context than the whole image. The residual difference is bounded
    by how much of the receptive field falls outside a window; observed with tile 128 / overlap 64:
    max |dp| ~ 0.017, mean ~ 0.0014 (output std 0.017, correlation 0.99); with tile 256 /
    overlap 128: max ~ 4e-4. (The full-depth resnet18 Unet, stride 32, bottleneck 4x4 on a 128
    tile, is dominated by zero padding at random init: there tiled and untiled differ by 0.1-0.3
    even at window centres, a property of the model's context dependence, not of the stitching,
    which the previous test checks exactly.)
    """
    model = _smp_unet(3)
    img = _image((320, 320), seed=7)
    for tile, overlap, max_tol, mean_tol in [(128, 64, 0.03, 0.003), (256, 128, 2e-3, 2e-4)]:
        tiled = predict_proba(model, img, tile=tile, overlap=overlap)
        (t, b), (l, r) = padding_for(img.shape, tile, overlap)
        padded = np.pad(img, ((t, b), (l, r)), mode="reflect")
        ph, pw = (-padded.shape[0]) % 32, (-padded.shape[1]) % 32  # untiled input: multiple of 32
        padded = np.pad(padded, ((0, ph), (0, pw)), mode="reflect")
        with torch.inference_mode():
            ref = torch.sigmoid(model(torch.from_numpy(normalise(padded))[None, None]))[0].numpy()
        ref = ref[:, t : t + img.shape[0], l : l + img.shape[1]]
        diff = np.abs(tiled - ref)
        assert ref.std() > 0.005, "random Unet output is too flat for a meaningful comparison"
        assert diff.max() < max_tol and diff.mean() < mean_tol, (tile, overlap, diff.max(), diff.mean())
        assert np.corrcoef(tiled.ravel(), ref.ravel())[0, 1] > 0.95


# ---------------------------------------------------------------------------------------- TTA


def test_tta_equals_plain_for_flip_equivariant_model():
    model = _conv_model(5, symmetric=True)
    img = _image((90, 130), seed=2)
    plain = predict_proba(model, img, tile=32, overlap=16)
    tta = predict_proba(model, img, tile=32, overlap=16, tta=True)
    np.testing.assert_allclose(tta, plain, atol=2e-6)


def test_tta_is_the_mean_over_flips_for_a_general_model():
    """For a non-symmetric model TTA changes the result, and (tiled == untiled here) equals the
    average of the untiled predictions of the four flipped images, flipped back."""
    model = _conv_model(6)
    img = _image((90, 130), seed=3)
    tta = predict_proba(model, img, tile=32, overlap=16, tta=True)
    refs = []
    for f in (lambda a: a, np.fliplr, np.flipud, lambda a: np.flipud(np.fliplr(a))):
        refs.append(f(_untiled(model, np.ascontiguousarray(f(img)), 32, 16)[0]))
    np.testing.assert_allclose(tta[0], np.mean(refs, axis=0), atol=3e-6)
    assert np.abs(tta - predict_proba(model, img, tile=32, overlap=16)).max() > 1e-3


# ------------------------------------------------------------------- sizes, dtypes, behaviour


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (3, 2), (31, 33), (5, 200)])
def test_tiny_and_thin_images(shape):
    model = _conv_model(0)
    img = _image((max(shape[0], 8), max(shape[1], 8)))[: shape[0], : shape[1]].copy()
    out = predict_proba(model, img, tile=32, overlap=16)
    assert out.shape == (1, *shape) and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()
    np.testing.assert_allclose(out, _untiled(model, img, 32, 16), atol=2e-6)


def test_predict_mask_binary_threshold():
    """1x1 conv with logit 100 * (x - 0.5): mask = (pixel / 255 > 0.5) = (pixel >= 128)."""
    m = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        m.weight.fill_(100.0)
        m.bias.fill_(-50.0)
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    mask = predict_mask(m, img, tile=32, overlap=8)
    assert mask.dtype == np.uint8 and mask.shape == img.shape
    np.testing.assert_array_equal(mask, (img >= 128).astype(np.uint8))


def test_predict_mask_multiclass_argmax():
    """Logits (0, 30x - 10, 60x - 30): class 0 for x < 1/3, 1 for 1/3 < x < 2/3, 2 above."""
    m = torch.nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([0.0, 30.0, 60.0]).view(3, 1, 1, 1))
        m.bias.copy_(torch.tensor([0.0, -10.0, -30.0]))
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(45, 77)).astype(np.uint8)
    img[(img == 85) | (img == 170)] = 0  # exact ties at x = 1/3 and 2/3
    x = img / 255.0
    expected = np.where(x < 1 / 3, 0, np.where(x < 2 / 3, 1, 2)).astype(np.uint8)
    mask = predict_mask(m, img, tile=32, overlap=16, batch_size=2)
    np.testing.assert_array_equal(mask, expected)


def test_model_mode_restored_and_bad_inputs():
    model = _conv_model(0).train()
    predict_proba(model, _image((40, 40)), tile=32, overlap=8)
    assert model.training
    with pytest.raises(ValueError, match="2-D"):
        predict_proba(model, np.zeros((2, 3, 4), np.uint8), tile=32, overlap=8)
    with pytest.raises(ValueError, match="2-D"):
        predict_proba(model, np.zeros((0, 3), np.uint8), tile=32, overlap=8)
    with pytest.raises(TypeError, match="dtype"):
        predict_proba(model, np.zeros((8, 8), np.int32), tile=32, overlap=8)
    with pytest.raises(ValueError, match="overlap"):
        predict_proba(model, np.zeros((8, 8), np.uint8), tile=32, overlap=20)
    with pytest.raises(ValueError, match="batch_size"):
        predict_proba(model, np.zeros((8, 8), np.uint8), tile=32, overlap=8, batch_size=0)

    class Shrinks(torch.nn.Module):
        def forward(self, x):
            return x[:, :, ::2, ::2]

    with pytest.raises(ValueError, match="output shape"):
        predict_proba(Shrinks(), np.zeros((8, 8), np.uint8), tile=32, overlap=8)


@pytest.mark.parametrize("shape", [(1024, 1024), (4096, 4096), (300, 2000), (40, 40)])
def test_throughput_tile_minimises_window_pixels(shape):
    from porescope.segmentation.inference import throughput_tile

    def cost(tile):  # independent count: windows per axis x tile^2
        (t, b), (l, r) = padding_for(shape, tile, 64)
        return len(tile_starts(shape[0] + t + b, tile, 64)) * len(tile_starts(shape[1] + l + r, tile, 64)) * tile**2

    best = throughput_tile(shape, 64)
    assert best % 32 == 0 and 256 <= best <= 1536
    assert cost(best) == min(cost(t) for t in range(256, 1537, 32))
    assert cost(best) <= cost(256)


def test_auto_tile_close_to_untiled_for_local_model():
    model = _conv_model(4)
    img = _image((300, 700))
    got = predict_proba(model, img, tile="auto", overlap=64)
    np.testing.assert_allclose(got, _untiled(model, img, 256, 64), atol=1e-5)


@pytest.mark.parametrize("shape", [(1024, 1024), (512, 512), (200, 230), (4096, 4096), (300, 700), (1504, 1504)])
def test_throughput_window_one_window_with_half_overlap_only_when_cheaper(shape):
    from porescope.segmentation.inference import throughput_tile, throughput_window

    def cost(tile, overlap):  # independent count: windows per axis x tile^2
        (t, b), (l, r) = padding_for(shape, tile, overlap)
        return len(tile_starts(shape[0] + t + b, tile, overlap)) * len(tile_starts(shape[1] + l + r, tile, overlap)) * tile**2

    tile, overlap = throughput_window(shape, 64)
    plain = throughput_tile(shape, 64)
    assert tile % 32 == 0 and 256 <= tile <= 1536
    if overlap == 64:
        assert tile == plain
    else:
        assert overlap == 32
        assert cost(tile, overlap) == tile**2 < cost(plain, 64)       # one window, fewer pixels
        (top, _), (left, _) = padding_for(shape, tile, overlap)
        assert min(top, left) >= 64 // 4                             # the margin clears the dead zone


def test_auto_single_window_close_to_untiled_for_local_model():
    from porescope.segmentation.inference import throughput_window

    img = _image((200, 230))
    assert throughput_window(img.shape, 64) == (288, 32)
    model = _conv_model(5)
    got = predict_proba(model, img, tile="auto", overlap=64)
    np.testing.assert_allclose(got, _untiled(model, img, 288, 32), atol=1e-5)
