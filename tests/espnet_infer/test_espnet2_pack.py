"""ESPnet2 model-zoo packs decode with ESPnet2's hypotheses.

The committed fixture ``tests/data/espnet2_pack_tiny`` was written by ESPnet2 itself
(``make_espnet2_pack.py`` in the peer venv): a pack as ``espnet2.bin.pack asr`` makes
it (a tiny conformer with global MVN, a BPE model and token list in frequency order, a
transformer LM), two recordings, and ESPnet2 ``Speech2Text``'s hypotheses on them.
The ``peer`` test writes a fresh pack with the peer venv (``benchmarks/.peer``) and is
skipped without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from espnet_data import SentencePieceTokenizer
from espnet_data.corpora.kaldi import KaldiDirCorpus
from espnet_data.shards import write_split
from espnet_infer import (
    DecodeConfig,
    InferenceConfig,
    Speech2Text,
    load_model_folder,
    run_inference,
)
from espnet_infer.espnet2_pack import ESPNET2_DECODE, find_espnet2, locate
from espnet_infer.runner import _settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "espnet2_pack_tiny"
PEER = ROOT / "benchmarks" / ".peer" / "bin" / "python"
SCRIPT = Path(__file__).with_name("make_espnet2_pack.py")
ASR_CONFIG = "exp/asr_train_asr_conformer_raw_en_bpe30/config.yaml"
BPE = "data/en_token_list/bpe_unigram30/bpe.model"

# The fixture's searches as this project's options (lm: None = the pack's own LM).
SEARCHES: dict[str, dict[str, Any]] = {
    "greedy": {"method": "ctc_greedy"},
    "beam": {"lm": False},
    "beam_lm": {},
    "beam_small": {"lm": False, "beam_size": 4, "ctc_weight": 0.3, "penalty": 0.5},
}

peer = pytest.mark.skipif(not PEER.exists(), reason="ESPnet2 peer venv benchmarks/.peer absent")


def check_hypotheses(out: Path, search: str) -> None:
    """Our Speech2Text on ``out/pack`` gives ESPnet2's ``expected.json`` for ``search``."""
    expected = json.loads((out / "expected.json").read_text())["utterances"]
    options = dict(SEARCHES[search])
    lm = options.pop("lm", None)
    s2t = Speech2Text.from_pretrained(out / "pack", lm=lm, **options)
    assert s2t.uses_lm == (search == "beam_lm")
    for utt, results in expected.items():
        want = results[search]
        hyp = s2t.transcribe_nbest(out / "audio" / f"{utt}.wav")[0]
        assert [i for i in hyp.tokens if i != 0] == want["token_int"], (utt, search)
        assert hyp.text == want["text"], (utt, search)
        if "score" in want:
            assert hyp.score == pytest.approx(want["score"], abs=1e-3)


@pytest.mark.parametrize("search", list(SEARCHES))
def test_fixture_hypotheses_equal_espnet2s(search: str) -> None:
    check_hypotheses(FIXTURE, search)


def test_fixture_token_ids_are_not_sentencepieces() -> None:
    """The pack's ids follow its token list (frequency order), not bpe.model's: this
    project's own SentencePiece tokenizer would give other text for them."""
    loaded = load_model_folder(FIXTURE / "pack")
    ours = SentencePieceTokenizer(FIXTURE / "pack" / BPE)
    assert loaded.tokenizer.token_list != ours.token_list
    ids = json.loads((FIXTURE / "expected.json").read_text())["utterances"]["utt1"]["beam"]
    assert ours.decode(ids["token_int"]) != ids["text"]


def test_pack_decodes_with_espnet2s_defaults_and_its_lm() -> None:
    s2t = Speech2Text.from_pretrained(FIXTURE / "pack")
    assert replace(s2t.decode, lm=None) == ESPNET2_DECODE
    assert (ESPNET2_DECODE.beam_size, ESPNET2_DECODE.ctc_weight, ESPNET2_DECODE.lm_weight) == (
        20, 0.5, 1.0)
    assert s2t.decode.lm == str(FIXTURE / "pack") and s2t.uses_lm
    assert s2t.sample_rate == 16000
    assert s2t.loaded.config["espnet2"]["lm_file"].endswith("valid.loss.ave_10best.pth")
    s2t = Speech2Text.from_pretrained(FIXTURE / "pack", beam_size=3, lm_weight=0.2)
    assert (s2t.decode.beam_size, s2t.decode.lm_weight, s2t.decode.ctc_weight) == (3, 0.2, 0.5)
    # a decode block of one's own: its weights; the pack's LM still fused (as a pack of
    # this project's is), at that block's lm_weight
    s2t = Speech2Text.from_pretrained(FIXTURE / "pack", decode=DecodeConfig(beam_size=2))
    assert replace(s2t.decode, lm=None) == DecodeConfig(beam_size=2) and s2t.uses_lm
    assert not Speech2Text.from_pretrained(FIXTURE / "pack", lm=False).uses_lm
    s2t = Speech2Text.from_pretrained(FIXTURE / "pack", method="ctc_greedy")
    assert s2t.lm is None


def _copy_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(FIXTURE / "pack", pack)
    return pack


def _edit_config(pack: Path, **changes: Any) -> None:
    path = pack / ASR_CONFIG
    config = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config))


def _greedy(folder: Path) -> list[str]:
    s2t = Speech2Text.from_pretrained(folder, method="ctc_greedy")
    return s2t.transcribe_batch([FIXTURE / "audio" / "utt1.wav", FIXTURE / "audio" / "utt2.wav"])


def _expected_greedy() -> list[str]:
    expected = json.loads((FIXTURE / "expected.json").read_text())["utterances"]
    return [expected[u]["greedy"]["text"] for u in ("utt1", "utt2")]


def test_token_list_file_absolute_paths_and_no_stats_file(tmp_path: Path) -> None:
    """``token_list`` as a token file; paths that espnet_model_zoo's unpacking made
    absolute for another folder; no ``feats_stats.npz`` (the statistics are in the
    checkpoint)."""
    pack = _copy_pack(tmp_path)
    config = yaml.safe_load((pack / ASR_CONFIG).read_text())
    tokens = pack / "data/en_token_list/bpe_unigram30/tokens.txt"
    tokens.write_text("".join(f"{t}\n" for t in config["token_list"]))
    elsewhere = "/home/someone/.cache/espnet/abc123"
    _edit_config(pack, token_list=f"{elsewhere}/data/en_token_list/bpe_unigram30/tokens.txt",
                 bpemodel=f"{elsewhere}/{BPE}")
    shutil.rmtree(pack / "exp" / "asr_stats_raw_en_bpe30")
    loaded = load_model_folder(pack)
    assert loaded.config["tokenizer"]["token_list"] == "data/en_token_list/bpe_unigram30/tokens.txt"
    assert tokens in loaded.files and pack / BPE in loaded.files
    assert _greedy(pack) == _expected_greedy()


def test_experiment_folder_and_folder_without_meta(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    exp = pack / "exp" / "asr_train_asr_conformer_raw_en_bpe30"
    found = find_espnet2(exp)
    assert found is not None and found.root == pack and found.lm_config is None
    assert found.asr_model.name == "valid.acc.ave_10best.pth"  # the only *.pth
    assert _greedy(exp) == _expected_greedy()
    (pack / "meta.yaml").unlink()  # exp/ holds one ASR config (and an LM's)
    found = find_espnet2(pack)
    assert found is not None and found.asr_config == exp / "config.yaml"
    assert _greedy(pack) == _expected_greedy()


def test_files_must_stay_inside_the_pack(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    (tmp_path / "outside.model").write_bytes((pack / BPE).read_bytes())
    assert locate("../outside.model", pack) is None
    assert locate(str(tmp_path / "outside.model"), pack) is None
    assert locate(BPE, pack) == pack / BPE
    _edit_config(pack, bpemodel="../outside.model")
    with pytest.raises(FileNotFoundError, match=r"bpemodel = '\.\./outside\.model' is not a file inside"):
        load_model_folder(pack)


@pytest.mark.parametrize(
    ("break_it", "error", "match"),
    [
        (lambda p: (p / BPE).unlink(), FileNotFoundError,
         r"config\.yaml: bpemodel = 'data/en_token_list/bpe_unigram30/bpe\.model' is not a file"),
        (lambda p: _edit_config(p, token_list="data/tokens.txt"), FileNotFoundError,
         r"config\.yaml: token_list = 'data/tokens\.txt' is not a file inside"),
        (lambda p: _edit_config(p, bpemodel=None), ValueError, r"token_type = 'bpe' but bpemodel = None"),
        (lambda p: _edit_config(p, token_type="phn"), ValueError, r"token_type = 'phn' is not supported"),
        (lambda p: _edit_config(p, encoder="whisper"), ValueError, r"encoder='whisper' is not supported"),
        (lambda p: _edit_config(p, token_list=["a", "b", "c"]), ValueError, r"token_list: a token list must start with <blank>"),
        (lambda p: next(p.glob("exp/asr_*/*.pth")).unlink(), FileNotFoundError,
         r"meta\.yaml: files\.asr_model_file = 'exp/asr_.*\.pth' is not a file inside"),
        (lambda p: (p / "meta.yaml").write_text(yaml.safe_dump(
            {"files": {"model_file": "exp/tts/model.pth"}, "yaml_files": {"train_config": "x"}})),
         ValueError, r"without an ASR model \(yaml_files: \['train_config'\]"),
    ],
    ids=["no_bpe_model", "no_token_file", "bpemodel_null", "phn", "unknown_encoder",
         "bad_token_list", "no_checkpoint", "tts_pack"],
)
def test_a_broken_pack_names_the_key_and_file(
    tmp_path: Path, break_it: Any, error: type[Exception], match: str
) -> None:
    pack = _copy_pack(tmp_path)
    break_it(pack)
    with pytest.raises(error, match=match):
        Speech2Text.from_pretrained(pack)


def test_an_espnet2_lm_is_not_an_asr_model(tmp_path: Path) -> None:
    lm_exp = FIXTURE / "pack" / "exp" / "lm_train_lm_transformer_en_bpe30"
    with pytest.raises(ValueError, match="is an ESPnet2 language model"):
        load_model_folder(lm_exp)


def test_espnet_infer_model_dir_takes_a_pack(tmp_path: Path) -> None:
    """espnet-infer decodes shards with an ESPnet2 pack as model_dir; its settings record
    the pack's files, so a changed checkpoint decodes again."""
    data = tmp_path / "kaldi"
    data.mkdir()
    (data / "wav.scp").write_text(
        "".join(f"{u} {FIXTURE / 'audio' / f'{u}.wav'}\n" for u in ("utt1", "utt2")))
    (data / "text").write_text("utt1 a\nutt2 b\n")
    write_split(KaldiDirCorpus(dirs={"test": str(data)}), "test", tmp_path / "shards")
    config = InferenceConfig(
        model_dir=str(FIXTURE / "pack"), test_sets={"test": str(tmp_path / "shards")},
        output_dir=str(tmp_path / "out"), decode=DecodeConfig(method="ctc_greedy"),
    )
    run_inference(config)
    hyps = dict(line.split(" ", 1) for line in
                (tmp_path / "out" / "test" / "hyp.txt").read_text().splitlines())
    assert [hyps[u].strip() for u in ("utt1", "utt2")] == [t.strip() for t in _expected_greedy()]
    files = _settings(config, load_model_folder(config.model_dir))["model_files"]
    assert {ASR_CONFIG, BPE} <= set(files) and any(f.endswith(".pth") for f in files)
    assert asdict(config.decode)["method"] == "ctc_greedy"


@peer
@pytest.mark.parametrize("search", list(SEARCHES))
def test_a_fresh_espnet2_pack_decodes_as_espnet2(search: str, peer_pack: Path) -> None:
    check_hypotheses(peer_pack, search)


@pytest.fixture(scope="module")
def peer_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("espnet2_pack")
    result = subprocess.run([str(PEER), str(SCRIPT), str(out)], capture_output=True, text=True,
                            check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
