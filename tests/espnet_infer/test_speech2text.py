"""Speech2Text: waveforms in, transcripts out, with either decoding method."""

from __future__ import annotations

import pytest
import torch
from espnet_data.batching import pad_sequences
from espnet_infer import DecodeConfig, Speech2Text, load_model_folder

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
