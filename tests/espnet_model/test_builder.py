from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from espnet_model import ASRModel, ConformerEncoder, GlobalMVN, TransformerEncoder, build_asr_model
from espnet_model.builder import UntrustedCodeError

ENC = {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 1}


def _config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "frontend": "default",
        "frontend_conf": {"n_mels": 24, "fs": "16k"},
        "specaug": "specaug",
        "specaug_conf": {
            "freq_mask_width_range": [0, 5],
            "time_mask_width_ratio_range": [0.0, 0.05],
        },
        "normalize": "utterance_mvn",
        "encoder": "conformer",
        "encoder_conf": {**ENC, "cnn_module_kernel": 5, "rel_pos_type": "latest"},
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    }
    config.update(overrides)
    return config


def test_builds_and_derives_sizes() -> None:
    model = build_asr_model(_config(), vocab_size=12)
    assert isinstance(model, ASRModel) and isinstance(model.encoder, ConformerEncoder)
    assert model.encoder.embed.conv[0].in_channels == 1
    assert model.encoder.embed.out.in_features == 16 * 5  # 24 mels -> 5 after x4
    assert model.decoder is not None and model.decoder.output_layer.out_features == 12
    assert model.ctc is not None and model.ctc.ctc_lo.in_features == 16
    assert model.frontend.sample_rate == 16000


@pytest.mark.parametrize("encoder", ["transformer", "e_branchformer"])
def test_other_encoders(encoder: str) -> None:
    model = build_asr_model(_config(encoder=encoder, encoder_conf=ENC), vocab_size=12)
    loss, _, _ = model(
        torch.randn(1, 4000), torch.tensor([4000]), torch.tensor([[2, 3]]), torch.tensor([2])
    )
    assert torch.isfinite(loss)


def test_class_path_encoder() -> None:
    spec = {"class_path": "espnet_model.encoders.transformer.TransformerEncoder", "init_args": ENC}
    model = build_asr_model(_config(encoder=spec), vocab_size=12)
    assert isinstance(model.encoder, TransformerEncoder)


def test_global_mvn_gets_num_features(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    stats = tmp_path / "feats_stats.npz"
    np.savez(stats, count=np.array(10), sum=np.ones(24), sum_square=np.full(24, 2.0))
    model = build_asr_model(
        _config(normalize="global_mvn", normalize_conf={"stats_file": str(stats)}), vocab_size=12
    )
    assert isinstance(model.normalize, GlobalMVN) and model.normalize.mean.shape == (24,)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"encoder": "rnn"}, r"encoder='rnn'.*'conformer'"),
        ({"frontend": "s3prl"}, r"frontend='s3prl'.*'default'"),
        ({"normalize": "gmvn"}, r"normalize='gmvn'.*'global_mvn'"),
        ({"preencoder": "linear"}, r"preencoder='linear': a pre-encoder is not implemented"),
        ({"encodr": "conformer"}, r"'encodr' \(did you mean 'encoder'\?\).*valid keys"),
        ({"encoder_conf": {**ENC, "num_layers": 2}}, r"encoder_conf\.num_layers.*num_blocks"),
        ({"encoder_conf": {**ENC, "input_size": 80}}, r"encoder_conf\.input_size.*derived"),
        ({"model_conf": {"ctc_weigth": 0.3}}, r"model_conf\.ctc_weigth.*ctc_weight"),
        ({"decoder": None}, r"ctc_weight=0\.3.*decoder"),
        ({"encoder": {"class_path": "nope.Encoder"}}, r"encoder\.class_path='nope\.Encoder'"),
    ],
)
def test_errors_name_key_value_and_choices(overrides: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_asr_model(_config(**overrides), vocab_size=12)


class _TinyCustomModel(torch.nn.Module):
    """A custom model for the ``class_path`` model block (vocab_size is derived)."""

    def __init__(self, vocab_size: int, hidden: int = 4) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.proj = torch.nn.Linear(1, hidden)

    def forward(self, speech: torch.Tensor, **_: Any) -> tuple[torch.Tensor, dict, int]:
        loss = self.proj(speech.unsqueeze(-1)).square().mean()
        return loss, {"loss": loss.detach()}, speech.size(0)


def test_class_path_model_block_builds_a_custom_model() -> None:
    spec = {"class_path": f"{__name__}._TinyCustomModel", "init_args": {"hidden": 3}}
    model = build_asr_model(spec, vocab_size=7, trust_remote_code=True)
    assert isinstance(model, _TinyCustomModel)
    assert model.vocab_size == 7 and model.proj.out_features == 3
    loss, stats, weight = model(speech=torch.randn(2, 5))
    assert loss.dim() == 0 and weight == 2 and "loss" in stats
    with pytest.raises(ValueError, match=r"model.init_args.nope is not an argument"):
        build_asr_model({**spec, "init_args": {"nope": 1}}, vocab_size=7, trust_remote_code=True)
    with pytest.raises(ValueError, match=r"model.class_path='no.such.Model' cannot be imported"):
        build_asr_model({"class_path": "no.such.Model"}, vocab_size=7, trust_remote_code=True)
    with pytest.raises(ValueError, match="exactly class_path and optional init_args"):
        build_asr_model({**spec, "encoder": "conformer"}, vocab_size=7)
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        build_asr_model({"class_path": "fractions.Fraction"}, vocab_size=7, trust_remote_code=True)


@pytest.mark.parametrize("key", ["class_path", "encoder.class_path"])
def test_foreign_class_path_is_refused_before_anything_is_imported(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config naming ``os.system`` must not run a command unless the caller opts in."""
    import importlib

    marker = tmp_path / "ran"
    spec = {"class_path": "os.system", "init_args": {"command": f"touch {marker}"}}
    block = spec if key == "class_path" else _config(encoder=spec)
    imported: list[str] = []
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: imported.append(name) or real_import(name, *a))
    with pytest.raises(UntrustedCodeError, match=rf"{key}='os\.system'.*trust_remote_code=True") as err:
        build_asr_model(block, vocab_size=7)
    assert err.value.key == key and err.value.class_path == "os.system"
    assert not marker.exists() and imported == []
    # the custom model of the test above, too: opting in is the caller's choice
    with pytest.raises(UntrustedCodeError):
        build_asr_model({"class_path": f"{__name__}._TinyCustomModel"}, vocab_size=7)


def test_own_components_by_class_path_need_no_trust() -> None:
    for path in ("espnet_model.encoders.transformer.TransformerEncoder",
                 "espnet_model.TransformerEncoder"):
        model = build_asr_model(_config(encoder={"class_path": path, "init_args": ENC}), vocab_size=12)
        assert isinstance(model.encoder, TransformerEncoder)


def test_stft_frontend_choice_takes_espnet2_frontend_conf() -> None:
    conf = {"fs": "16k", "n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 24}
    model = build_asr_model(_config(frontend="stft", frontend_conf=conf), vocab_size=12)
    feats, lengths = model.collect_feats(torch.randn(1, 16000), torch.tensor([16000]))
    assert feats.shape == (1, 101, 24) and lengths.tolist() == [101]
    assert "frontend.logmel.melmat" in model.state_dict()


def test_build_frontend_follows_the_frontend_choice() -> None:
    from espnet_model import Fbank, StftFrontend
    from espnet_model.builder import build_frontend

    assert isinstance(build_frontend(_config()), Fbank)
    stft = build_frontend(_config(frontend="stft", frontend_conf={"n_mels": 24, "fs": "16k"}))
    assert isinstance(stft, StftFrontend) and stft.output_size == 24 and stft.hop_length == 128
    with pytest.raises(ValueError, match="collect_feats"):
        build_frontend({"class_path": "x.Y"})
