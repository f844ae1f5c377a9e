"""The model zoo: sinc filters, weight sharing, shapes, LDE, parameter counts, learning."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from instrec.cli import main as cli_main
from instrec.errors import InstrecError
from instrec.model.lde import LDEPooling
from instrec.model.resnet import BasicBlock
from instrec.model.sincnet import SincConv, hz_to_mel
from instrec.model.zoo import (
    MEL_MODEL_NAMES,
    MODEL_NAMES,
    VARIANTS,
    Recognizer,
    build_model,
    count_macs,
    count_parameters,
)

SR = 16_000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# SPEC: every trainable tensor once - 256 sinc cut-offs, spec batch norm, body, LDE 8 x 128
# and the fine-tuning head on 11 classes
SPEC_COUNTS = {
    "resnet34": 1_348_293,
    "sharesnet34": 836_805,
    "sharesnet28": 753_221,
    "sharesnet18": 519_301,
}


def tiny(name: str = "sharesnet18", **overrides: object) -> Recognizer:
    """A quarter-width model with a small front end: fast enough for training in a test."""
    arguments: dict[str, object] = {
        "width_multiplier": 0.25,
        "sinc_filters": 16,
        "lde_components": 2,
        **overrides,
    }
    return build_model(name, **arguments)  # type: ignore[arg-type]


# ---- parameter counts ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPEC_COUNTS))
def test_parameter_counts_match_spec(name: str) -> None:
    """The paper's printed digits themselves: tests/test_model_fidelity.py."""
    model = build_model(name, num_classes=11)  # the fine-tuning head by default
    assert count_parameters(model.sinc) == 2 * 128  # one low cut-off and one band per filter
    assert count_parameters(model) == SPEC_COUNTS[name]


def test_quarter_width_resnet34_stages_match_spec() -> None:
    """SPEC's 1,333,040 is the body with a 3x3 stem; ours has Shi et al.'s 7x7 stem."""
    body = build_model("resnet34").body
    stem_3x3 = 3 * 3 * 16 + 2 * 16  # conv + batch norm
    assert count_parameters(body.stages) + stem_3x3 == 1_333_040
    assert count_parameters(body.stem) == 7 * 7 * 16 + 2 * 16


def test_lde_and_head_sizes() -> None:
    model = build_model("resnet18", num_classes=1006, head="pretrain")
    assert count_parameters(model.lde) == 8 * 128 + 8
    assert count_parameters(model.head) == (1024 * 512 + 512) + 2 * 512 + (512 * 1006 + 1006)
    model.replace_head(11)
    assert count_parameters(model.head) == 2 * 1024 + (1024 * 11 + 11)


def test_width_multiplier_grows_features_and_embedding() -> None:
    model = build_model("resnet18", width_multiplier=2.0)
    assert model.config.stage_widths == (32, 64, 128, 256)
    assert model.embedding_dim == 8 * 256
    assert count_parameters(model) > 3 * count_parameters(build_model("resnet18"))


# ---- SincNet ---------------------------------------------------------------------------


def magnitude_response(kernel: torch.Tensor, n_fft: int = 1 << 15) -> tuple[np.ndarray, np.ndarray]:
    """|H(f)| of one kernel and the frequencies (Hz) it is sampled at."""
    response = np.abs(np.fft.rfft(kernel.detach().numpy(), n_fft))
    return np.fft.rfftfreq(n_fft, 1 / SR), response


def set_cutoffs(sinc: SincConv, low_hz: float, high_hz: float) -> None:
    with torch.no_grad():
        sinc.low_hz.fill_(low_hz - sinc.min_low_hz)
        sinc.band_hz.fill_(high_hz - low_hz - sinc.min_band_hz)


@pytest.mark.parametrize(("f1", "f2"), [(1000.0, 2000.0), (300.0, 600.0), (5000.0, 7000.0)])
def test_sinc_kernels_are_band_pass_at_their_cutoffs(f1: float, f2: float) -> None:
    sinc = SincConv(filters=1, kernel_size=801, stride=192)
    set_cutoffs(sinc, f1, f2)
    low, high = sinc.cutoffs()
    assert low.item() == pytest.approx(f1) and high.item() == pytest.approx(f2)
    freqs, mag = magnitude_response(sinc.kernels()[0, 0])
    transition = 4 * SR / sinc.kernel_size  # Hz: Hamming main lobe is ~3.3 sr / N wide
    passband = mag[(freqs > f1 + transition) & (freqs < f2 - transition)]
    level = np.median(passband)
    assert passband.max() / passband.min() < 1.02  # flat within ±0.1 dB
    # a windowed sinc edge passes half the amplitude (−6 dB) exactly at the cut-off
    for edge in (f1, f2):
        assert np.interp(edge, freqs, mag) / level == pytest.approx(0.5, abs=0.03)
    stop = mag[(freqs < f1 - transition) | (freqs > f2 + transition)]
    assert 20 * np.log10(stop.max() / level) < -45


def test_default_sinc_is_mel_initialised_with_minimums() -> None:
    sinc = SincConv()  # 128 filters, 50 ms -> 801 taps, 12 ms -> 192-sample stride
    assert sinc.filters == 128 and sinc.kernel_size == 801 and sinc.stride == 192
    assert sinc.padding == "reflect"
    low, high = (t.detach().numpy().astype(np.float64) for t in sinc.cutoffs())
    # the authors' code: mel edges from 5 Hz to sr/2 - 10 Hz, each band 5 Hz (min low) above
    # its edge and ending 10 Hz (min low + min band) above the next
    edges = np.append(low - 5.0, high[-1] - 10.0)
    assert edges[0] == pytest.approx(5.0) and edges[-1] == pytest.approx(SR / 2 - 10, abs=0.01)
    steps = np.diff(hz_to_mel(edges))
    assert np.allclose(steps, steps[0], rtol=1e-3)  # equal steps on the mel scale
    assert np.allclose(high[:-1] - 10.0, edges[1:-1], rtol=1e-4)
    assert np.all(high - low >= 5.0 - 1e-3) and high[-1] == SR / 2


def test_mel_edges_initialisation_tiles_the_range_exactly() -> None:
    sinc = SincConv(init="mel-edges")
    low, high = (t.detach().numpy().astype(np.float64) for t in sinc.cutoffs())
    assert low[0] == pytest.approx(5.0)  # min low
    assert np.all(high - low >= 5.0 - 1e-3)  # min band
    edges = np.append(low, high[-1])
    steps = np.diff(hz_to_mel(edges))
    assert np.allclose(steps, steps[0], rtol=1e-3)  # equal steps on the mel scale
    assert np.allclose(low[1:], high[:-1], rtol=1e-4)  # adjacent bands tile the range


@pytest.mark.parametrize("init", ["mel-edges", "linear", "midi"])
def test_other_initialisations_give_valid_increasing_bands(init: str) -> None:
    sinc = SincConv(init=init)
    low, high = (t.detach().numpy() for t in sinc.cutoffs())
    assert np.all(np.diff(low) >= 0) and np.all(high > low) and high.max() <= SR / 2


def test_unknown_sinc_initialisation_is_rejected() -> None:
    with pytest.raises(InstrecError, match="sinc"):
        build_model("resnet18", sinc_init="bark")


@pytest.mark.parametrize(
    ("padding", "lengths"), [("zeros", (1, 191, 192, 193, 16_000)), ("reflect", (401, 577))]
)
def test_sinc_output_frames_follow_same_padding(padding: str, lengths: tuple[int, ...]) -> None:
    """Either padding makes ceil(samples / stride) frames; reflecting 400 samples each side
    needs at least 401 (shorter clips: tests/test_model_fidelity.py)."""
    sinc = SincConv(filters=4, padding=padding)
    for samples in lengths:
        assert sinc(torch.zeros(2, samples)).shape == (2, 4, math.ceil(samples / 192))


def test_gradients_reach_the_cutoffs() -> None:
    torch.manual_seed(0)
    model = tiny()
    model(torch.randn(2, 4000)).pow(2).sum().backward()
    for parameter in (model.sinc.low_hz, model.sinc.band_hz):
        assert parameter.grad is not None
        assert torch.isfinite(parameter.grad).all()
        assert (parameter.grad != 0).all()


# ---- ShaResNet weight sharing ---------------------------------------------------------


def blocks_by_stage(model: Recognizer) -> list[list[BasicBlock]]:
    return [
        [block for block in stage.children() if isinstance(block, BasicBlock)]
        for stage in model.body.stages.children()
    ]


def test_shared_blocks_hold_one_tensor_that_one_update_changes() -> None:
    model = tiny("sharesnet34")
    stages = blocks_by_stage(model)
    assert [len(stage) for stage in stages] == [3, 4, 6, 3]
    for stage in stages:
        conv2 = [block.conv2.weight for block in stage]
        assert all(w is conv2[0] for w in conv2)  # one Parameter object per stage
        assert len({id(block.conv1.weight) for block in stage}) == len(stage)  # own conv1
        assert len({id(block.bn2.weight) for block in stage}) == len(stage)  # own BN
    before = [stage[-1].conv2.weight.detach().clone() for stage in stages]
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    # a loss that only reaches the first block's conv2 still moves every block's conv2
    stages[0][0].conv2.weight.sum().backward()
    optimiser.step()
    assert not torch.equal(stages[0][-1].conv2.weight, before[0])
    assert all(  # other stages have their own shared tensor, untouched by this loss
        torch.equal(stage[-1].conv2.weight, b)
        for stage, b in zip(stages[1:], before[1:], strict=True)
    )


def test_plain_resnet_blocks_do_not_share() -> None:
    for stage in blocks_by_stage(tiny("resnet34")):
        assert len({id(block.conv2.weight) for block in stage}) == len(stage)


# ---- shapes and the API ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "padding"),
    [(16_000, "reflect"), (8_000, "reflect"), (48_000, "reflect"), (12_345, "reflect"),
     (401, "reflect"), (97, "zeros"), (1, "zeros")],
)  # fmt: skip
def test_shapes_for_any_length(samples: int, padding: str) -> None:
    model = tiny(num_classes=5, sinc_padding=padding).eval()
    wave = torch.randn(3, samples)
    with torch.no_grad():
        frames = model.frame_features(wave)
        assert frames.shape == (3, math.ceil(samples / model.samples_per_frame), 32)
        assert model.embed(wave).shape == (3, 2 * 32)
        assert model(wave).shape == (3, 5)


def test_default_frame_rate_and_dims() -> None:
    model = build_model("sharesnet18")
    assert model.samples_per_frame == 192 * 8
    assert model.embedding_dim == 1024
    assert model.head.out.in_features == 1024 and model.head.out.out_features == 11


def test_forward_is_head_of_pool_of_frame_features() -> None:
    torch.manual_seed(1)
    model = tiny().eval()
    wave = torch.randn(2, 3000)
    with torch.no_grad():
        composed = model.head(model.pool(model.frame_features(wave)))
        assert torch.allclose(model(wave), composed)
        assert torch.allclose(model.embed(wave), model.pool(model.frame_features(wave)))


def test_replace_head_keeps_body_weights() -> None:
    model = tiny(num_classes=1006, head="pretrain")
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    model.replace_head(11)
    assert model.head.out.out_features == 11 and model.config.num_classes == 11
    assert model.config.head == "finetune"
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in body.items())
    assert model(torch.randn(2, 1600)).shape == (2, 11)


def test_config_rebuilds_the_same_architecture() -> None:
    model = tiny("sharesnet28", num_classes=7)
    config = dataclasses.asdict(model.config)
    twin = Recognizer(type(model.config)(**config))
    assert {k: v.shape for k, v in twin.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert count_parameters(twin) == count_parameters(model)


def test_bad_names_and_arguments_are_instrec_errors() -> None:
    with pytest.raises(InstrecError, match="unknown model"):
        build_model("resnet50")
    with pytest.raises(InstrecError, match="no_such_field"):
        build_model("resnet18", no_such_field=1)
    with pytest.raises(InstrecError, match="blocks"):
        build_model("resnet18", blocks=(2, 2))


# ---- LDE -------------------------------------------------------------------------------


def test_lde_matches_the_definition() -> None:
    torch.manual_seed(2)
    lde = LDEPooling(dim=6, components=3)
    with torch.no_grad():
        lde.scales.copy_(torch.tensor([0.5, 1.0, -0.3]))
    x = torch.randn(2, 9, 6)
    expected = torch.empty(2, 3, 6)
    for b in range(2):
        residuals = x[b][:, None, :] - lde.centres  # (frames, components, dim)
        logits = -(lde.scales**2) * residuals.pow(2).sum(-1)  # (frames, components)
        w = torch.softmax(logits, dim=1)
        expected[b] = (w[..., None] * residuals).sum(0) / w.sum(0)[:, None]
    assert torch.allclose(lde(x), expected.flatten(1), atol=1e-5)


def test_lde_output_does_not_depend_on_frame_count_for_repeated_frames() -> None:
    lde = LDEPooling(dim=4, components=2)
    x = torch.randn(1, 5, 4)
    assert torch.allclose(lde(x), lde(x.repeat(1, 3, 1)), atol=1e-5)


# ---- learning and measurement ---------------------------------------------------------


def test_tiny_model_overfits_a_tiny_batch() -> None:
    torch.manual_seed(3)
    model = tiny("resnet18", num_classes=4, sinc_kernel=25, sinc_stride=24)
    waves = torch.randn(8, 1600)
    labels = torch.arange(8) % 4
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(waves), labels)
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        assert (model(waves).argmax(1) == labels).all()
        assert torch.nn.functional.cross_entropy(model(waves), labels) < 0.1


def test_meta_device_mac_count_equals_a_real_run() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, SR))
    assert count_macs(model) == counter.get_total_flops() // 2 > 0


def test_models_command_lists_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["models", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["architectures"]
    assert [row["name"] for row in rows] == list(VARIANTS) == [*MODEL_NAMES, *MEL_MODEL_NAMES]
    by_name = {row["name"]: row for row in rows}
    for name, count in SPEC_COUNTS.items():
        assert by_name[name]["parameters"] == count
        assert by_name[name]["parameters_without_sinc"] == count - 2 * 128
        # the mel front end has nothing to learn: the same model less the sinc cut-offs
        assert by_name[f"{name}-mel"]["parameters"] == count - 2 * 128
    # sharing removes parameters, not computation
    assert by_name["sharesnet34"]["macs"] == by_name["resnet34"]["macs"]
    assert by_name["resnet18"]["macs"] < by_name["resnet28"]["macs"] < by_name["resnet34"]["macs"]
