"""FastSpeech2 against ESPnet2's: the same config gives the same parameter names, shapes
and counts (needs the ESPnet2 peer venv, ``benchmarks/.peer``; skipped without it)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from espnet_model.tts import build_tts

PEER = Path(__file__).resolve().parents[3] / "benchmarks" / ".peer" / "bin" / "python"
VOCAB, N_MELS = 12, 20
SMALL = {
    "adim": 16, "aheads": 2, "elayers": 2, "eunits": 24, "dlayers": 1, "dunits": 24,
    "postnet_layers": 3, "postnet_chans": 8, "duration_predictor_chans": 8,
    "pitch_predictor_chans": 8, "energy_predictor_chans": 8,
    "positionwise_layer_type": "conv1d", "positionwise_conv_kernel_size": 3, "use_masking": True,
}  # fmt: skip
CONFORMER = {**SMALL, "encoder_type": "conformer", "decoder_type": "conformer",
             "conformer_enc_kernel_size": 3, "conformer_dec_kernel_size": 5}  # fmt: skip
LINEAR = {**SMALL, "positionwise_layer_type": "linear", "use_scaled_pos_enc": False, "postnet_layers": 0}

_PEER_SCRIPT = """
import json, sys, logging
logging.disable(logging.WARNING)
from espnet2.tts.fastspeech2.fastspeech2 import FastSpeech2
confs, idim, odim = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
nets = [FastSpeech2(idim=idim, odim=odim, **conf) for conf in confs]
print(json.dumps([{k: list(v.shape) for k, v in net.state_dict().items()} for net in nets]))
"""
CONFS = {"transformer": SMALL, "conformer": CONFORMER, "linear": LINEAR}


@pytest.fixture(scope="module")
def espnet2_shapes() -> dict[str, dict[str, list[int]]]:
    """ESPnet2's state-dict shapes for each of :data:`CONFS` (one peer process, ~15 s)."""
    out = subprocess.run(
        [str(PEER), "-c", _PEER_SCRIPT, json.dumps(list(CONFS.values())), str(VOCAB), str(N_MELS)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return dict(zip(CONFS, json.loads(out.stdout.strip().splitlines()[-1]), strict=True))


def _ours(conf: dict, variances: bool) -> dict[str, list[int]]:
    block = {
        "tts": "fastspeech2", "tts_conf": conf, "normalize": None,
        "feats_extract_conf": {"fs": 16000, "n_fft": 512, "hop_length": 128, "n_mels": N_MELS},
    }  # fmt: skip
    if variances:
        block.update(pitch_extract="yin", energy_extract="energy")
    model = build_tts(block, VOCAB)
    return {k: list(v.shape) for k, v in model.tts.state_dict().items()}


@pytest.mark.skipif(not PEER.is_file(), reason="ESPnet2 peer venv (benchmarks/.peer) not installed")
@pytest.mark.parametrize("name", list(CONFS))
def test_same_parameter_names_shapes_and_counts_as_espnet2(name: str, espnet2_shapes: dict) -> None:
    conf, theirs = CONFS[name], espnet2_shapes[name]
    ours = _ours(conf, variances=True)
    count = lambda shapes: sum(math.prod(s) for s in shapes.values())  # noqa: E731
    print(f"{name}: ours {count(ours):,} values in {len(ours)} tensors, "
          f"ESPnet2 {count(theirs):,} in {len(theirs)}")  # fmt: skip
    assert sorted(set(theirs) - set(ours)) == [] and sorted(set(ours) - set(theirs)) == []
    assert ours == theirs
    # pitch / energy off: ESPnet2 always builds them; ours leaves exactly those out
    off = _ours(conf, variances=False)
    variance = {k: v for k, v in theirs.items() if k.startswith(("pitch_", "energy_"))}
    assert off == {k: v for k, v in theirs.items() if k not in variance}
