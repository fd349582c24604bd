"""ESPnet2 keys that this project's constructors do not take, and what each means here (private).

An egs2 config's model keys can be pasted into ``training.yaml``'s model block. Most of
them are arguments of this project's constructors; the rest are listed below with the
values that make them a no-op here. The builder (:mod:`espnet_model.builder`) consults
this table only for a key the constructor lacks:

* a neutral value is accepted and dropped, with a logged note (the model is the same);
* a renamed key (ESPnet2's spelling) is passed under this project's name;
* any other value is refused with the reason, since training with it would differ from
  ESPnet2's (e.g. ``layer_drop_rate: 0.1`` drops layers at random; not implemented).

:mod:`espnet_model.espnet2` (loading a trained ESPnet2 model) keeps its own, laxer rules:
a training-only regulariser does not change a trained model's outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("espnet_model.builder")

ANY = object()
"""Any value is neutral (the key selects a kernel or a memory trade, never the result)."""


@dataclass(frozen=True)
class Rule:
    """What an ESPnet2-only key means here.

    Attributes:
        neutral: the value(s) with no effect (a tuple lists several), or :data:`ANY`.
        why: what another value would do that this project does not implement.
    """

    neutral: Any
    why: str

    def is_neutral(self, value: Any) -> bool:
        if self.neutral is ANY:
            return True
        if isinstance(self.neutral, tuple):
            return any(value == n for n in self.neutral)
        return bool(value == self.neutral)


_KERNEL = "selects an attention kernel; this project picks its own, with the same results"
_LAYER_DROP = "drops whole layers at random in training (LayerDrop); not implemented here"

_LAYERS: dict[str, Rule] = {
    "concat_after": Rule(False, "ESPnet2's legacy concat of attention input and output is not implemented"),
    "positionwise_layer_type": Rule("linear", "only the linear feed-forward layer is implemented"),
    "positionwise_conv_kernel_size": Rule(ANY, "used only with a conv1d feed-forward layer"),
    "zero_triu": Rule(False, "zero_triu of the legacy relative attention is not implemented"),
    "padding_idx": Rule(ANY, "used only with input_layer: embed (text input)"),
    "qk_norm": Rule(False, "query/key normalisation is not implemented"),
    "use_flash_attn": Rule(ANY, _KERNEL),
    "use_sdpa": Rule(ANY, _KERNEL),
    "gradient_checkpoint_layers": Rule(
        ANY, "activation checkpointing (memory for compute) is not implemented: same results, "
             "memory as without it"),
    "pos_enc_class": Rule(ANY, "the positional encoding follows pos_enc_layer_type"),
    "layer_drop_rate": Rule(0.0, _LAYER_DROP),
}

RULES: dict[str, dict[str, Rule]] = {
    "encoder_conf": {
        **_LAYERS,
        "ctc_trim": Rule(False, "CTC-based trimming of encoder frames is not implemented"),
        "stochastic_depth_rate": Rule(0.0, "stochastic depth (layers skipped at random in "
                                           "training) is not implemented here"),
        "use_linear_after_conv": Rule(False, "the e-branchformer cgMLP's linear layer after its "
                                             "convolution is not implemented"),
        "gate_activation": Rule("identity", "the cgMLP gate has no activation here"),
        "pos_enc_layer_type": Rule(("abs_pos",), "the transformer encoder has absolute "
                                                 "positional encodings only"),
        "max_pos_emb_len": Rule(ANY, "it sets only the length of a precomputed positional table"),
    },
    "decoder_conf": {
        **_LAYERS,
        "input_layer": Rule("embed", "the decoder reads token embeddings only"),
        "use_output_layer": Rule(True, "the decoder always has its output layer"),
    },
    "specaug_conf": {
        "replace_with_zero": Rule(True, "masked bins are set to zero here, not to the mean"),
    },
    "model_conf": {
        "report_cer": Rule(ANY, "validation reports accuracy and losses"),
        "report_wer": Rule(ANY, "validation reports accuracy and losses"),
        "sym_space": Rule(ANY, "the tokenizer folder defines the symbols"),
        "sym_blank": Rule("<blank>", "the blank symbol is <blank>, id 0"),
        "sym_sos": Rule("<sos/eos>", "the start/end symbol is <sos/eos>, the last id"),
        "sym_eos": Rule("<sos/eos>", "the start/end symbol is <sos/eos>, the last id"),
        "transducer_multi_blank_durations": Rule(ANY, "transducers are not implemented"),
        "transducer_multi_blank_sigma": Rule(ANY, "transducers are not implemented"),
        "autocast_frontend": Rule(False, "the frontend runs in float32 here; trainer.precision "
                                         "covers the rest of the model"),
        "extract_feats_in_collect_stats": Rule(ANY, "collect_stats always computes features"),
        "lang_token_id": Rule(-1, "language tokens are not implemented"),
        "aux_ctc": Rule(None, "auxiliary CTC tasks are not implemented"),
    },
    "ctc_conf": {
        "dropout_rate": Rule(0.0, "dropout before the CTC layer is not configurable here"),
        "ctc_type": Rule("builtin", "only torch's built-in CTC loss is implemented"),
        "reduce": Rule(True, "the CTC loss is always reduced over the batch"),
        "ignore_nan_grad": Rule(ANY, "nan_policy in training.yaml decides what a NaN loss does"),
        "zero_infinity": Rule(True, "impossible alignments always give zero loss here"),
        "brctc_risk_strategy": Rule(ANY, "used only with ctc_type: brctc"),
        "brctc_group_strategy": Rule(ANY, "used only with ctc_type: brctc"),
        "brctc_risk_factor": Rule(0.0, "used only with ctc_type: brctc"),
    },
}

#: ESPnet2 spelling -> this project's, per constructor class name
RENAMES: dict[str, dict[str, str]] = {
    "EBranchformerEncoder": {"ffn_activation_type": "activation_type"},
}

#: keys of ESPnet2's DefaultFrontend (``frontend: stft`` here) that the fbank frontend lacks
STFT_ONLY = ("window", "center", "normalized", "onesided", "htk", "frontend_conf", "apply_stft")

#: ESPnet2's top-level model keys that must be empty here (components not implemented)
EMPTY_TOP_LEVEL: dict[str, str] = {
    "preencoder": "a pre-encoder is not implemented",
    "postencoder": "a post-encoder is not implemented",
    "joint_net_conf": "transducer joint networks are not implemented",
}


def neutral_or_refuse(section: str, key: str, value: Any) -> bool:
    """True (logging a note) when ``section.key`` is an ESPnet2 key whose ``value`` is a
    no-op here; False when the key is not one of ESPnet2's.

    Raises:
        ValueError: an ESPnet2 key with a value that would change training, with the reason.
    """
    rule = RULES.get(section, {}).get(key)
    if rule is None:
        return False
    if not rule.is_neutral(value):
        allowed = "" if rule.neutral is ANY else (
            f"; remove it or set {rule.neutral!r}" if not isinstance(rule.neutral, tuple)
            else f"; remove it or set one of {', '.join(map(repr, rule.neutral))}")
        raise ValueError(f"{section}.{key}={value!r} is ESPnet2's, and {rule.why}{allowed}")
    log.info("%s.%s=%r: an ESPnet2 key that changes nothing at this value here; ignored",
             section, key, value)
    return True
