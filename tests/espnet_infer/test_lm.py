"""Language model folders (espnet_infer.lm) and shallow fusion in Speech2Text."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from espnet_data import CharTokenizer, save_tokenizer
from espnet_data.tokenizer import TokenizerMismatchError
from espnet_infer import DecodeConfig, LoadedLM, Speech2Text, load_lm_folder, load_model_folder
from espnet_infer.testing import TINY_LM, tiny_lm_folder
from espnet_model.builder import UntrustedCodeError
from espnet_model.lm import LanguageModel, build_lm
from espnet_publish.testing import tiny_asr_model_folder

# An untrained model's hypotheses run long: cap them at half the encoder frames.
DECODE = DecodeConfig(method="beam_search", beam_size=3, ctc_weight=0.3, maxlenratio=0.5)


@pytest.fixture(scope="module")
def asr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_asr_model_folder(tmp_path_factory.mktemp("asr") / "model")


@pytest.fixture(scope="module")
def lm_dir(asr_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LM that strongly prefers the token "o"."""
    return tiny_lm_folder(tmp_path_factory.mktemp("lm") / "lm", asr_dir, favour="o")


@pytest.fixture(scope="module")
def waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 12000)]


def test_an_lm_folder_loads_with_its_tokens_and_files(lm_dir: Path, asr_dir: Path) -> None:
    lm = load_lm_folder(lm_dir)
    assert isinstance(lm.model, LanguageModel) and not lm.model.training
    assert lm.token_list == load_model_folder(asr_dir).tokenizer.token_list
    assert lm.tokenizer_file == lm_dir / "tokenizer" / "tokens.txt"
    assert {p.name for p in lm.files} == {"config.yaml", "model.pt", "tokens.txt"}
    want = torch.load(lm_dir / "model.pt", weights_only=True)
    assert all(torch.equal(v, want[k]) for k, v in lm.model.state_dict().items())


def _other_tokenizer_lm(root: Path, asr_dir: Path, texts: list[str]) -> Path:
    """An LM folder like tiny_lm_folder's, trained (so to speak) with another tokenizer."""
    lm = tiny_lm_folder(root, asr_dir)
    shutil.rmtree(lm / "tokenizer")
    tokenizer = CharTokenizer.from_texts(texts)
    save_tokenizer(tokenizer, lm / "tokenizer")
    config = yaml.safe_load((lm / "config.yaml").read_text())
    config["vocab_size"] = tokenizer.vocab_size
    (lm / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(build_lm(TINY_LM, vocab_size=tokenizer.vocab_size).state_dict(), lm / "model.pt")
    return lm


def test_an_lm_with_another_tokenizer_is_refused_naming_both_files_and_sizes(
    asr_dir: Path, tmp_path: Path
) -> None:
    lm = _other_tokenizer_lm(tmp_path / "lm", asr_dir, ["abc"])
    asr_size = load_model_folder(asr_dir).tokenizer.vocab_size
    with pytest.raises(TokenizerMismatchError) as err:
        Speech2Text(asr_dir, decode=DECODE, lm=lm)
    message = str(err.value)
    assert str(lm / "tokenizer" / "tokens.txt") in message
    assert str(asr_dir / "tokenizer" / "tokens.txt") in message
    assert "vocab_size 6" in message and f"vocab_size {asr_size}" in message
    assert isinstance(err.value, ValueError)


def test_same_size_other_tokens_names_the_first_differing_id(asr_dir: Path, tmp_path: Path) -> None:
    tokens = load_model_folder(asr_dir).tokenizer.token_list
    lm = tiny_lm_folder(tmp_path / "lm", asr_dir)
    (lm / "tokenizer" / "tokens.txt").write_text(
        "\n".join([*tokens[:2], tokens[3], tokens[2], *tokens[4:]]) + "\n")
    with pytest.raises(TokenizerMismatchError, match=r"id 2 is"):
        Speech2Text(asr_dir, decode=DECODE, lm=lm)


def test_fusion_changes_the_hypotheses_towards_the_lm(
    asr_dir: Path, lm_dir: Path, waves: list[np.ndarray]
) -> None:
    plain = Speech2Text(asr_dir, decode=DECODE).transcribe(waves)
    off = Speech2Text(asr_dir, decode=DECODE, lm=lm_dir, lm_weight=0.0)
    assert off.lm is None and not off.uses_lm  # weight 0: not even loaded
    assert off.transcribe(waves) == plain
    fused = Speech2Text(asr_dir, decode=DECODE, lm=lm_dir, lm_weight=1.0)
    assert fused.uses_lm and isinstance(fused.lm, LoadedLM) and fused.decode.lm == str(lm_dir)
    texts = fused.transcribe(waves)
    assert texts != plain
    assert sum(t.count("o") for t in texts) > sum(t.count("o") for t in plain)
    # decode.lm names the same LM; the keyword overrides the weight
    via_config = Speech2Text(asr_dir, decode=DecodeConfig(**{**DECODE.__dict__, "lm": str(lm_dir),
                                                             "lm_weight": 1.0}))
    assert via_config.transcribe(waves) == texts
    assert Speech2Text(asr_dir, decode=via_config.decode, lm=False).transcribe(waves) == plain


def test_nbest_keeps_each_scorers_part(asr_dir: Path, lm_dir: Path, waves: list[np.ndarray]) -> None:
    decode = DecodeConfig(**{**DECODE.__dict__, "nbest": 2})
    s2t = Speech2Text(asr_dir, decode=decode, lm=lm_dir, lm_weight=0.5)
    hyps = s2t.transcribe_nbest(waves[0])
    assert len(hyps) == 2
    for h in hyps:
        assert set(h.scores) == {"att", "ctc", "lm"}
        total = 0.7 * h.scores["att"] + 0.3 * h.scores["ctc"] + 0.5 * h.scores["lm"]
        assert h.score == pytest.approx(total, abs=1e-4)
        assert h.to_dict()["scores"]["lm"] == h.scores["lm"]


@pytest.mark.parametrize("ctc_weight", [1.0])
def test_ctc_prefix_search_fuses_too(
    asr_dir: Path, lm_dir: Path, waves: list[np.ndarray], ctc_weight: float
) -> None:
    decode = DecodeConfig(**{**DECODE.__dict__, "ctc_weight": ctc_weight})
    hyps = Speech2Text(asr_dir, decode=decode, lm=lm_dir, lm_weight=1.0).transcribe_nbest(waves[0])
    assert set(hyps[0].scores) == {"ctc", "lm"}


def test_an_lm_object_or_a_loaded_lm_is_accepted(
    asr_dir: Path, lm_dir: Path, waves: list[np.ndarray]
) -> None:
    loaded = load_lm_folder(lm_dir)
    want = Speech2Text(asr_dir, decode=DECODE, lm=lm_dir, lm_weight=1.0).transcribe(waves)
    by_loaded = Speech2Text(asr_dir, decode=DECODE, lm=loaded, lm_weight=1.0)
    assert by_loaded.lm is loaded and by_loaded.decode.lm == str(lm_dir)
    assert by_loaded.transcribe(waves) == want
    by_object = Speech2Text(asr_dir, decode=DECODE, lm=loaded.model, lm_weight=1.0)
    assert by_object.lm is None and by_object.uses_lm and by_object.decode.lm is None
    assert by_object.transcribe(waves) == want


def test_greedy_ctc_with_an_lm_is_a_config_error(asr_dir: Path, lm_dir: Path) -> None:
    with pytest.raises(ValueError, match=rf"\({lm_dir}\) needs decode.method: beam_search"):
        Speech2Text(asr_dir, decode=DecodeConfig(method="ctc_greedy"), lm=lm_dir)
    with pytest.raises(TypeError, match="lm=True is ambiguous"):
        Speech2Text(asr_dir, decode=DECODE, lm=True)


def test_folders_given_the_wrong_way_round_say_so(asr_dir: Path, lm_dir: Path) -> None:
    with pytest.raises(ValueError, match="describes an ASR model.*decode.lm"):
        load_lm_folder(asr_dir)
    with pytest.raises(ValueError, match="'lm' model.*decode.lm"):
        load_model_folder(lm_dir)


def test_a_missing_lm_folder_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist: pass the LM folder"):
        load_lm_folder(tmp_path / "nope")


def test_a_bad_lm_block_names_the_file(lm_dir: Path, tmp_path: Path) -> None:
    lm = Path(shutil.copytree(lm_dir, tmp_path / "lm"))
    config = yaml.safe_load((lm / "config.yaml").read_text())
    config["model"]["lm_conf"]["layers"] = 3
    (lm / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"config\.yaml: model: lm_conf\.layers"):
        load_lm_folder(lm)


def test_a_class_path_lm_is_refused_unless_trusted(lm_dir: Path, tmp_path: Path) -> None:
    lm = Path(shutil.copytree(lm_dir, tmp_path / "lm"))
    marker = tmp_path / "ran"
    config = yaml.safe_load((lm / "config.yaml").read_text())
    config["model"] = {"class_path": "os.system", "init_args": {"command": f"touch {marker}"}}
    (lm / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UntrustedCodeError, match=r"model\.class_path = 'os\.system'.*trust_remote_code"):
        load_lm_folder(lm)
    assert not marker.exists()
    config["model"] = {"class_path": f"{__name__}.rebuild_lm", "init_args": {"block": TINY_LM}}
    (lm / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = load_lm_folder(lm, trust_remote_code=True)
    assert isinstance(loaded.model, LanguageModel)


def rebuild_lm(vocab_size: int, block: dict) -> LanguageModel:
    """An LM factory outside espnet_model, for a ``class_path`` model block."""
    return build_lm(block, vocab_size=vocab_size)


def _espnet2_lm(root: Path, token_list: list[str]) -> Path:
    """An ESPnet2 LM experiment folder: config.yaml (token_list, lm, lm_conf) + checkpoint."""
    root.mkdir(parents=True)
    config = {"token_list": token_list, "lm": "seq_rnn", "lm_conf": {"unit": 16, "nlayers": 1},
              "model": "lm", "model_conf": {"ignore_id": 0}, "optim": "adam"}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(1)
    model = build_lm(TINY_LM, vocab_size=len(token_list))
    torch.save(model.state_dict(), root / "valid.loss.ave.pth")
    return root


def test_an_espnet2_lm_with_the_asr_tokens_is_usable(
    asr_dir: Path, tmp_path: Path, waves: list[np.ndarray]
) -> None:
    tokens = load_model_folder(asr_dir).tokenizer.token_list
    folder = _espnet2_lm(tmp_path / "lm_train", tokens)
    lm = load_lm_folder(folder)
    assert lm.token_list == tokens and lm.tokenizer is None
    assert {p.name for p in lm.files} == {"config.yaml", "valid.loss.ave.pth"}
    s2t = Speech2Text(asr_dir, decode=DECODE, lm=folder, lm_weight=0.5)
    assert s2t.uses_lm and len(s2t.transcribe(waves)) == 2
    other = _espnet2_lm(tmp_path / "other", [*tokens[:-1], "x", tokens[-1]])
    with pytest.raises(TokenizerMismatchError, match=rf"{other}/config\.yaml \(vocab_size {len(tokens) + 1}\)"):
        Speech2Text(asr_dir, decode=DECODE, lm=other)
