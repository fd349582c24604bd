"""The model block checked without weights, and ESPnet2's egs2 keys where they are pasted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from espnet_model import build_asr_model
from espnet_model.builder import check_asr_config
from espnet_model.lm.builder import check_lm_config

# The model keys of egs2/librispeech_100/asr1's e-branchformer config, as ESPnet2 writes
# them (sizes cut down; every key kept).
EBRANCHFORMER: dict[str, Any] = {
    "encoder": "e_branchformer",
    "encoder_conf": {
        "output_size": 16, "attention_heads": 2, "attention_layer_type": "rel_selfattn",
        "pos_enc_layer_type": "rel_pos", "rel_pos_type": "latest", "cgmlp_linear_units": 32,
        "cgmlp_conv_kernel": 7, "use_linear_after_conv": False, "gate_activation": "identity",
        "num_blocks": 2, "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
        "attention_dropout_rate": 0.1, "input_layer": "conv2d", "layer_drop_rate": 0.0,
        "linear_units": 32, "positionwise_layer_type": "linear", "use_ffn": True,
        "macaron_ffn": True, "merge_conv_kernel": 7,
    },
    "decoder": "transformer",
    "decoder_conf": {
        "attention_heads": 2, "linear_units": 32, "num_blocks": 1, "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
        "src_attention_dropout_rate": 0.1, "layer_drop_rate": 0.0,
    },
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "frontend_conf": {"n_fft": 512, "win_length": 400, "hop_length": 160},
    "specaug": "specaug",
    "specaug_conf": {
        "apply_time_warp": True, "time_warp_window": 5, "time_warp_mode": "bicubic",
        "apply_freq_mask": True, "freq_mask_width_range": [0, 27], "num_freq_mask": 2,
        "apply_time_mask": True, "time_mask_width_ratio_range": [0.0, 0.05], "num_time_mask": 5,
    },
    "normalize": "global_mvn",
    "normalize_conf": {"stats_file": "exp/asr_stats/train/feats_stats.npz"},
}  # fmt: skip


def test_pasted_ebranchformer_keys_are_accepted_and_noted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="espnet_model.builder"):
        check_asr_config(EBRANCHFORMER)  # no stats file needed: nothing is read
    noted = caplog.text
    for key in ("use_linear_after_conv", "gate_activation", "positionwise_layer_type", "layer_drop_rate"):
        assert f"encoder_conf.{key}" in noted
    assert "decoder_conf.layer_drop_rate" in noted


def test_the_same_keys_build_the_same_model_as_without_them() -> None:
    espnet2_only = ("use_linear_after_conv", "gate_activation", "positionwise_layer_type", "layer_drop_rate")
    plain = {**EBRANCHFORMER, "normalize": "utterance_mvn", "normalize_conf": {}}
    bare = {**plain, "encoder_conf": {k: v for k, v in plain["encoder_conf"].items() if k not in espnet2_only},
            "decoder_conf": {k: v for k, v in plain["decoder_conf"].items() if k != "layer_drop_rate"}}
    torch.manual_seed(0)
    a = build_asr_model(plain, vocab_size=10)
    torch.manual_seed(0)
    b = build_asr_model(bare, vocab_size=10)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_check_allocates_nothing() -> None:
    big = {**EBRANCHFORMER, "encoder_conf": {**EBRANCHFORMER["encoder_conf"], "output_size": 1024,
                                             "attention_heads": 8, "num_blocks": 24}}
    check_asr_config(big)  # 24 wide blocks on the meta device: no memory, no time


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"encoder": "conformr"}, "encoder='conformr' is unknown (did you mean 'conformer'?)"),
        ({"encoder": "conformer", "encoder_conf": {"num_block": 2}},
         "encoder_conf.num_block is not an argument of ConformerEncoder (did you mean 'num_blocks'?)"),
        ({"encoder": "conformer", "encodr_conf": {}},
         "unknown model config key 'encodr_conf' (did you mean 'encoder_conf'?)"),
        ({"encoder": "conformer", "model_conf": {"ctc_weigth": 0.3}},
         "model_conf.ctc_weigth is unknown (did you mean 'ctc_weight'?)"),
        ({"encoder": "conformer", "encoder_conf": {"layer_drop_rate": 0.1}},
         "encoder_conf.layer_drop_rate=0.1 is ESPnet2's, and drops whole layers"),
        ({"encoder": "conformer", "encoder_conf": {"stochastic_depth_rate": 0.1}},
         "stochastic depth"),
        ({"encoder": "e_branchformer", "encoder_conf": {"use_linear_after_conv": True}},
         "use_linear_after_conv=True is ESPnet2's, and the e-branchformer cgMLP's linear layer"),
        ({"encoder": "conformer", "specaug": "specaug", "specaug_conf": {"replace_with_zero": False}},
         "replace_with_zero=False is ESPnet2's, and masked bins are set to zero here"),
        ({"encoder": "conformer", "ctc_conf": {"ctc_type": "gtnctc"}},
         "ctc_conf.ctc_type='gtnctc' is ESPnet2's, and only torch's built-in CTC loss"),
        ({"encoder": "conformer", "ctc_conf": {"dropout": 0.1}},
         "ctc_conf.dropout is unknown (did you mean 'dropout_rate'?)"),
        ({"encoder": "conformer", "postencoder": "hugging_face_transformers"},
         "postencoder='hugging_face_transformers': a post-encoder is not implemented"),
        ({"encoder": "conformer", "frontend_conf": {"window": "hann"}},
         "frontend_conf.window is not an argument of Fbank (ESPnet2's frontend: default, the STFT "
         "frontend, is frontend: stft here)"),
        ({"encoder": "conformer", "encoder_conf": {"output_size": 250, "attention_heads": 4}},
         "output_size=250 must be divisible by attention_heads=4"),
        ({"encoder": "e_branchformer",
          "encoder_conf": {"ffn_activation_type": "swish", "activation_type": "relu"}},
         "ffn_activation_type is ESPnet2's spelling of activation_type; give one of them"),
    ],
)
def test_a_bad_block_names_the_key_and_the_fix(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        check_asr_config(block)
    assert message in str(err.value)


def test_espnet2_neutral_keys_pass() -> None:
    check_asr_config({
        "encoder": "conformer", "encoder_conf": {"output_size": 16, "attention_heads": 2, "num_blocks": 1,
                                                 "concat_after": False, "use_flash_attn": True,
                                                 "stochastic_depth_rate": 0.0, "zero_triu": False},
        "decoder": "transformer", "decoder_conf": {"input_layer": "embed", "use_output_layer": True},
        "model_conf": {"report_cer": True, "report_wer": True, "sym_blank": "<blank>"},
        "ctc_conf": {"ignore_nan_grad": True, "ctc_type": "builtin"},
        "preencoder": None, "postencoder": None,
        "specaug": "specaug", "specaug_conf": {"replace_with_zero": True},
    })


def test_espnet2_spelling_is_renamed() -> None:
    model = build_asr_model({"encoder": "e_branchformer", "encoder_conf": {
        "output_size": 16, "attention_heads": 2, "num_blocks": 1, "linear_units": 16,
        "cgmlp_linear_units": 16, "ffn_activation_type": "relu"}, "model_conf": {"ctc_weight": 1.0}},
        vocab_size=6)
    assert "ReLU" in repr(model.encoder)


def test_class_path_block_is_checked_against_its_signature() -> None:
    with pytest.raises(ValueError, match=r"model.init_args.vocab is not an argument of .*did you mean 'vocab_size'"):
        check_asr_config({"class_path": "espnet_model.ASRModel", "init_args": {"vocab": 3}},
                         trust_remote_code=True)


def test_lm_block_checks_name_the_closest_key() -> None:
    check_lm_config({"lm": "transformer", "lm_conf": {"layer": 2, "unit": 32, "att_unit": 16, "head": 2}})
    with pytest.raises(ValueError, match=r"lm_conf.layers is not an argument of lm='transformer' \(did you mean 'layer'\?\)"):
        check_lm_config({"lm": "transformer", "lm_conf": {"layers": 2}})
    with pytest.raises(ValueError, match=r"lm='transfomer' is unknown \(did you mean 'transformer'\?\)"):
        check_lm_config({"lm": "transfomer"})
