"""The chapter's 1-D convolutional AE and VAE, kept bit for bit as ``arch="seed"``.

Attribute names (``encoder``, ``bottleneck``, ``decoder_fc``, ``decoder``, ``fc_mu``, ``fc_logvar``)
match the chapter so its code and state_dicts map one to one. The seed decoder repeats one 16-vector
L//2 times before a ConvTranspose1d with kernel = stride = L//2, so its output is one L//2-sample
waveform tiled; that behaviour is pinned by a test and must not be "fixed" here. ``arch="upsample"``
keeps the same encoder and latent and replaces the decoder with one whose output is a genuine
L-sample waveform. ``arch="conv-flat"`` also drops the encoder's final global average pool, the limit on
reconstruction once the decoder has capacity (README, "Decoder capacity").
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER_CHANNELS = 16
MIN_LENGTH = 6  # smallest L for which the seed decoder's (L//2)**2 samples still cover L


def check_length(length: int) -> None:
    """Refuse lengths the seed architecture cannot represent, with a message that says why."""
    if not isinstance(length, int) or length < MIN_LENGTH:
        raise ValueError(
            f"beat length L: expected an integer >= {MIN_LENGTH} (the seed decoder needs (L//2)**2 >= L), "
            f"received {length!r}"
        )


def seed_encoder() -> nn.Sequential:
    """Conv(1,16,k5,s3,p2) BN ReLU MaxPool(2) Conv(16,16,k5,s3,p2) BN ReLU AdaptiveAvgPool(1)."""
    c = ENCODER_CHANNELS
    return nn.Sequential(
        nn.Conv1d(1, c, kernel_size=5, stride=3, padding=2),
        nn.BatchNorm1d(c),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(c, c, kernel_size=5, stride=3, padding=2),
        nn.BatchNorm1d(c),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
    )


def flat_encoder() -> nn.Sequential:
    """The chapter's encoder without its AdaptiveAvgPool1d(1): the [B,16,T] feature map is flattened, so
    the head sees where each feature fired (the next beat's QRS, a wide QRS), not only how strongly."""
    return seed_encoder()[:-1]


def encoder_positions(length: int) -> int:
    """T, the positions the encoder's trunk leaves of L samples: two k5 s3 p2 convolutions around a 2x pool."""
    return ((((length - 1) // 3 + 1) // 2) - 1) // 3 + 1


def seed_decoder(length: int) -> nn.Sequential:
    """ConvTranspose1d(16,16,k=L//2,s=L//2) ReLU ConvTranspose1d(16,1,k=1), as in the chapter."""
    c, half = ENCODER_CHANNELS, length // 2
    return nn.Sequential(
        nn.ConvTranspose1d(c, c, kernel_size=half, stride=half),
        nn.ReLU(),
        nn.ConvTranspose1d(c, 1, kernel_size=1),
    )


def convtranspose_on_length_one(layer: nn.ConvTranspose1d, h: torch.Tensor) -> torch.Tensor:
    """``layer`` applied to ``h`` [B,C] as a length-1 input, computed as one matrix product -> [B,O,K].

    On a length-1 input every output sample of a ConvTranspose1d (no padding) is one weight times the
    input, so the layer is a Linear layer in disguise; written this way it exports as a Gemm, which
    onnxruntime runs far faster than a ConvTranspose with a kernel hundreds of samples long.
    """
    c, o, k = layer.in_channels, layer.out_channels, layer.kernel_size[0]  # Python ints: static in the graph
    y = torch.matmul(h, layer.weight.reshape(c, o * k)).view(-1, o, k)
    return y + layer.bias.view(1, o, 1)


def convtranspose_no_overlap(layer: nn.ConvTranspose1d, x: torch.Tensor, length: int) -> torch.Tensor:
    """``layer`` (kernel == stride, no padding) on ``x`` [B,C,length] as a matrix product -> [B,O,length*K].

    Such a layer writes K samples per input position without overlap: out[b, o, n*K + j] =
    sum_c W[c, o, j] * x[b, c, n] + bias[o]. One MatMul, then an interleave.
    """
    c, o, k = layer.in_channels, layer.out_channels, layer.kernel_size[0]
    y = torch.matmul(layer.weight.permute(1, 2, 0).reshape(o * k, c), x)  # [B, O*K, length]
    y = y.view(-1, o, k, length).transpose(2, 3).reshape(-1, o, length * k)
    return y + layer.bias.view(1, o, 1)


class _ConvAE(nn.Module):
    """The seed encoder and ``decoder_fc``; subclasses bring the decoder (``make_decoder``, ``decode``)."""

    kind = ""
    arch = ""
    flat = False  # True: the encoder keeps its T positions (flat_encoder) and the head reads all 16*T features

    def __init__(self, input_length: int = 450, latent_dim: int = 2):
        super().__init__()
        check_length(input_length)
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim: expected an integer >= 1, received {latent_dim!r}")
        self.input_length = input_length
        self.latent_dim = latent_dim
        self.encoder = flat_encoder() if self.flat else seed_encoder()
        self.feature_width = ENCODER_CHANNELS * (encoder_positions(input_length) if self.flat else 1)
        self.decoder_fc = nn.Linear(latent_dim, ENCODER_CHANNELS)
        self.decoder = self.make_decoder(input_length)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder trunk: [B,1,L] -> [B,16] (the chapter's), or [B,16*T] when ``flat``."""
        return self.encoder(x).flatten(1)  # the chapter's view(B, -1); exports as one Flatten node


class _AE(_ConvAE):
    """The chapter's AE head: ``bottleneck``; forward returns (recon, z)."""

    kind = "ae"

    def __init__(self, input_length: int = 450, latent_dim: int = 2):
        super().__init__(input_length, latent_dim)
        self.bottleneck = nn.Linear(self.feature_width, latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.features(x))

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic latent a deployed model encodes to: z."""
        return self.encode(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z


class _VAE(_ConvAE):
    """The chapter's VAE head: ``fc_mu``, ``fc_logvar``; forward returns (recon, mu, logvar, z)."""

    kind = "vae"

    def __init__(self, input_length: int = 450, latent_dim: int = 2):
        super().__init__(input_length, latent_dim)
        self.fc_mu = nn.Linear(self.feature_width, latent_dim)
        self.fc_logvar = nn.Linear(self.feature_width, latent_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic latent a deployed model encodes to: the posterior mean mu."""
        return self.encode(x)[0]

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar, z


class _SeedDecoder:
    """Mixin: the chapter's decoder, literal or through its exact tiled rewrite."""

    arch = "seed"
    literal = False  # True: run the chapter's literal decoder (same function, ~200x the work)
    make_decoder = staticmethod(seed_decoder)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[B,latent] -> [B,1,L]; the exact tiled rewrite unless ``self.literal`` is set."""
        return self.decode_literal(z) if self.literal else self.decode_tiled(z)

    def decode_literal(self, z: torch.Tensor) -> torch.Tensor:
        """The chapter's decoder as written: repeat to L//2, ConvTranspose (k = s = L//2), crop to L.

        Computes (L//2)**2 samples per channel to keep L: about 13 M multiply-adds per beat at L=450.
        """
        h = self.decoder_fc(z).unsqueeze(-1).repeat(1, 1, self.input_length // 2)
        return self.decoder(h)[:, :, : self.input_length]

    def decode_tiled(self, z: torch.Tensor) -> torch.Tensor:
        """The same function computed once per beat: every input position of the ConvTranspose holds
        the same vector, so every L//2-sample output block is identical. Decode one block (the first
        ConvTranspose on a length-1 input is a matrix product), then tile it to L: about 60 k
        multiply-adds per beat.
        """
        up, relu, mix = self.decoder
        h = relu(convtranspose_on_length_one(up, self.decoder_fc(z)))
        block = convtranspose_no_overlap(mix, h, up.kernel_size[0])
        copies = -(-self.input_length // (self.input_length // 2))  # a Python int: no shape ops in the graph
        return block.repeat(1, 1, copies)[:, :, : self.input_length]


class SeedAE(_SeedDecoder, _AE):
    """The chapter's AE: forward returns (recon, z)."""


class SeedVAE(_SeedDecoder, _VAE):
    """The chapter's VAE: forward returns (recon, mu, logvar, z)."""


def upsample_decoder(length: int) -> nn.Sequential:
    """ConvTranspose1d(16,16,k=ceil(L/2)) from length 1, ReLU, ConvTranspose1d(16,1,k=2,s=2) to L.

    The first layer is the seed decoder's block (one learned L/2-sample basis per channel); the second
    gives every output sample its own weights, so the two halves of the beat are no longer copies.
    Multiply-adds per beat: 16*16*ceil(L/2) + 16*2*ceil(L/2), about 65 k at L=450.
    """
    c, half = ENCODER_CHANNELS, -(-length // 2)
    return nn.Sequential(
        nn.ConvTranspose1d(c, c, kernel_size=half),
        nn.ReLU(),
        nn.ConvTranspose1d(c, 1, kernel_size=2, stride=2),
    )


class _UpsampleDecoder:
    """Mixin: the corrected decoder (``arch="upsample"``) in place of the seed decoder."""

    arch = "upsample"
    make_decoder = staticmethod(upsample_decoder)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        up, relu, mix = self.decoder
        h = relu(convtranspose_on_length_one(up, self.decoder_fc(z)))
        return convtranspose_no_overlap(mix, h, up.kernel_size[0])[:, :, : self.input_length]


class UpsampleAE(_UpsampleDecoder, _AE):
    """Seed encoder and bottleneck, corrected decoder."""


class UpsampleVAE(_UpsampleDecoder, _VAE):
    """Seed encoder, fc_mu and fc_logvar, corrected decoder."""


CONV_CHANNELS = 16  # decoder width: chosen by held-out PRD per multiply-add (README, "Decoder capacity")
CONV_STAGES = 3  # x2 upsampling stages after the first layer: 450 samples grow from 57


def conv_decoder(length: int, channels: int = CONV_CHANNELS, stages: int = CONV_STAGES) -> nn.Sequential:
    """A stack of upsampling convolutions that mirrors the encoder's downsampling.

    ConvTranspose1d(16,C,k=ceil(L/2**S)) from length 1, BN, ReLU; then S times ConvTranspose1d(C,C,k4,s2,p1)
    BN ReLU, each doubling the length; then Conv1d(C,1,k5,p2), cropped to L. Every layer is an ordinary
    convolution (BatchNorm folds into it at export), so each output sample has its own local weights
    instead of coming from one global basis. About 0.46 M multiply-adds per beat at L=450, C=16.
    """
    base = -(-length // 2**stages)
    layers: list[nn.Module] = [nn.ConvTranspose1d(ENCODER_CHANNELS, channels, kernel_size=base),
                               nn.BatchNorm1d(channels), nn.ReLU()]
    for _ in range(stages):
        layers += [nn.ConvTranspose1d(channels, channels, kernel_size=4, stride=2, padding=1),
                   nn.BatchNorm1d(channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv1d(channels, 1, kernel_size=5, padding=2))


class _ConvDecoder:
    """Mixin: the upsampling convolution stack (``arch="conv"``) in place of the seed decoder."""

    arch = "conv"
    make_decoder = staticmethod(conv_decoder)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        first, rest = self.decoder[0], self.decoder[1:]
        h = convtranspose_on_length_one(first, self.decoder_fc(z))
        return rest(h)[:, :, : self.input_length]


class ConvAE(_ConvDecoder, _AE):
    """Seed encoder and bottleneck, upsampling convolution decoder."""


class ConvVAE(_ConvDecoder, _VAE):
    """Seed encoder, fc_mu and fc_logvar, upsampling convolution decoder."""


class FlatConvAE(ConvAE):
    """The encoder without its global pool (``flat_encoder``), bottleneck, upsampling convolution decoder."""

    arch = "conv-flat"
    flat = True


class FlatConvVAE(ConvVAE):
    """The encoder without its global pool (``flat_encoder``), fc_mu and fc_logvar, upsampling convolution decoder."""

    arch = "conv-flat"
    flat = True


MODELS = {(cls.kind, cls.arch): cls
          for cls in (SeedAE, SeedVAE, UpsampleAE, UpsampleVAE, ConvAE, ConvVAE, FlatConvAE, FlatConvVAE)}


def build_model(kind: str, arch: str, length: int, latent_dim: int) -> _ConvAE:
    """Construct a model by kind ("ae"/"vae") and architecture name."""
    try:
        cls = MODELS[(kind, arch)]
    except KeyError:
        archs = sorted({a for _, a in MODELS})
        raise ValueError(f"model: expected kind in ('ae', 'vae') and arch in {archs}, "
                         f"received kind={kind!r}, arch={arch!r}") from None
    return cls(length, latent_dim)
