"""Speech2Text: waveforms in, transcripts out, with either decoding method."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from espnet_data.batching import pad_sequences
from espnet_infer import DecodeConfig, Speech2Text, Transcript, load_model_folder

from tests._fixtures import Pipeline, read_samples


@pytest.fixture(scope="module")
def samples(pipeline: Pipeline) -> list[dict]:
    return read_samples(pipeline.data / "test")[:3]


@pytest.mark.parametrize("method", ["ctc_greedy", "beam_search"])
def test_both_methods_transcribe(pipeline: Pipeline, samples: list[dict], method: str) -> None:
    s2t = Speech2Text(pipeline.model_dir, decode=DecodeConfig(method=method, beam_size=2))
    assert (s2t.search is None) == (method == "ctc_greedy")
    texts = s2t.transcribe([s["audio"] for s in samples])
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    # a batch gives what one-by-one gives (padding does not leak into the result)
    assert [s2t.transcribe([s["audio"]])[0] for s in samples] == texts


@pytest.mark.parametrize("method", ["ctc_greedy", "beam_search"])
def test_frozen_encoder_gives_the_module_transcripts(
    pipeline: Pipeline, samples: list[dict], method: str
) -> None:
    loaded = load_model_folder(pipeline.model_dir)
    fused = Speech2Text(loaded, decode=DecodeConfig(method=method, beam_size=2))
    plain = Speech2Text(loaded, decode=DecodeConfig(method=method, beam_size=2, fuse_encoder=False))
    assert fused.frozen_encoder is not None and plain.frozen_encoder is None
    audios = [s["audio"] for s in samples]
    assert fused.transcribe(audios) == plain.transcribe(audios)
    assert [fused.transcribe(a) for a in audios] == [plain.transcribe(a) for a in audios]


def test_token_ids_decode_to_the_transcript(pipeline: Pipeline, samples: list[dict]) -> None:
    s2t = Speech2Text(pipeline.model_dir, decode=DecodeConfig(method="ctc_greedy"))
    audios = [s["audio"] for s in samples]
    speech = pad_sequences(audios, 0.0)
    lengths = torch.tensor([len(a) for a in audios])
    ids = s2t.token_ids(speech, lengths)
    assert [s2t.tokenizer.decode(i) for i in ids] == s2t.transcribe(audios)
    assert all(0 not in i for i in ids)  # no blanks in the output


def test_accepts_a_loaded_model_and_empty_input(pipeline: Pipeline) -> None:
    loaded = load_model_folder(pipeline.model_dir)
    s2t = Speech2Text(loaded, decode=DecodeConfig(method="ctc_greedy"))
    assert s2t.model is loaded.model
    assert s2t.sample_rate == 16000
    assert s2t.transcribe([]) == []


def test_from_pretrained_transcribes_paths_and_waveforms(
    pipeline: Pipeline, samples: list[dict], tmp_path: Path
) -> None:
    s2t = Speech2Text.from_pretrained(pipeline.model_dir, method="ctc_greedy")
    assert s2t.decode.method == "ctc_greedy"
    audio = samples[0]["audio"]
    path = tmp_path / "utt.wav"
    sf.write(path, audio, 16000)
    text = s2t.transcribe(audio)
    assert isinstance(text, str)
    assert s2t.transcribe(path) == s2t.transcribe(str(path)) == text  # 16-bit wav: same tokens
    assert s2t.transcribe(torch.from_numpy(audio)) == text
    batch = s2t.transcribe_batch([s["audio"] for s in samples])
    assert batch == [s2t.transcribe(s["audio"]) for s in samples]
    assert s2t.transcribe([s["audio"] for s in samples]) == batch  # the list form of old
    slow = tmp_path / "utt8k.wav"
    sf.write(slow, audio[::2], 8000)  # resampled to the model's rate on load
    assert isinstance(s2t.transcribe(slow), str)


def test_nbest_is_sorted_and_starts_with_the_best(pipeline: Pipeline, samples: list[dict]) -> None:
    s2t = Speech2Text.from_pretrained(
        pipeline.model_dir, decode=DecodeConfig(method="beam_search", beam_size=3, nbest=3)
    )
    hyps = s2t.transcribe_nbest(samples[0]["audio"])
    assert 1 <= len(hyps) <= 3 and all(isinstance(h, Transcript) for h in hyps)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert hyps[0].text == s2t.transcribe(samples[0]["audio"])
    assert {"att", "ctc"} <= set(hyps[0].scores)
    assert hyps[0].to_dict()["tokens"] == hyps[0].tokens
    text, tokens, ids, hyp = s2t(samples[0]["audio"])[0]  # ESPnet2's tuple form
    assert (text, ids, hyp) == (hyps[0].text, hyps[0].tokens, hyps[0])
    assert len(tokens) == len(ids) and all(isinstance(t, str) for t in tokens)


@pytest.mark.parametrize("ctc_weight", [0.0, 1.0])
def test_attention_only_and_ctc_only(pipeline: Pipeline, samples: list[dict], ctc_weight: float) -> None:
    s2t = Speech2Text.from_pretrained(pipeline.model_dir, beam_size=2, ctc_weight=ctc_weight)
    (best,) = s2t.transcribe_nbest(samples[0]["audio"])
    assert set(best.scores) == ({"att"} if ctc_weight == 0.0 else {"ctc"})


def test_bad_inputs_name_the_fix(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="method: beam_search"):
        Speech2Text(pipeline.model_dir, decode=DecodeConfig(method="ctc_greedy", nbest=2))
    with pytest.raises(TypeError, match="unknown decoding option"):
        Speech2Text.from_pretrained(pipeline.model_dir, beam=3)
    s2t = Speech2Text.from_pretrained(pipeline.model_dir, method="ctc_greedy")
    with pytest.raises(ValueError, match="1-D"):
        s2t.transcribe(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        s2t.transcribe(np.zeros(0, dtype=np.float32))
    with pytest.raises(FileNotFoundError, match="neither a model folder"):
        Speech2Text.from_pretrained(tmp_path / "no" / "such" / "model")


def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_from_pretrained_hub_repo_id_from_the_cache(
    pipeline: Pipeline, samples: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repo id resolves through huggingface_hub's cache (offline: no network here)."""
    _offline_hub(monkeypatch)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-asr"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(pipeline.model_dir, repo / "snapshots" / commit)
    s2t = Speech2Text.from_pretrained("someone/tiny-asr", cache_dir=tmp_path / "hub",
                                      method="ctc_greedy")
    assert s2t.loaded.path == repo / "snapshots" / commit
    local = Speech2Text.from_pretrained(pipeline.model_dir, method="ctc_greedy")
    assert s2t.transcribe(samples[0]["audio"]) == local.transcribe(samples[0]["audio"])
    with pytest.raises(FileNotFoundError, match="someone/other"):
        Speech2Text.from_pretrained("someone/other", cache_dir=tmp_path / "hub")
