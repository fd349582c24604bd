"""build_tts: ESPnet2-style blocks, defaults, and errors that name the key (and the closest one)."""

from __future__ import annotations

import pytest
from espnet_model.tts import build_feats_extract, build_tts
from espnet_model.tts.fastspeech2 import FastSpeech2

SMALL = {"adim": 8, "aheads": 2, "elayers": 1, "eunits": 8, "dlayers": 1, "dunits": 8, "postnet_layers": 0,
         "duration_predictor_chans": 8, "pitch_predictor_chans": 8, "energy_predictor_chans": 8}  # fmt: skip


def _block(**extra: object) -> dict:
    return {"tts": "fastspeech2", "tts_conf": SMALL, "normalize": None, **extra}


def test_espnet2_defaults_for_keys_left_out() -> None:
    model = build_tts({"tts": "fastspeech2", "normalize_conf": {"stats_file": None}}, vocab_size=20)
    assert isinstance(model.tts, FastSpeech2)
    assert model.tts.encoder.embed[0].weight.shape == (20, 384)  # adim
    assert len(model.tts.encoder.encoders) == 6 and model.tts.feat_out.out_features == 80  # n_mels
    assert model.feats_extract_conf == {"fs": 16000, "n_fft": 1024, "hop_length": 256, "win_length": 1024,
                                        "window": "hann", "n_mels": 80, "fmin": 80.0, "fmax": 7600.0, "htk": False}  # fmt: skip
    assert model.tts.pitch_predictor is None and model.tts.energy_predictor is None
    assert model.normalize is not None  # global_mvn is ESPnet2's default


def test_espnet2_only_options_load_at_their_defaults() -> None:
    conf = {**SMALL, "use_gst": False, "spks": None, "gst_conv_chans_list": [32, 32, 64, 64, 128, 128], "zero_triu": False}
    assert build_tts(_block(tts_conf=conf), 10).tts.feat_out.in_features == 8


def test_pitch_and_energy_take_the_mel_stft_settings() -> None:
    model = build_tts(_block(feats_extract_conf={"fs": 22050, "n_fft": 2048, "hop_length": 300},
                             pitch_extract="yin", energy_extract="energy"), 10)  # fmt: skip
    assert model.pitch_extract is not None and model.pitch_extract.hop_length == 300 and model.pitch_extract.fs == 22050
    assert model.energy_extract is not None and model.energy_extract.stft.n_fft == 2048
    assert model.tts.pitch_predictor is not None and model.tts.energy_embed is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tts": "tacotron2"}, r"tts='tacotron2' is unknown; valid choices: 'fastspeech2'"),
        ({"tts": "fastspeech"}, r"tts='fastspeech' is unknown \(did you mean 'fastspeech2'\?\)"),
        ({"tts_config": {}}, r"unknown TTS model config key 'tts_config' \(did you mean 'tts_conf'\?\)"),
        ({"tts_conf": {**SMALL, "adims": 4}}, r"tts_conf.adims is not an argument of FastSpeech2 \(did you mean 'adim'\?\)"),
        ({"tts_conf": {**SMALL, "idim": 4}}, r"tts_conf.idim is derived by the builder"),
        ({"tts_conf": {**SMALL, "use_gst": True}}, r"tts_conf.use_gst=True is an ESPnet2 FastSpeech2 option not implemented"),
        ({"tts_conf": {**SMALL, "spks": 4}}, r"tts_conf.spks=4 is an ESPnet2 FastSpeech2 option"),
        ({"tts_conf": {**SMALL, "reduction_factor": 2}}, r"tts_conf.reduction_factor=2: only 1"),
        ({"tts_conf": {**SMALL, "encoder_type": "rnn"}}, r"tts_conf.encoder_type='rnn' is not supported"),
        ({"tts_conf": {**SMALL, "positionwise_layer_type": "conv2d"}}, r"tts_conf.positionwise_layer_type='conv2d'"),
        ({"tts_conf": {**SMALL, "positionwise_conv_kernel_size": 2}}, r"positionwise_conv_kernel_size=2 must be odd"),
        ({"tts_conf": {**SMALL, "use_masking": True, "use_weighted_masking": True}}, "at most one of use_masking"),
        ({"tts_conf": {**SMALL, "encoder_type": "conformer", "conformer_rel_pos_type": "latest",
                       "conformer_pos_enc_layer_type": "legacy_rel_pos"}}, r"tts_conf.conformer_pos_enc_layer_type"),
        ({"feats_extract": "spectrogram"}, r"feats_extract='spectrogram' is unknown; valid choices: 'fbank', None"),
        ({"feats_extract_conf": {"hop_size": 256}}, r"feats_extract_conf.hop_size is not an argument of LogMelFbank \(did you mean 'hop_length'\?\)"),
        ({"pitch_extract": "dio"}, r"pitch_extract='dio' is unknown.*needs pyworld.*pitch_extract: yin"),
        ({"pitch_extract_conf": {"f0min": 60}}, r"pitch_extract_conf is set but pitch_extract is null"),
        ({"energy_extract": "energy", "energy_extract_conf": {"hop_length": 128}}, r"energy_extract_conf.hop_length=128 differs"),
        ({"pitch_normalize": "global_mvn"}, r"pitch_normalize is set but pitch_extract is null"),
        ({"normalize": "global_mvn"}, r"normalize: global_mvn needs normalize_conf.stats_file"),
        ({"normalize": "utterance_mvn"}, r"normalize='utterance_mvn' is unknown"),
        ({"normalize": "global_mvn", "normalize_conf": {"stats_file": "/nonexistent/feats_stats.npz"}}, "does not exist"),
        ({"tts_conf": [1]}, "tts_conf must be a mapping"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_key(extra: dict, message: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build_tts(_block(**extra), vocab_size=10)


def test_vocab_size_and_missing_tts() -> None:
    with pytest.raises(ValueError, match="tts is required"):
        build_tts({"normalize": None}, 10)
    with pytest.raises(ValueError, match="vocab_size=2"):
        build_tts(_block(), 2)


def test_feats_extract_alone() -> None:
    fe = build_feats_extract({"feats_extract_conf": {"fs": "22.05k", "n_mels": 40}})
    assert fe.fs == 22050 and fe.n_mels == 40 and fe.hop_length == 256
