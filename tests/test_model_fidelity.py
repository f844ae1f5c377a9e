"""The model as the authors' code builds it where the paper is silent (docs/fidelity.md):
128 reflect-padded sinc filters, a batch norm on the filterbank image, the pre-training and
fine-tuning heads, parameter counts printed as the paper prints them, a log-mel front end
with the same frames, and model files of the first version still loading unchanged."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
from torch import nn

from instrec.errors import InstrecError
from instrec.model.heads import build_head
from instrec.model.io import load_model_file, save_model_file
from instrec.model.mel import LogMel, mel_filterbank
from instrec.model.sincnet import SincConv, hz_to_mel, mel_to_hz
from instrec.model.zoo import (
    PAPER_COUNTED_CLASSES,
    PAPER_COUNTED_HEAD,
    PAPER_PARAMETERS,
    ModelConfig,
    Recognizer,
    build_model,
    count_parameters,
    printed_count,
)

SR = 16_000
SLIM = {"width_multiplier": 0.25, "sinc_filters": 16, "lde_components": 2}
# the config fields the first model files were saved with
VERSION_1_FIELDS = (
    "arch", "num_classes", "blocks", "share", "widths", "width_multiplier", "stem_kernel",
    "sample_rate", "sinc_filters", "sinc_kernel", "sinc_stride", "sinc_min_low_hz",
    "sinc_min_band_hz", "sinc_init", "lde_components",
)  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tone(freq_hz: float, samples: int = SR, amplitude: float = 0.5) -> torch.Tensor:
    return amplitude * torch.sin(2 * math.pi * freq_hz * torch.arange(samples) / SR)


def layer_types(head: nn.Module) -> list[type[nn.Module]]:
    return [type(layer) for layer in head.children()] or [type(head)]


# ---- parameter counts as the paper prints them -------------------------------------------


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETERS))
def test_counts_print_as_the_paper_prints_them(name: str) -> None:
    """The fine-tuned model, every trainable tensor once, in Lightning's summary format."""
    model = build_model(name, PAPER_COUNTED_CLASSES, head=PAPER_COUNTED_HEAD)
    count = count_parameters(model)
    assert printed_count(count) == PAPER_PARAMETERS[name]
    # nothing left over: the count is exactly these parts
    parts = {
        "sinc cut-offs": 2 * 128,
        "spec batch norm": 2,
        "body": count_parameters(model.body),
        "LDE": 8 * 128 + 8,
        "fine-tuning head": 2 * 1024 + 1024 * 11 + 11,
    }
    assert count == sum(parts.values())


def test_only_the_fine_tuned_model_gives_all_four_printed_counts() -> None:
    """Which head and class count the paper counted: the fine-tuning head on 11 classes.
    The pre-training model (1006 NSynth ids) and instrec's first linear head do not."""
    readings = {
        ("pretrain", 1006): [],
        ("linear", 11): [],
        ("finetune", 11): [],
    }
    for (head, classes), printed in readings.items():
        for name in sorted(PAPER_PARAMETERS):
            printed.append(printed_count(count_parameters(build_model(name, classes, head=head))))
    matching = [reading for reading, printed in readings.items()
                if printed == [PAPER_PARAMETERS[n] for n in sorted(PAPER_PARAMETERS)]]  # fmt: skip
    assert matching == [("finetune", 11)]
    # truncated, not rounded: ShaResNet34's 836,805 would round to 837K
    assert round(count_parameters(build_model("sharesnet34", 11, head="finetune")), -3) == 837_000


def test_printed_count_is_lightnings_summary_format() -> None:
    for count in (0, 7, 999, 1_000, 1_234, 99_949, 99_950, 100_000, 519_301, 999_999,
                  1_348_293, 25_500_000, 123_456_789, 4 * 10**9, 5 * 10**15):  # fmt: skip
        assert printed_count(count) == get_human_readable_count(count).replace(" ", "")


# ---- the sinc front end ------------------------------------------------------------------


def test_zoo_defaults_are_the_authors_configuration() -> None:
    model = build_model("resnet34")
    config = model.config
    assert config.version == 2 and config.frontend == "sinc"
    assert isinstance(model.sinc, SincConv) and model.frontend is model.sinc
    assert model.sinc.filters == 128 and model.sinc.kernel_size == 801
    assert model.sinc.stride == 192 and model.sinc.padding == "reflect"
    assert isinstance(model.spec_bn, nn.BatchNorm2d) and model.spec_bn.num_features == 1
    assert config.head == "finetune"  # the model that tags; pre-training asks for "pretrain"


def test_reflect_padding_mirrors_the_clip_about_its_end_samples() -> None:
    """An impulse 5 samples into the clip: frame 0 (centred on sample 0) sees it and, with
    reflect padding, its mirror image 5 samples before the start, so the symmetric kernel
    answers twice as strongly as with zeros; frames clear of the edge do not change."""
    torch.manual_seed(0)
    reflect, zeros = SincConv(filters=3), SincConv(filters=3, padding="zeros")
    zeros.load_state_dict(reflect.state_dict())
    x = torch.zeros(1, 4000)
    x[0, 5] = 1.0
    with torch.no_grad():
        mirrored, plain = reflect(x), zeros(x)
        assert torch.allclose(mirrored[..., 0], 2 * plain[..., 0], atol=1e-6)
        assert plain[..., 0].abs().min() > 1e-3  # the impulse is seen at all
        assert torch.equal(mirrored[..., 5:-5], plain[..., 5:-5])
        # and in general: numpy's reflect padding, then the same correlation
        signal = torch.randn(1, 3000)
        padded = np.pad(signal[0].numpy(), 400, mode="reflect")
        kernels = reflect.kernels()[:, 0].numpy()  # (filters, 801)
        expected = np.stack([np.correlate(padded, k, mode="valid")[::192] for k in kernels])
        np.testing.assert_allclose(reflect(signal)[0].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_mel_initialisation_is_the_authors_code() -> None:
    """transforms.py: low_hz_ = hz[:-1], band_hz_ = diff(hz) over mel-spaced hz from
    min_low to sr/2 - (min_low + min_band); f1 = min_low + |low_hz_|,
    f2 = clamp(f1 + min_band + |band_hz_|, min_low, sr/2)."""
    sinc = SincConv()
    mel = torch.linspace(float(hz_to_mel(5.0)), float(hz_to_mel(SR / 2 - 10.0)), 129)
    hz = torch.from_numpy(mel_to_hz(mel.double().numpy()))
    f1 = 5.0 + hz[:-1].abs()
    f2 = torch.clamp(f1 + 5.0 + (hz[1:] - hz[:-1]).abs(), 5.0, SR / 2)
    low, high = sinc.cutoffs()
    assert torch.allclose(low.double(), f1, rtol=1e-5)
    assert torch.allclose(high.double(), f2, rtol=1e-5)


@pytest.mark.fault
@pytest.mark.parametrize("samples", [1, 97, 400])
def test_a_clip_too_short_to_reflect_is_refused_by_name(samples: int) -> None:
    model = build_model("sharesnet18", **SLIM)
    with pytest.raises(InstrecError, match=f"clip of {samples} samples is too short"):
        model(torch.zeros(1, samples))


# ---- spec batch norm ---------------------------------------------------------------------


def test_spec_bn_normalises_the_filterbank_image_with_running_statistics() -> None:
    torch.manual_seed(1)
    model = build_model("sharesnet18", **SLIM)
    seen: list[torch.Tensor] = []
    model.body.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    wave = torch.randn(2, 4000)
    before = model.spec_bn.running_mean.clone()
    model.train()(wave)  # training: batch statistics, and the running ones move
    assert not torch.equal(model.spec_bn.running_mean, before)
    with torch.no_grad():
        model.spec_bn.running_mean.fill_(3.0)
        model.spec_bn.running_var.fill_(4.0)
        model.spec_bn.weight.fill_(0.5)
        model.spec_bn.bias.fill_(-1.0)
        model.eval()(wave)
        image = model.sinc(wave).transpose(1, 2)[:, None]  # (batch, 1, frames, filters)
        expected = (image - 3.0) / math.sqrt(4.0 + model.spec_bn.eps) * 0.5 - 1.0
        assert torch.allclose(seen[-1], expected, atol=1e-5)


# ---- heads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "layers", "sizes"),
    [
        ("pretrain", [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU, nn.Linear],
         [(1024, 512), 512, None, (512, 1006)]),
        ("finetune", [nn.ReLU, nn.BatchNorm1d, nn.Dropout, nn.Linear],
         [None, 1024, 0.15, (1024, 1006)]),
        ("finetune-leaky", [nn.LeakyReLU, nn.BatchNorm1d, nn.Dropout, nn.Linear],
         [None, 1024, 0.15, (1024, 1006)]),
        ("linear", [nn.Linear], [(1024, 1006)]),
    ],
)  # fmt: skip
def test_head_layers_and_sizes(kind: str, layers: list[type], sizes: list[object]) -> None:
    head = build_head(kind, 1024, 1006)
    assert layer_types(head) == layers
    for layer, size in zip(list(head.children()) or [head], sizes, strict=True):
        if isinstance(layer, nn.Linear):
            assert (layer.in_features, layer.out_features) == size
        elif isinstance(layer, nn.BatchNorm1d):
            assert layer.num_features == size
        elif isinstance(layer, nn.Dropout):
            assert layer.p == size
    assert head.eval()(torch.randn(3, 1024)).shape == (3, 1006)


def test_pretrain_head_output_layer_starts_as_the_authors_code_starts_it() -> None:
    """LinearClsHead.init_weights: weights from N(1, 0.01), bias 0."""
    torch.manual_seed(2)
    out = build_head("pretrain", 1024, 1006).out
    assert out.weight.mean().item() == pytest.approx(1.0, abs=1e-3)
    assert out.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.equal(out.bias, torch.zeros(1006))


@pytest.mark.fault
def test_unknown_head_is_refused() -> None:
    with pytest.raises(InstrecError, match="unknown head 'mlp'"):
        build_head("mlp", 1024, 11)
    with pytest.raises(InstrecError, match="head 'mlp' is not one of"):
        build_model("resnet18", head="mlp")


def test_replace_head_puts_the_fine_tuning_head_in_place_of_the_whole_pretraining_head(
    tmp_path: Path,
) -> None:
    torch.manual_seed(3)
    model = build_model("sharesnet18", 1006, head="pretrain", **SLIM)
    assert layer_types(model.head) == layer_types(build_head("pretrain", 64, 1006))
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    model.replace_head(11)
    assert layer_types(model.head) == [nn.ReLU, nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert model.head.out.in_features == model.embedding_dim
    assert (model.config.head, model.config.num_classes) == ("finetune", 11)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in body.items())
    assert not [k for k in state if k.startswith("head.hidden")]  # nothing of the old head
    # the fine-tuned model file rebuilds the same head
    path = save_model_file(tmp_path / "m.pt", model.eval(), [str(i) for i in range(11)], 0.5)
    wave = torch.randn(2, 4000)
    with torch.no_grad():
        assert torch.equal(load_model_file(path).model(wave), model(wave))


def test_replace_head_of_a_linear_model_stays_linear() -> None:
    model = build_model("sharesnet18", 1006, head="linear", **SLIM)
    model.replace_head(11)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 11
    assert model.config.head == "linear"


@pytest.mark.parametrize(
    ("config", "head"),
    [("pretrain", "pretrain"), ("tiny_pretrain", "pretrain"), ("scratch", "finetune-leaky"),
     ("small_scratch", "finetune-leaky")],
)  # fmt: skip
def test_training_configs_build_the_authors_heads(config: str, head: str) -> None:
    """Pre-training builds the pre-training head; training on IRMAS from scratch the
    fine-tuning head with LeakyReLU (src/lms/no_pre_irmas_mie.py)."""
    from instrec.train.config import load_config

    section = load_config(config).model
    model = build_model(section.name, 4, **{**section.options, **SLIM})
    assert model.config.head == head
    assert layer_types(model.head) == layer_types(build_head(head, 64, 4))


# ---- the log-mel front end ---------------------------------------------------------------


@pytest.mark.parametrize("samples", [16_000, 12_345, 4_000])
def test_mel_variant_makes_the_sinc_variants_frames(samples: int) -> None:
    torch.manual_seed(4)
    sinc, mel = build_model("sharesnet18", 5, **SLIM), build_model("sharesnet18-mel", 5, **SLIM)
    assert isinstance(mel.frontend, LogMel) and mel.config.frontend == "mel"
    assert mel.samples_per_frame == sinc.samples_per_frame == 192 * 8
    wave = torch.randn(2, samples)
    with torch.no_grad():
        assert mel.mel(wave).shape == (2, 128, math.ceil(samples / 192))
        assert mel.mel(wave).shape[-1] == sinc.sinc(wave).shape[-1]
        assert mel.frame_features(wave).shape == sinc.frame_features(wave).shape
        assert mel.eval()(wave).shape == (2, 5)


def test_mel_power_is_torch_stft_power_with_the_frames_centred_like_the_sinc_frames() -> None:
    """torch.stft, 1024-point, hop 192, reflect-padded and centred, with the 801-tap Hann
    window placed so its centre tap is frame t's centre sample 192 t, as the sinc kernels."""
    mel = LogMel()
    wave = torch.randn(2, 16_000)  # 16000 / 192 is not whole: both make ceil = 84 frames
    window = torch.zeros(1024)
    window[112 : 112 + 801] = torch.hann_window(801, periodic=False)
    reference = torch.stft(wave.double(), 1024, 192, window=window.double(), center=True,
                           pad_mode="reflect", return_complex=True).abs().pow(2)  # fmt: skip
    power = mel.power(wave)
    assert power.shape == reference.shape == (2, 513, 84)
    scale = float(reference.max())
    np.testing.assert_allclose(power.double().numpy() / scale, reference.numpy() / scale, atol=1e-5)


@pytest.mark.parametrize("freq_hz", [220.0, 1000.0, 3000.0, 6500.0])
def test_a_pure_tone_peaks_in_the_mel_band_centred_nearest_it(freq_hz: float) -> None:
    mel = LogMel()
    with torch.no_grad():
        bands = mel(tone(freq_hz)[None])[0].mean(dim=1)  # (bands,) dB
    centres = mel_to_hz(np.linspace(0.0, hz_to_mel(SR / 2), 128 + 2))[1:-1]
    assert int(bands.argmax()) == int(np.abs(centres - freq_hz).argmin())
    assert float(bands.max() - bands.median()) > 30  # a peak, not a ripple


def test_mel_bands_are_kept_within_80_db_of_their_frames_peak() -> None:
    """The one departure from the authors' extractor: rounding noise stays out of the log."""
    mel = LogMel()
    with torch.no_grad():
        clean = mel(tone(1000.0)[None])[0]  # (bands, frames)
        silence = mel(torch.zeros(1, SR))
    floor = clean.max(dim=0).values - 80.0  # per frame
    assert torch.all(clean >= floor - 1e-3)
    # a pure tone's far bands sit on it (not at the edges: the mirrored tone has a kink)
    assert torch.all((clean - floor).abs().min(dim=0).values[2:-2] < 1e-3)
    assert torch.all(silence == -100.0)  # the absolute floor, AmplitudeToDB's amin


def test_mel_filterbank_triangles() -> None:
    weights = mel_filterbank(128, 1024, SR)
    bins = np.linspace(0, SR / 2, 513)
    points = mel_to_hz(np.linspace(0.0, hz_to_mel(SR / 2), 130))
    assert weights.shape == (128, 513) and weights.min() == 0 and weights.max() <= 1
    for band in (0, 40, 127):
        inside = (bins > points[band]) & (bins < points[band + 2])
        assert np.all(weights[band, inside] > 0) and np.all(weights[band, ~inside] == 0)
        peak = bins[weights[band].argmax()]
        assert abs(peak - points[band + 1]) <= SR / 1024  # peak at the centre, within a bin


@pytest.mark.fault
def test_more_mel_bands_than_the_fft_can_fill_are_refused() -> None:
    with pytest.raises(InstrecError, match="band 0 covers no FFT bin"):
        build_model("resnet18-mel", mel_bands=400, mel_fft=256)


def test_a_mel_model_exports_to_onnx_and_tags_like_pytorch(tmp_path: Path) -> None:
    from instrec.export.onnx_graph import TOLERANCE, export_onnx
    from instrec.tagging import load_model

    torch.manual_seed(5)
    model = build_model("sharesnet18-mel", 3, **SLIM)
    save_model_file(tmp_path / "mel.pt", model, ("a", "b", "c"), threshold=0.5)
    t = np.arange(round(3.3 * SR)) / SR  # a clean tone over a square wave: bands far apart
    song = 0.2 * (np.sin(2 * np.pi * 440 * t) + np.sign(np.sin(2 * np.pi * 110 * t)))
    soundfile.write(tmp_path / "song.wav", song, SR)
    report = export_onnx(tmp_path / "mel.pt", tmp_path / "mel.onnx", [tmp_path / "song.wav"])
    assert max(report.differences.values()) < TOLERANCE  # logits, random and the song
    onnx_result = load_model(tmp_path / "mel.onnx").predict(tmp_path / "song.wav")
    torch_result = load_model(tmp_path / "mel.pt").predict(tmp_path / "song.wav")
    assert onnx_result.probabilities == pytest.approx(torch_result.probabilities, abs=1e-4)


# ---- the first model files ----------------------------------------------------------------


def version_1_model() -> Recognizer:
    """A model as the first instrec built it: 122 zero-padded sinc filters straight into the
    ResNet, one linear head (what ModelConfig's own defaults describe)."""
    config = ModelConfig(arch="sharesnet18", blocks=(2, 2, 2, 2), share=True, num_classes=3,
                         width_multiplier=0.25, lde_components=2)  # fmt: skip
    assert (config.sinc_filters, config.sinc_padding, config.spec_bn, config.head) == (
        122, "zeros", False, "linear")  # fmt: skip
    return Recognizer(config).eval()


def old_forward(model: Recognizer, wave: torch.Tensor) -> torch.Tensor:
    """The first instrec's forward pass, written out."""
    sinc = model.sinc
    filtered = F.conv1d(
        wave[:, None, :], sinc.kernels(), stride=sinc.stride, padding=sinc.kernel_size // 2
    )
    return model.head(model.lde(model.body(filtered.transpose(1, 2)[:, None])))


def test_a_first_version_model_file_loads_and_answers_as_before(tmp_path: Path) -> None:
    torch.manual_seed(6)
    model = version_1_model()
    path = save_model_file(tmp_path / "old.pt", model, ("a", "b", "c"), threshold=0.5)
    payload = torch.load(path, weights_only=True)
    payload["config"] = {  # the dict the first version saved
        k: v for k, v in payload["config"].items() if k in VERSION_1_FIELDS
    }
    assert set(payload["config"]) == set(VERSION_1_FIELDS)
    assert {"sinc.low_hz", "head.weight"} <= set(payload["state_dict"])
    assert not [k for k in payload["state_dict"] if k.startswith("spec_bn")]
    torch.save(payload, path)
    loaded = load_model_file(path).model
    assert loaded.config == model.config and loaded.config.version == 1
    wave = torch.randn(2, 6000)
    with torch.no_grad():
        assert torch.equal(loaded(wave), model(wave))
        assert torch.allclose(loaded(wave), old_forward(model, wave), atol=1e-6)
        # the same weights read with today's padding would answer otherwise
        today = Recognizer(dataclasses.replace(model.config, sinc_padding="reflect")).eval()
        today.load_state_dict(model.state_dict())
        assert not torch.allclose(today(wave), loaded(wave), atol=1e-4)


@pytest.mark.fault
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sinc_padding", "circular", "sinc_padding 'circular' is not one of reflect, zeros"),
        ("frontend", "cqt", "frontend 'cqt' is not one of sinc, mel"),
        ("version", 3, "version 3 is not one this instrec reads"),
        ("version", 0, "version 0 is not one this instrec reads"),
    ],
)
def test_config_values_this_instrec_cannot_build_are_refused(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(InstrecError, match=message):
        ModelConfig(**{field: value})
