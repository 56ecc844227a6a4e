"""The chapter's models: shapes, attribute names, returns, and the seed decoder's measured behaviour."""

import pytest

torch = pytest.importorskip("torch")

from ecgae.training.models import MIN_LENGTH, SeedAE, SeedVAE, build_model  # noqa: E402


@pytest.mark.parametrize("cls", [SeedAE, SeedVAE])
def test_chapter_attribute_names_and_shapes(cls):
    model = cls(450, 2)
    names = {n for n, _ in model.named_children()}
    expected = {"encoder", "decoder_fc", "decoder"} | ({"bottleneck"} if cls is SeedAE else {"fc_mu", "fc_logvar"})
    assert names == expected
    # the chapter's layer shapes, so its state_dicts load one to one
    sd = model.state_dict()
    assert sd["encoder.0.weight"].shape == (16, 1, 5) and sd["encoder.4.weight"].shape == (16, 16, 5)
    assert sd["decoder.0.weight"].shape == (16, 16, 225) and sd["decoder.2.weight"].shape == (16, 1, 1)
    out = model(torch.randn(4, 1, 450))
    assert out[0].shape == (4, 1, 450)
    if cls is SeedAE:
        assert len(out) == 2 and out[1].shape == (4, 2)
    else:
        recon, mu, logvar, z = out
        assert mu.shape == logvar.shape == z.shape == (4, 2)
        assert model.encode(torch.randn(3, 1, 450))[0].shape == (3, 2)
        assert model.reparameterize(mu, logvar).shape == (4, 2)
        assert model.decode(z).shape == (4, 1, 450)


@pytest.mark.parametrize("length", [450, 140, 141, MIN_LENGTH, 7])
def test_seed_decoder_output_is_one_half_length_waveform_tiled(length):
    """The measured defect of the chapter's decoder, pinned so nobody changes the seed arch silently."""
    torch.manual_seed(0)
    model = SeedVAE(length, 2).eval()
    model.literal = True
    with torch.no_grad():
        x = model.decode(torch.randn(16, 2) * 3).squeeze(1)
    half = length // 2
    assert torch.equal(x[:, :half], x[:, half : 2 * half])
    assert x[:, :half].std() > 0  # not trivially constant


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_tiled_decode_equals_literal(kind):
    torch.manual_seed(1)
    model = build_model(kind, "seed", 450, 3).eval()
    z = torch.randn(64, 3) * 4
    with torch.no_grad():
        assert torch.allclose(model.decode_tiled(z), model.decode_literal(z), atol=1e-6, rtol=0)


def test_upsample_decoder_is_not_periodic():
    torch.manual_seed(2)
    model = build_model("ae", "upsample", 450, 2).eval()
    with torch.no_grad():
        x = model.decode(torch.randn(8, 2)).squeeze(1)
    assert x.shape == (8, 450)
    assert (x[:, :225] - x[:, 225:]).abs().max() > 1e-3


@pytest.mark.parametrize("length", [0, 5, 4.5, "450"])
def test_length_below_minimum_is_refused(length):
    with pytest.raises(ValueError, match="beat length L"):
        SeedAE(length, 2)


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="arch"):
        build_model("ae", "nope", 450, 2)


@pytest.mark.parametrize("arch", ["seed", "upsample"])
def test_matrix_product_forms_equal_the_conv_transpose_layers(arch):
    """The fast decode paths compute the decoder's own layers; check them against calling the layers."""
    torch.manual_seed(3)
    model = build_model("ae", arch, 141, 2).eval()
    up, relu, mix = model.decoder
    z = torch.randn(32, 2)
    with torch.no_grad():
        h = relu(up(model.decoder_fc(z).unsqueeze(-1)))
        expected = mix(h)[:, :, :141]
        if arch == "seed":
            expected = expected.repeat(1, 1, 3)[:, :, :141]
        assert torch.allclose(model.decode(z), expected, atol=1e-6, rtol=0)


def test_only_the_seed_arch_has_a_literal_decoder():
    assert hasattr(build_model("ae", "seed", 450, 2), "literal")
    assert not hasattr(build_model("vae", "upsample", 450, 2), "literal")
