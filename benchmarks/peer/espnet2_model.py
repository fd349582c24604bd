"""Build ESPnet2's ``ESPnetASRModel`` from the spec the benchmarks hand to the peer.

Runs in the peer venv (``benchmarks/.peer``), never in this project's: it imports
only ``espnet2``, ``torch`` and the standard library. The spec is the project's
``model:`` block resolved by ``benchmarks/_harness.py:peer_model_spec`` into the
keyword arguments ESPnet2's classes take, so the two sides build one architecture.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch


def write_asr_config(spec: dict[str, Any], path: Path, **choices: Any) -> dict[str, Any]:
    """Write ``path``: an ESPnet2 ASR ``config.yaml`` as ``asr_train`` writes it (``ASRTask``'s
    own parser defaults) holding ``spec``'s blocks (token_list, frontend_conf, encoder_conf,
    decoder_conf, model_conf; a transformer decoder); ``choices`` set the rest (``encoder``,
    ``normalize``, ``specaug`` and their ``*_conf``). Returns the config."""
    import yaml
    from espnet2.tasks.asr import ASRTask

    config = vars(ASRTask.get_parser().parse_args([]))
    config.update(
        token_list=spec["token_list"],
        token_type="char",
        frontend="default",
        frontend_conf=spec["frontend_conf"],
        encoder_conf=spec["encoder_conf"],
        decoder="transformer",
        decoder_conf=spec["decoder_conf"],
        model="espnet",
        model_conf=spec["model_conf"],
        **choices,
    )
    path.write_text(yaml.safe_dump(json.loads(json.dumps(config, default=str))))
    return config


def build_espnet2_model(spec: dict[str, Any]) -> torch.nn.Module:
    """``spec``: token_list, frontend_conf, specaug_conf, encoder_conf, decoder_conf, model_conf."""
    from espnet2.asr.ctc import CTC
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
    from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
    from espnet2.asr.espnet_model import ESPnetASRModel
    from espnet2.asr.frontend.default import DefaultFrontend
    from espnet2.asr.specaug.specaug import SpecAug
    from espnet2.layers.utterance_mvn import UtteranceMVN

    token_list = list(spec["token_list"])
    vocab_size = len(token_list)
    frontend = DefaultFrontend(**spec["frontend_conf"])
    specaug = SpecAug(**spec["specaug_conf"]) if spec.get("specaug_conf") is not None else None
    normalize = UtteranceMVN()
    encoder = ConformerEncoder(input_size=frontend.output_size(), **spec["encoder_conf"])
    decoder = TransformerDecoder(
        vocab_size=vocab_size,
        encoder_output_size=encoder.output_size(),
        **spec["decoder_conf"],
    )
    ctc = CTC(odim=vocab_size, encoder_output_size=encoder.output_size())
    return ESPnetASRModel(
        vocab_size=vocab_size,
        token_list=token_list,
        frontend=frontend,
        specaug=specaug,
        normalize=normalize,
        preencoder=None,
        encoder=encoder,
        postencoder=None,
        decoder=decoder,
        ctc=ctc,
        joint_network=None,
        **spec["model_conf"],
    )


# This project's parameter names -> ESPnet2's, where they differ.
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"\.feed_forward(_macaron)?\.0\.", r".feed_forward\1.w_1."),
    (r"\.feed_forward(_macaron)?\.3\.", r".feed_forward\1.w_2."),
    (r"^decoder\.embed\.weight$", "decoder.embed.0.weight"),
)


def to_espnet2_state(ours: dict[str, torch.Tensor], target: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename this project's state dict to ``target``'s keys; raise on any mismatch.

    ESPnet2's conformer pointwise convolutions are ``Conv1d(k=1)`` where this project
    uses ``Linear``: same numbers, one trailing axis more. The frontend's mel matrix is
    a buffer only ESPnet2 stores; the target keeps its own.
    """
    wanted = target.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in ours.items():
        new = key
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        if new not in wanted:
            raise KeyError(f"{key} (as {new}) has no counterpart in ESPnet2's model")
        shape = tuple(wanted[new].shape)
        if tuple(value.shape) != shape:
            if value.numel() != wanted[new].numel():
                raise ValueError(f"{key}: shape {tuple(value.shape)} != ESPnet2's {shape}")
            value = value.reshape(shape)
        out[new] = value
    for key in sorted(set(wanted) - set(out)):
        if not key.startswith("frontend."):
            raise KeyError(f"ESPnet2 parameter {key} has no counterpart in this project's model")
        out[key] = wanted[key]
    return out
