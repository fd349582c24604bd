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
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Speech2Text.from_pretrained(tmp_path / "no" / "such" / "model")


def test_non_finite_waveforms_are_refused(pipeline: Pipeline, samples: list[dict]) -> None:
    """NaN / inf samples would decode to confident text; say how many there are instead."""
    s2t = Speech2Text.from_pretrained(pipeline.model_dir, method="ctc_greedy")
    audio = samples[0]["audio"].astype(np.float32).copy()
    audio[[10, 20]] = np.nan
    audio[30] = np.inf
    with pytest.raises(ValueError, match=rf"3 non-finite sample\(s\) \(NaN or inf\) of {audio.size}"):
        s2t.transcribe(audio)
    with pytest.raises(ValueError, match="non-finite"):
        s2t.transcribe(torch.from_numpy(audio))
    with pytest.raises(ValueError, match=r"audios\[1\]: the waveform has 3 non-finite"):
        s2t.transcribe_batch([samples[0]["audio"], audio])
    loud = samples[0]["audio"].astype(np.float64) * 1e40  # overflows float32
    with pytest.raises(ValueError, match="non-finite"):
        s2t.transcribe(loud)


def test_a_missing_path_is_never_fetched_from_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``exp/model`` mistyped as ``exp/modle`` must not download a repo of that name."""
    import huggingface_hub

    fetched: list[object] = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda *a, **k: fetched.append((a, k)) or str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        Speech2Text.from_pretrained("exp/modle")
    assert "'exp/modle' does not exist" in str(err.value)
    assert "hf://exp/modle" in str(err.value)
    with pytest.raises(ValueError, match="revision='v1' applies to Hub repositories only"):
        Speech2Text.from_pretrained("exp/modle", revision="v1")
    with pytest.raises(ValueError, match="not a Hub reference"):
        Speech2Text.from_pretrained("hf://just-a-name")
    assert fetched == []


def test_trust_remote_code_reaches_the_loader(pipeline: Pipeline, samples: list[dict],
                                              tmp_path: Path) -> None:
    from espnet_model.builder import UntrustedCodeError

    from tests.espnet_infer.test_loading import custom_model_folder

    folder = custom_model_folder(pipeline, tmp_path / "custom")
    with pytest.raises(UntrustedCodeError, match="trust_remote_code"):
        Speech2Text.from_pretrained(folder, method="ctc_greedy")
    with pytest.raises(UntrustedCodeError):
        Speech2Text(folder)
    s2t = Speech2Text.from_pretrained(folder, method="ctc_greedy", trust_remote_code=True)
    local = Speech2Text.from_pretrained(pipeline.model_dir, method="ctc_greedy")
    assert s2t.transcribe(samples[0]["audio"]) == local.transcribe(samples[0]["audio"])


def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_from_pretrained_hub_repo_id_from_the_cache(
    pipeline: Pipeline, samples: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hf://owner/name`` resolves through huggingface_hub's cache (offline: no network)."""
    _offline_hub(monkeypatch)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-asr"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(pipeline.model_dir, repo / "snapshots" / commit)
    s2t = Speech2Text.from_pretrained("hf://someone/tiny-asr", cache_dir=tmp_path / "hub",
                                      method="ctc_greedy")
    assert s2t.loaded.path == repo / "snapshots" / commit
    local = Speech2Text.from_pretrained(pipeline.model_dir, method="ctc_greedy")
    assert s2t.transcribe(samples[0]["audio"]) == local.transcribe(samples[0]["audio"])
    pinned = Speech2Text.from_pretrained(f"hf://someone/tiny-asr@{commit}",
                                         cache_dir=tmp_path / "hub", method="ctc_greedy")
    assert pinned.loaded.path == repo / "snapshots" / commit
    with pytest.raises(FileNotFoundError, match="someone/other"):
        Speech2Text.from_pretrained("hf://someone/other", cache_dir=tmp_path / "hub")
    with pytest.raises(ValueError, match="names revision 'a' but revision='b'"):
        Speech2Text.from_pretrained("hf://someone/tiny-asr@a", revision="b")
