"""ESPnet2 compatibility: config translation, checkpoint loading, same outputs as ESPnet2.

The committed fixture ``tests/data/espnet2_tiny/conformer`` is a tiny ESPnet2 experiment
folder written by ESPnet2 itself (``make_espnet2_fixture.py`` in the peer venv) with
ESPnet2's outputs on a fixed input. The ``peer`` tests regenerate such folders for
every encoder with the peer venv (``benchmarks/.peer``) and are skipped without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from espnet_model import build_asr_model, count_parameters
from espnet_model.attention import LegacyRelPositionalEncoding
from espnet_model.espnet2 import (
    convert_espnet2_state_dict,
    find_espnet2_files,
    load_espnet2,
    translate_espnet2_config,
)
from espnet_model.frontend import StftFrontend

from tests.espnet_model.make_espnet2_fixture import LIBRISPEECH100

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "espnet2_tiny" / "conformer"
PEER = ROOT / "benchmarks" / ".peer" / "bin" / "python"
SCRIPT = Path(__file__).with_name("make_espnet2_fixture.py")
ATOL = 1e-5

# ESPnet2 (espnet 202611) parameter count of the librispeech_100 conformer recipe shape
# (vocab 5000), measured in the peer venv with make_espnet2_fixture.py --count-librispeech100.
LIBRISPEECH100_PARAMS = 34_229_520


def check_outputs(folder: Path) -> None:
    """Our model loaded from ``folder`` reproduces ESPnet2's ``expected.pt``."""
    loaded = load_espnet2(folder)
    model, exp = loaded.model, torch.load(folder / "expected.pt")
    assert not model.training
    with torch.no_grad():
        feats, feats_lengths = model.frontend(exp["speech"], exp["speech_lengths"])
        enc, enc_lengths = model.encode(exp["speech"], exp["speech_lengths"])
        logp = model.ctc.log_softmax(enc)
        logits = model.decoder(enc, enc_lengths, exp["ys_in"], exp["text_lengths"] + 1)
        loss, stats, weight = model(
            exp["speech"], exp["speech_lengths"], exp["text"], exp["text_lengths"]
        )
    assert torch.equal(feats_lengths, exp["feats_lengths"])
    torch.testing.assert_close(feats, exp["feats"], atol=ATOL, rtol=0)
    assert torch.equal(enc_lengths, exp["enc_lengths"])
    torch.testing.assert_close(enc, exp["enc"], atol=ATOL, rtol=0)
    torch.testing.assert_close(logp, exp["ctc_logp"], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits, exp["dec_logits"], atol=ATOL, rtol=0)
    taps = sorted(k for k in exp if k.startswith("loss_interctc_layer"))
    assert sorted(k for k in stats if k.startswith("loss_interctc_layer")) == taps
    for key in ("loss_ctc", "loss_att", *taps):
        torch.testing.assert_close(stats[key], exp[key].reshape(()), atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(loss, exp["loss"].reshape(()), atol=ATOL, rtol=1e-5)
    assert weight == 2
    assert count_parameters(model) == int(exp["num_params"])


@pytest.mark.parametrize("name", ["conformer", "conformer_legacy", "conformer_interctc"])
def test_fixture_outputs_match_espnet2(name: str) -> None:
    """``conformer_legacy``: ESPnet2's default ``rel_pos_type: legacy`` positions;
    ``conformer_interctc``: intermediate CTC after blocks 1 and 2 with self-conditioning."""
    check_outputs(FIXTURE.parent / name)


def test_state_dict_keys_and_shapes_match_espnet2_exactly() -> None:
    espnet2_state = torch.load(FIXTURE / "valid.acc.ave.pth", weights_only=True)
    ours = load_espnet2(FIXTURE).model.state_dict()
    assert sorted(ours) == sorted(espnet2_state)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in espnet2_state.items()
    }
    assert "encoder.encoders.1.conv_module.pointwise_conv1.weight" in ours
    assert "decoder.embed.0.weight" in ours and "frontend.logmel.melmat" in ours


def test_self_conditioned_checkpoint_keys_match_espnet2_and_translate() -> None:
    folder = FIXTURE.parent / "conformer_interctc"
    espnet2_state = torch.load(folder / "valid.acc.ave.pth", weights_only=True)
    loaded = load_espnet2(folder)
    ours = loaded.model.state_dict()
    assert sorted(ours) == sorted(espnet2_state)
    assert tuple(ours["encoder.conditioning_layer.weight"].shape) == (16, 10)
    cfg = loaded.model_config
    assert cfg["encoder_conf"]["interctc_layer_idx"] == [1, 2]
    assert cfg["encoder_conf"]["interctc_use_conditioning"] is True
    assert cfg["model_conf"]["interctc_weight"] == 0.5
    # models without intermediate CTC translate as before: no interctc keys at all
    plain = load_espnet2(FIXTURE).model_config
    assert not any("interctc" in k for k in (*plain["encoder_conf"], *plain["model_conf"]))


def test_loaded_result_carries_tokens_and_translated_config() -> None:
    loaded = load_espnet2(FIXTURE)
    assert loaded.token_list[0] == "<blank>" and loaded.token_list[-1] == "<sos/eos>"
    assert loaded.model.vocab_size == len(loaded.token_list) == 10
    cfg = loaded.model_config
    assert cfg["frontend"] == "stft" and cfg["frontend_conf"]["hop_length"] == 160
    assert cfg["normalize"] == "global_mvn" and "stats_file" not in cfg["normalize_conf"]
    assert cfg["model_conf"]["ctc_weight"] == 0.3
    assert loaded.model_file.name == "valid.acc.ave.pth"
    # The translated block rebuilds the same architecture through the normal builder.
    rebuilt = build_asr_model(cfg, vocab_size=10)
    rebuilt.load_state_dict(loaded.model.state_dict(), strict=True)


def test_torchaudio_slaney_melmat_matches_librosa() -> None:
    espnet2_state = torch.load(FIXTURE / "valid.acc.ave.pth", weights_only=True)
    ours = StftFrontend(n_fft=512, win_length=400, hop_length=160, n_mels=20)
    torch.testing.assert_close(
        ours.logmel.melmat, espnet2_state["frontend.logmel.melmat"], atol=1e-6, rtol=1e-4
    )


def test_stft_frontend_is_batch_invariant() -> None:
    frontend = StftFrontend(n_fft=512, win_length=400, hop_length=160, n_mels=20)
    torch.manual_seed(0)
    long, short = torch.randn(6000), torch.randn(3300)
    batch = torch.zeros(2, 6000)
    batch[0], batch[1, :3300] = long, short
    feats, lengths = frontend(batch, torch.tensor([6000, 3300]))
    alone, alone_len = frontend(short.unsqueeze(0), torch.tensor([3300]))
    assert lengths.tolist() == [6000 // 160 + 1, 3300 // 160 + 1] and alone_len.item() == lengths[1]
    torch.testing.assert_close(feats[1, : lengths[1]], alone[0], atol=1e-5, rtol=1e-5)
    assert feats[1, lengths[1] :].abs().sum() == 0
    # A single utterance equals torch.stft's centred reflect padding (what ESPnet2 uses).
    spec = torch.stft(
        short, 512, 160, 400, torch.hann_window(400), center=True, return_complex=True
    )
    ref = (spec.abs().square().T @ frontend.logmel.melmat).clamp(min=1e-10).log()
    torch.testing.assert_close(alone[0], ref, atol=1e-4, rtol=1e-5)


def _fixture_config() -> dict[str, Any]:
    return yaml.safe_load((FIXTURE / "config.yaml").read_text())


def test_translation_fills_espnet2_defaults() -> None:
    cfg = translate_espnet2_config(
        {"encoder": "conformer", "decoder": "transformer", "token_list": ["<blank>", "x"]}
    )
    enc = cfg["encoder_conf"]
    assert enc["linear_units"] == 2048 and enc["num_blocks"] == 6
    assert enc["macaron_style"] is False and enc["rel_pos_type"] == "legacy"
    assert cfg["model_conf"] == {
        "ctc_weight": 0.5, "lsm_weight": 0.0, "ignore_id": -1, "length_normalized_loss": False
    }  # fmt: skip
    assert cfg["frontend"] == "stft" and cfg["frontend_conf"]["hop_length"] == 128
    assert cfg["specaug"] is None and cfg["normalize"] is None
    legacy = build_asr_model(cfg, vocab_size=5)
    assert isinstance(legacy.encoder.pos_enc, LegacyRelPositionalEncoding)
    ebf = translate_espnet2_config({"encoder": "e_branchformer", "encoder_conf": {}})
    assert ebf["encoder_conf"]["use_ffn"] is False
    renamed = translate_espnet2_config(
        {"encoder": "e_branchformer", "encoder_conf": {"ffn_activation_type": "relu"}}
    )
    assert renamed["encoder_conf"]["activation_type"] == "relu"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"encoder_conf": {"qk_norm": True}}, r"encoder_conf.qk_norm=True"),
        ({"encoder_conf": {"no_such_key": 1}}, r"encoder_conf.no_such_key=1 .*unknown key"),
        ({"encoder": "rnn"}, r"encoder='rnn' is not supported"),
        ({"frontend": "s3prl"}, r"frontend='s3prl' is not supported"),
        ({"preencoder": "linear"}, r"preencoder='linear'"),
        ({"encoder_conf": {"ctc_trim": True}}, r"encoder_conf.ctc_trim=True"),
        ({"ctc_conf": {"ctc_type": "gtnctc"}}, r"ctc_conf.ctc_type='gtnctc'"),
    ],
)
def test_translation_rejects_what_is_not_implemented(change: dict[str, Any], match: str) -> None:
    config = _fixture_config()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    with pytest.raises(ValueError, match=match):
        translate_espnet2_config(config)


def test_training_only_keys_are_dropped_with_a_warning() -> None:
    config = _fixture_config()
    config["encoder_conf"]["layer_drop_rate"] = 0.1
    with pytest.warns(UserWarning, match="layer_drop_rate=0.1 acts only in training"):
        cfg = translate_espnet2_config(config)
    assert "layer_drop_rate" not in cfg["encoder_conf"]
    config["encoder_conf"]["use_flash_attn"] = False  # neutral: no warning
    config["encoder_conf"].pop("layer_drop_rate")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        translate_espnet2_config(config)


def _copy_as_zoo_pack(dst: Path) -> Path:
    exp = dst / "exp" / "asr_train_raw_char"
    exp.mkdir(parents=True)
    shutil.copy(FIXTURE / "config.yaml", exp / "config.yaml")
    shutil.copy(FIXTURE / "valid.acc.ave.pth", exp / "valid.acc.ave_10best.pth")
    meta = {
        "espnet": "202611",
        "files": {"asr_model_file": "exp/asr_train_raw_char/valid.acc.ave_10best.pth"},
        "yaml_files": {"asr_train_config": "exp/asr_train_raw_char/config.yaml"},
    }
    (dst / "meta.yaml").write_text(yaml.safe_dump(meta))
    return exp


def test_zoo_pack_config_file_and_exp_folder_layouts(tmp_path: Path) -> None:
    exp = _copy_as_zoo_pack(tmp_path / "pack")
    assert find_espnet2_files(tmp_path / "pack") == (
        exp / "config.yaml",
        exp / "valid.acc.ave_10best.pth",
    )
    assert load_espnet2(tmp_path / "pack").model_file.name == "valid.acc.ave_10best.pth"
    (tmp_path / "pack" / "meta.yaml").unlink()  # unpacked without meta: the single exp/*/
    assert find_espnet2_files(tmp_path / "pack")[0] == exp / "config.yaml"
    assert find_espnet2_files(exp / "config.yaml")[1].name == "valid.acc.ave_10best.pth"
    (exp / "valid.acc.ave_10best.pth").unlink()
    with pytest.raises(FileNotFoundError, match="no ESPnet2 ASR checkpoint"):
        find_espnet2_files(exp)
    with pytest.raises(FileNotFoundError, match="neither config.yaml"):
        find_espnet2_files(tmp_path)


def test_token_list_file_and_bad_token_list(tmp_path: Path) -> None:
    config = _fixture_config()
    tokens = config["token_list"]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n")
    config["token_list"] = "tokens.txt"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(FIXTURE / "valid.acc.ave.pth", tmp_path / "model.pth")
    assert load_espnet2(tmp_path).token_list == tokens
    config["token_list"] = list(reversed(tokens))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="must start with '<blank>'"):
        load_espnet2(tmp_path)


def test_legacy_subsampling_keys_and_training_checkpoint(tmp_path: Path) -> None:
    state = torch.load(FIXTURE / "valid.acc.ave.pth", weights_only=True)
    legacy = {k.replace("encoder.embed.out.", "encoder.embed.out.0."): v for k, v in state.items()}
    assert "encoder.embed.out.0.weight" in legacy
    assert sorted(convert_espnet2_state_dict(legacy)) == sorted(state)
    shutil.copy(FIXTURE / "config.yaml", tmp_path / "config.yaml")
    torch.save({"model": legacy, "optimizers": []}, tmp_path / "checkpoint.pth")
    loaded = load_espnet2(tmp_path, model_file=tmp_path / "checkpoint.pth")
    torch.testing.assert_close(
        loaded.model.encoder.embed.out.weight, state["encoder.embed.out.weight"]
    )


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path: Path) -> None:
    state = torch.load(FIXTURE / "valid.acc.ave.pth", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("decoder.decoders.0.src_attn")}
    state["decoder.extra.weight"] = torch.zeros(1)
    shutil.copy(FIXTURE / "config.yaml", tmp_path / "config.yaml")
    torch.save(state, tmp_path / "valid.acc.ave.pth")
    with pytest.raises(RuntimeError, match=r"does not match .*src_attn.*decoder.extra.weight"):
        load_espnet2(tmp_path)


def test_librispeech100_conformer_has_espnet2_parameter_count() -> None:
    model = build_asr_model(translate_espnet2_config(LIBRISPEECH100), vocab_size=5000)
    assert count_parameters(model) == LIBRISPEECH100_PARAMS
    ours = build_asr_model(LIBRISPEECH100, vocab_size=5000)  # as a training.yaml model block
    assert count_parameters(ours) == LIBRISPEECH100_PARAMS


# --- against the peer venv (ESPnet2 itself); skipped when benchmarks/.peer is absent ---

peer = pytest.mark.skipif(not PEER.exists(), reason="ESPnet2 peer venv benchmarks/.peer absent")


@peer
@pytest.mark.slow
def test_peer_checkpoints_of_every_encoder_load_with_espnet2_outputs(tmp_path: Path) -> None:
    encoders = ("conformer", "conformer_legacy", "transformer", "e_branchformer",
                "conformer_interctc", "transformer_interctc", "e_branchformer_interctc")
    out = subprocess.run(
        [str(PEER), str(SCRIPT), str(tmp_path), "--encoders", *encoders, "--count-librispeech100"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for encoder in encoders:
        check_outputs(tmp_path / encoder)
    counted = json.loads(out.stdout.strip().splitlines()[-1])
    assert counted["num_params"] == LIBRISPEECH100_PARAMS
    # The committed fixture is what the script writes today.
    for name in ("conformer", "conformer_legacy", "conformer_interctc"):
        for file in ("valid.acc.ave.pth", "config.yaml"):
            assert (tmp_path / name / file).read_bytes() == (
                FIXTURE.parent / name / file
            ).read_bytes(), f"regenerate tests/data/espnet2_tiny ({name}/{file} differs)"
