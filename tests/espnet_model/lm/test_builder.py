"""build_lm: ESPnet2-style LM blocks, ESPnet2's defaults, errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from espnet_model import count_parameters
from espnet_model.lm import LanguageModel, SequentialRNNLM, TransformerLM, build_lm
from espnet_model.lm.builder import LM_CHOICES

from tests.espnet_model.make_espnet2_lm_fixture import LIBRISPEECH_LM, LIBRISPEECH_VOCAB

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "espnet2_lm_tiny"


def test_builds_each_choice_with_espnet2_defaults_for_missing_keys() -> None:
    model = build_lm({"lm": "transformer", "lm_conf": {"layer": 1}}, vocab_size=20)
    assert isinstance(model, LanguageModel) and isinstance(model.lm, TransformerLM)
    assert model.lm.embed.weight.shape == (20, 128)  # ESPnet2's embed_unit
    assert model.lm.decoder.weight.shape == (20, 256)  # att_unit
    assert model.lm.encoder.encoders[0].feed_forward.w_1.out_features == 1024  # unit
    assert model.lm.encoder.encoders[0].self_attn.h == 2  # head
    assert model.ignore_id == 0 and model.sos == 19
    rnn = build_lm({"lm_conf": {"unit": 10}, "model": "lm", "model_conf": {"ignore_id": 3}}, 7)
    assert isinstance(rnn.lm, SequentialRNNLM)  # ESPnet2's default lm: seq_rnn
    assert rnn.lm.nlayers == 2 and rnn.lm.rnn_type == "lstm" and rnn.ignore_id == 3
    assert set(LM_CHOICES) == {"transformer", "seq_rnn"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"lm": "transformer_opt"}, "lm='transformer_opt' is unknown \\(did you mean 'transformer'\\?\\); valid choices: 'seq_rnn', 'transformer'"),
        ({"encoder": "rnn"}, "unknown LM config key 'encoder'; valid keys: lm, lm_conf, model, model_conf"),
        ({"lm": "transformer", "lm_conf": {"nlayers": 2}}, "lm_conf.nlayers is not an argument of lm='transformer' \\(did you mean 'layer'\\?\\); valid keys: pos_enc, embed_unit"),
        ({"lm_conf": {"vocab_size": 5}}, "lm_conf.vocab_size is derived"),
        ({"model_conf": {"lsm_weight": 0.1}}, "model_conf.lsm_weight is unknown; valid keys: ignore_id"),
        ({"model": "lm_multitask"}, "model='lm_multitask' is unknown"),
        ({"lm_conf": [1, 2]}, "lm_conf must be a mapping"),
    ],
)  # fmt: skip
def test_errors_name_the_key_and_the_valid_ones(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message if "\\(" in message else message.replace("(", r"\(")):
        build_lm(config, vocab_size=10)


def test_librispeech_transformer_lm_has_espnet2_parameter_count() -> None:
    counts = json.loads((FIXTURE / "counts.json").read_text())
    assert counts["config"] == LIBRISPEECH_LM and counts["vocab_size"] == LIBRISPEECH_VOCAB
    model = build_lm(LIBRISPEECH_LM, vocab_size=LIBRISPEECH_VOCAB)  # ~0.4 s (on "meta": 6 s)
    ours = count_parameters(model)
    print(f"LibriSpeech transformer LM parameters: ours {ours:,}, ESPnet2 {counts['num_params']:,}")
    assert ours == counts["num_params"]
    assert len(model.state_dict()) == counts["num_keys"]
