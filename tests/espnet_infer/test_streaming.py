"""Speech2TextStreaming: chunking invariance, whole-utterance equality, stream isolation,
and the bad inputs of issue 16."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from espnet_infer.decode.greedy import ctc_greedy_search
from espnet_infer.streaming import Speech2TextStreaming
from espnet_model import build_asr_model

VOCAB = 12


def tiny_model(normalize: str | None = None, encoder: str = "contextual_block_conformer"):
    """A random streaming model: fbank (20 mels), blocks of 8 frames every 3 (look-ahead
    2), one decoder layer; CTC and decoder logits sharpened so that decisions are clear."""
    torch.manual_seed(0)
    encoder_conf: dict[str, object] = {
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
        "cnn_module_kernel": 5,
    }  # fmt: skip
    if encoder == "contextual_block_conformer":
        encoder_conf.update(block_size=8, hop_size=3, look_ahead=2, macaron_style=True)
    config: dict[str, object] = {
        "frontend": "default",
        "frontend_conf": {"n_mels": 20},
        "encoder": encoder,
        "encoder_conf": encoder_conf,
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "model_conf": {"ctc_weight": 0.3},
    }
    if normalize:
        config["normalize"] = normalize
        if normalize == "global_mvn":
            config["normalize_conf"] = {}
    model = build_asr_model(config, vocab_size=VOCAB)
    with torch.no_grad():
        model.ctc.ctc_lo.weight.mul_(8.0)
        model.decoder.output_layer.weight.mul_(4.0)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _speech(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    tone = np.sin(2 * np.pi * (200 + 300 * rng.random()) * t) * (0.3 + 0.3 * np.sin(3 * t))
    return (tone + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("mode", ["joint", "ctc_prefix", "ctc_greedy"])
def test_result_does_not_depend_on_chunk_size(model, mode: str) -> None:
    s2t = Speech2TextStreaming(model, mode=mode, beam_size=4)
    wave = _speech(2.3, 0)
    whole = s2t.transcribe(wave, chunk_ms=1e6)
    assert whole.final and whole.samples == wave.size
    for chunk_ms in (100, 250, 640):
        result = s2t.transcribe(wave, chunk_ms=chunk_ms)
        assert result.tokens == whole.tokens, (mode, chunk_ms)
        assert result.frames == whole.frames
    if mode != "joint":
        assert whole.tokens, "the sharpened random model should emit something"


def test_streamed_encoder_and_greedy_equal_the_offline_model(model) -> None:
    """Chunked features + blocks equal the whole-utterance encoder: the same greedy CTC."""
    s2t = Speech2TextStreaming(model, mode="ctc_greedy")
    waves = [_speech(1.7, 1), _speech(2.9, 2)]
    streamed = s2t.transcribe_batch(waves, chunk_ms=160)
    with torch.no_grad():
        for wave, result in zip(waves, streamed, strict=True):
            x = torch.from_numpy(wave)[None]
            enc, lengths = model.encode(x, torch.tensor([wave.size]))
            offline = ctc_greedy_search(model.ctc.log_softmax(enc), lengths, blank_id=0)[0]
            assert result.tokens == offline
            assert result.frames == int(lengths[0])


def test_frozen_encoder_layers_give_the_modules_results(model) -> None:
    """On the CPU the encoder's subsampling and layers run frozen (fuse_encoder, the default); the
    partial and final results are those of the modules."""
    fused = Speech2TextStreaming(model, mode="joint", beam_size=4)
    plain = Speech2TextStreaming(model, mode="joint", beam_size=4, fuse_encoder=False)
    assert fused.frozen is not None and plain.frozen is None
    wave = _speech(2.6, 4)
    a, b = fused.start(), plain.start()
    for start in range(0, wave.size, 2400):
        chunk, final = wave[start : start + 2400], start + 2400 >= wave.size
        ra, rb = fused.feed(a, chunk, final=final), plain.feed(b, chunk, final=final)
        assert (ra.tokens, ra.frames) == (rb.tokens, rb.frames)
        assert ra.score == pytest.approx(rb.score, rel=1e-4, abs=1e-3)
    assert ra.final


def test_partial_results_grow_and_lag_by_blocks(model) -> None:
    s2t = Speech2TextStreaming(model, mode="ctc_greedy")
    stream = s2t.start()
    wave = _speech(2.0, 3)
    frames = []
    for start in range(0, wave.size, 1600):
        result = s2t.feed(stream, wave[start : start + 1600])
        assert not result.final
        frames.append(result.frames)
    assert frames == sorted(frames) and frames[-1] > 0
    final = s2t.feed(stream, np.zeros(0, np.float32), final=True)
    assert final.final and final.frames > frames[-1]
    assert final.tokens[: len(result.tokens)] == result.tokens  # greedy never revises


@pytest.mark.parametrize("mode", ["joint", "ctc_prefix"])
def test_streams_batched_together_are_isolated(model, mode: str) -> None:
    """Three streams fed together, with different chunk sizes and ends, each get what
    they get alone."""
    s2t = Speech2TextStreaming(model, mode=mode, beam_size=3)
    waves = [_speech(1.5, 4), _speech(2.6, 5), _speech(0.7, 6)]
    alone = [s2t.transcribe(w, chunk_ms=1e6).tokens for w in waves]
    streams = [s2t.start() for _ in waves]
    sizes = [1000, 2560, 4000]
    pos = [0, 0, 0]
    final_tokens: dict[int, list[int]] = {}
    while len(final_tokens) < 3:
        live = [i for i in range(3) if i not in final_tokens]
        chunks = [waves[i][pos[i] : pos[i] + sizes[i]] for i in live]
        finals = [pos[i] + sizes[i] >= waves[i].size for i in live]
        for i, res in zip(
            live, s2t.feed([streams[i] for i in live], chunks, final=finals), strict=True
        ):
            pos[i] += sizes[i]
            if res.final:
                final_tokens[i] = res.tokens
    assert [final_tokens[i] for i in range(3)] == alone


def test_bad_input_is_refused_and_loses_no_audio(model) -> None:
    s2t = Speech2TextStreaming(model, mode="ctc_greedy")
    wave = _speech(1.2, 7)
    ref = s2t.transcribe(wave, chunk_ms=1e6)
    stream = s2t.start()
    s2t.feed(stream, wave[:5000])
    samples = stream.features.samples
    bad = wave[5000:6000].copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        s2t.feed(stream, bad)
    with pytest.raises(ValueError, match="8000 Hz but the model takes 16000"):
        s2t.feed(stream, wave[5000:6000], sample_rate=8000)
    with pytest.raises(ValueError, match="integer samples"):
        s2t.feed(stream, (wave[5000:6000] * 32767).astype(np.int16))
    with pytest.raises(ValueError, match="1-D mono"):
        s2t.feed(stream, np.stack([wave[5000:6000]] * 2))
    with pytest.raises(ValueError, match="appears twice"):
        s2t.feed([stream, stream], [wave[5000:6000], wave[6000:7000]])
    assert stream.features.samples == samples  # nothing consumed by the refused calls
    empty = s2t.feed(stream, np.zeros(0, np.float32))  # a zero-length chunk: no change
    assert not empty.final and stream.features.samples == samples
    result = s2t.feed(stream, wave[5000:], final=True, sample_rate=16000)
    assert result.tokens == ref.tokens and result.samples == wave.size
    with pytest.raises(ValueError, match="was finished"):
        s2t.feed(stream, wave[:100])


def test_a_batch_with_one_bad_chunk_changes_no_stream(model) -> None:
    s2t = Speech2TextStreaming(model, mode="ctc_greedy")
    a, b = s2t.start(), s2t.start()
    bad = np.full(800, np.inf, np.float32)
    with pytest.raises(ValueError, match="chunk 1"):
        s2t.feed([a, b], [_speech(0.1, 8), bad])
    assert a.features.samples == b.features.samples == 0


def test_empty_and_tiny_streams_end_cleanly(model) -> None:
    s2t = Speech2TextStreaming(model, mode="joint")
    empty = s2t.feed(s2t.start(), [], final=True)
    assert empty.final and empty.tokens == [] and empty.frames == 0
    tiny = s2t.feed(s2t.start(), _speech(0.02, 9), final=True)
    assert tiny.final and tiny.frames == 0


def test_models_that_cannot_stream_are_refused() -> None:
    with pytest.raises(ValueError, match="contextual_block_conformer"):
        Speech2TextStreaming(tiny_model(encoder="conformer"))
    with pytest.raises(ValueError, match="utterance_mvn"):
        Speech2TextStreaming(tiny_model(normalize="utterance_mvn"))
    with pytest.raises(ValueError, match="mode='beam'"):
        Speech2TextStreaming(tiny_model(), mode="beam")  # type: ignore[arg-type]


# -- espnet-infer: decode.streaming ------------------------------------------------------


def _streaming_model_folder(pipeline, out):
    """The pipeline's model folder with its encoder swapped for a random streaming one."""
    import shutil

    import yaml

    folder = Path(shutil.copytree(pipeline.model_dir, out))
    for name in ("meta.yaml", "model.safetensors", "model.pt"):
        (folder / name).unlink(missing_ok=True)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    block = config["model"]
    block["encoder"] = "contextual_block_conformer"
    block["encoder_conf"] = {
        "output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 1,
        "cnn_module_kernel": 7, "block_size": 8, "hop_size": 3, "look_ahead": 2,
    }  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    build = dict(block)
    build["normalize_conf"] = {**block.get("normalize_conf", {}), "stats_file": None}
    model = build_asr_model(build, vocab_size=int(config["vocab_size"]))
    with torch.no_grad():
        model.ctc.ctc_lo.weight.mul_(8.0)
    torch.save(model.state_dict(), folder / "model.pt")
    return folder


def test_espnet_infer_streaming_mode(pipeline, tmp_path) -> None:
    """``decode.streaming`` decodes a test set chunk by chunk: greedy CTC gives the
    offline hypotheses, settings.json records it, and a config file parses into it."""
    from espnet_infer import DecodeConfig, InferenceConfig, run_inference
    from espnet_infer.cli import parse_inference_config
    from espnet_infer.config import StreamingConfig

    folder = _streaming_model_folder(pipeline, tmp_path / "model")

    def config(out: str, decode: DecodeConfig) -> InferenceConfig:
        return InferenceConfig(
            model_dir=str(folder), test_sets={"test": str(pipeline.data / "test")},
            output_dir=str(tmp_path / out), decode=decode, max_seconds=6.0,
        )  # fmt: skip

    run_inference(config("offline", DecodeConfig(method="ctc_greedy")))
    streaming = DecodeConfig(streaming=StreamingConfig(mode="ctc_greedy", chunk_ms=160))
    result = run_inference(config("streaming", streaming))
    assert result["decoded_shards"] >= 1
    offline = (tmp_path / "offline" / "test" / "hyp.txt").read_text()
    assert (tmp_path / "streaming" / "test" / "hyp.txt").read_text() == offline
    rows = (tmp_path / "streaming" / "test" / "hyp.jsonl").read_text().splitlines()
    assert any(json.loads(row)["hyp"] for row in rows), "the sharpened CTC emits tokens"
    settings = json.loads((tmp_path / "streaming" / "test" / "settings.json").read_text())
    assert settings["decode"]["streaming"]["chunk_ms"] == 160
    offline_settings = json.loads((tmp_path / "offline" / "test" / "settings.json").read_text())
    assert "streaming" not in offline_settings["decode"]
    joint = run_inference(config("joint", DecodeConfig(beam_size=2, streaming=StreamingConfig())))
    assert joint["decoded_shards"] >= 1
    assert len((tmp_path / "joint" / "test" / "hyp.txt").read_text().splitlines()) == 6

    yaml_file = tmp_path / "inference.yaml"
    yaml_file.write_text(
        f"model_dir: {folder}\ntest_sets: {{test: {pipeline.data / 'test'}}}\n"
        f"output_dir: {tmp_path / 'cli'}\n"
        "decode: {beam_size: 3, streaming: {mode: ctc_prefix, chunk_ms: 320}}\n"
    )
    parsed = parse_inference_config(["--config", str(yaml_file)])
    assert parsed.decode.streaming == StreamingConfig(mode="ctc_prefix", chunk_ms=320.0)


def test_endpoint_after_a_run_of_blank_frames() -> None:
    model = tiny_model()
    wave = _speech(2.0, 12)
    with torch.no_grad():
        model.ctc.ctc_lo.bias[0] += 1000.0  # every frame decodes to blank
    s2t = Speech2TextStreaming(model, mode="ctc_greedy", endpoint_ms=480)
    assert s2t.endpoint_frames == 12  # 40 ms frames (hop 10 ms, x4 subsampling)
    stream = s2t.start()
    seen = []
    for start in range(0, wave.size, 1600):
        result = s2t.feed(stream, wave[start : start + 1600])
        seen.append((result.frames, result.endpoint))
    assert all(end == (frames >= 12) for frames, end in seen) and seen[-1][1]
    with torch.no_grad():
        model.ctc.ctc_lo.bias[0] -= 2000.0  # never blank
    s2t = Speech2TextStreaming(model, mode="ctc_greedy", endpoint_ms=480)
    assert not s2t.transcribe(wave).endpoint
    assert not Speech2TextStreaming(model, mode="ctc_greedy").transcribe(wave).endpoint


def test_blocks_chosen_at_inference_stream_exactly() -> None:
    """Another block shape at inference: chunked greedy equals the whole-utterance
    encoder with those blocks."""
    model = tiny_model()
    s2t = Speech2TextStreaming(model, mode="ctc_greedy", block_size=12, hop_size=4, look_ahead=4)
    assert s2t.encoder.block_size == 12 and model.encoder.block_size == 8
    wave = _speech(2.2, 13)
    result = s2t.transcribe(wave, chunk_ms=100)
    with torch.no_grad():
        feats, lengths = model.features(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
        enc, enc_lengths = s2t.encoder(feats, lengths)
        offline = ctc_greedy_search(model.ctc.log_softmax(enc), enc_lengths, blank_id=0)[0]
    assert result.tokens == offline and result.frames == int(enc_lengths[0])
    joint = Speech2TextStreaming(
        model, mode="joint", beam_size=3, block_size=12, hop_size=4, look_ahead=4
    )
    assert joint.search is not None and (joint.search.first, joint.search.hop) == (8, 4)


def test_espnet_infer_streaming_fuses_an_lm(pipeline, tmp_path) -> None:
    """``decode.lm`` with ``decode.streaming.mode: joint`` or ``ctc_prefix``: the runner
    fuses the LM (its weight recorded, the second decoding without it in ``no_lm``);
    ``ctc_greedy`` refuses it before decoding."""
    from espnet_infer import DecodeConfig, InferenceConfig, run_inference
    from espnet_infer.config import StreamingConfig
    from espnet_infer.testing import tiny_lm_folder

    folder = _streaming_model_folder(pipeline, tmp_path / "model")
    lm = tiny_lm_folder(tmp_path / "lm", pipeline.model_dir, favour="E")

    def config(out: str, mode: str, weight: float) -> InferenceConfig:
        decode = DecodeConfig(beam_size=2, lm=str(lm), lm_weight=weight,
                              streaming=StreamingConfig(mode=mode, chunk_ms=320))  # type: ignore[arg-type]
        return InferenceConfig(
            model_dir=str(folder), test_sets={"test": str(pipeline.data / "test")},
            output_dir=str(tmp_path / out), decode=decode, max_seconds=6.0,
        )  # fmt: skip

    fused = config("fused", "joint", 3.0)
    assert fused.decode.uses_lm
    assert run_inference(fused)["decoded_shards"] >= 1
    assert run_inference(fused.without_lm())["decoded_shards"] >= 1
    settings = json.loads((tmp_path / "fused" / "test" / "settings.json").read_text())
    assert settings["decode"]["lm_weight"] == 3.0 and settings["decode"]["lm"]
    with_lm = (tmp_path / "fused" / "test" / "hyp.txt").read_text()
    without = (tmp_path / "fused" / "no_lm" / "test" / "hyp.txt").read_text()
    print("with the LM:", with_lm, "without:", without, sep="\n")
    assert with_lm.count("E") > without.count("E"), "the LM that favours E pulls towards it"
    with pytest.raises(ValueError, match="not by decode.streaming.mode: ctc_greedy"):
        run_inference(config("greedy", "ctc_greedy", 0.5))
    prefix_run = config("prefix", "ctc_prefix", 3.0)
    assert prefix_run.decode.uses_lm and run_inference(prefix_run)["decoded_shards"] >= 1

    from espnet_infer import Speech2Text

    s2t = Speech2Text(folder, lm=str(lm), lm_weight=0.5)
    joint = Speech2TextStreaming.from_speech2text(s2t)
    assert joint.search is not None and joint.search.lm is s2t.lm_model
    assert joint.search.lm_weight == 0.5
    prefix = Speech2TextStreaming.from_speech2text(s2t, mode="ctc_prefix")
    assert prefix.mode == "ctc_prefix" and prefix.lm is s2t.lm_model
    greedy = Speech2TextStreaming.from_speech2text(s2t, mode="ctc_greedy")  # LM left out
    assert greedy.mode == "ctc_greedy" and greedy.lm is None
    loaded = Speech2TextStreaming.from_pretrained(folder, lm=str(lm), lm_weight=0.7)
    assert loaded.search is not None and loaded.search.lm_weight == 0.7
    plain = Speech2TextStreaming.from_pretrained(folder)  # no LM in this folder
    assert plain.search is not None and plain.search.lm is None
