"""Tests for espnet_data.audio: decoding, FLAC encoding, resampling (whole and streamed),
validation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from espnet_data.audio import (
    AudioError,
    StreamingResampler,
    check_audio,
    encode_flac,
    read_audio,
    resample,
    write_audio,
)
from espnet_data.testing import tone


def test_read_audio_path_and_bytes_give_float32_mono(tmp_path) -> None:
    audio = tone(0.5)
    path = tmp_path / "a.flac"
    path.write_bytes(encode_flac(audio, 16000))
    from_path, rate = read_audio(path)
    from_bytes, rate2 = read_audio(path.read_bytes())
    assert rate == rate2 == 16000
    assert from_path.dtype == np.float32 and from_path.ndim == 1
    np.testing.assert_array_equal(from_path, from_bytes)
    np.testing.assert_allclose(from_path, audio, atol=1 / 32768)


def test_read_audio_channel_choice_and_average(tmp_path) -> None:
    left, right = tone(0.2, freq=300.0), tone(0.2, freq=500.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(path, channel=0)[0], left)
    np.testing.assert_array_equal(read_audio(path, channel=1)[0], right)
    np.testing.assert_allclose(read_audio(path, channel=None)[0], (left + right) / 2, atol=1e-7)
    np.testing.assert_array_equal(read_audio(path)[0], read_audio(path, channel=None)[0])


def test_encode_flac_is_lossless_for_16_bit_and_clips() -> None:
    pcm = (np.arange(-32768, 32768, 7) / 32768).astype(np.float32)
    decoded, rate = read_audio(encode_flac(pcm, 8000))
    assert rate == 8000
    np.testing.assert_array_equal(decoded, pcm)
    loud, _ = read_audio(encode_flac(np.array([2.0, -3.0, 0.5], dtype=np.float32), 16000))
    assert loud.max() <= 1.0 and loud.min() == -1.0 and loud[2] == 0.5


@pytest.mark.parametrize("kind", ["random", "truncated", "header-only", "empty"])
def test_undecodable_audio_raises_audio_error_naming_the_file(tmp_path, kind) -> None:
    flac = encode_flac(tone(1.0), 16000)
    data = {
        "random": np.random.default_rng(0).bytes(4000),
        "truncated": flac[: len(flac) // 2],
        "header-only": flac[:40],
        "empty": b"",
    }[kind]
    path = tmp_path / f"{kind}.flac"
    path.write_bytes(data)
    with pytest.raises(AudioError, match=f"cannot decode audio .*{kind}.flac"):
        read_audio(path)
    with pytest.raises(AudioError, match="<bytes>"):
        read_audio(data)


def test_missing_file_raises_audio_error(tmp_path) -> None:
    with pytest.raises(AudioError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")


@pytest.mark.parametrize("orig", [8000, 22050, 44100])
def test_resample_keeps_duration_and_pitch(orig) -> None:
    audio = tone(1.0, sample_rate=orig, freq=440.0)
    out = resample(audio, orig, 16000)
    assert out.dtype == np.float32
    assert abs(len(out) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 440.0) < 2.0


def test_resample_same_rate_is_a_no_op() -> None:
    audio = tone(0.1)
    assert resample(audio, 16000, 16000) is audio


@pytest.mark.parametrize("orig", [8000, 11025, 22050, 32000, 44100, 48000])
def test_streaming_resampler_equals_resampling_the_whole(orig: int) -> None:
    """Any chunking (empty chunks, single samples, chunks longer than a filter block)
    gives resample() of the whole: the filter sees no chunk edge."""
    rng = np.random.default_rng(orig)
    audio = (0.3 * rng.standard_normal(orig + 123)).astype(np.float32)
    want = resample(audio, orig, 16000)
    for sizes in ([0, 1, 1, 2, 5], [160, 441, 0, 3000], [len(audio)]):
        resampler = StreamingResampler(orig, 16000)
        pieces, position, i = [], 0, 0
        while position < len(audio):
            size = sizes[i % len(sizes)] if i < 40 else int(rng.integers(0, 4000))
            pieces.append(resampler.push(audio[position : position + size]))
            position, i = position + size, i + 1
        pieces.append(resampler.push(np.zeros(0, np.float32), final=True))
        got = np.concatenate(pieces)
        assert got.dtype == np.float32 and got.shape == want.shape, sizes
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_streaming_resampler_emits_as_it_goes_and_refuses_misuse() -> None:
    resampler = StreamingResampler(48000, 16000)
    assert resampler.push(np.zeros(4800, np.float32)).size > 1500  # 0.1 s in: most of it out
    with pytest.raises(AudioError, match="to_mono"):
        resampler.push(np.zeros((10, 2), np.float32))
    resampler.push([], final=True)
    with pytest.raises(ValueError, match="after final"):
        resampler.push(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="orig_rate=0"):
        StreamingResampler(0, 16000)
    same = StreamingResampler(16000, 16000)
    np.testing.assert_array_equal(same.push(np.ones(7, np.float32)), np.ones(7, np.float32))


@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (np.zeros(0, dtype=np.float32), "empty audio"),
        (np.zeros(1600, dtype=np.float32), "digital silence"),
        (np.full(1600, np.nan, dtype=np.float32), "NaN or Inf"),
        (np.array([0.1, np.inf, 0.2], dtype=np.float32), "NaN or Inf"),
    ],
)
def test_check_audio_rejects_unusable_audio(audio, reason) -> None:
    with pytest.raises(AudioError, match=f"utt-7: .*{reason}"):
        check_audio(audio, "utt-7")


def test_check_audio_accepts_speech_like_audio() -> None:
    check_audio(tone(0.1), "ok")
    quiet = np.zeros(1600, dtype=np.float32)
    quiet[800] = 1e-4  # one non-zero sample is not digital silence
    check_audio(quiet, "quiet")


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_audio_round_trips_and_leaves_no_temporary(tmp_path, suffix) -> None:
    path = tmp_path / f"out{suffix}"
    write_audio(path, tone(0.3), 16000)
    audio, rate = read_audio(path)
    assert rate == 16000 and len(audio) == 4800
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# --- issue 21: multi-channel audio is mixed down; non-finite samples are an error ------


def test_read_audio_mixes_a_right_only_stereo_file_down_by_default(tmp_path) -> None:
    right = tone(0.2, freq=500.0)
    path = tmp_path / "right.wav"
    sf.write(path, np.stack([np.zeros_like(right), right], axis=1), 16000, subtype="FLOAT")
    mono, rate = read_audio(path)
    assert rate == 16000 and mono.ndim == 1 and np.any(mono)
    np.testing.assert_allclose(mono, right / 2, atol=1e-7)
    check_audio(mono, "right-only")  # not digital silence
    np.testing.assert_array_equal(read_audio(path, channel=1)[0], right)
    with pytest.raises(AudioError, match="right.wav has 2 channels.*channel 2"):
        read_audio(path, channel=2)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_read_audio_rejects_non_finite_samples_with_their_count(tmp_path, as_bytes) -> None:
    from espnet_data.audio import NonFiniteAudioError

    audio = tone(0.1)
    audio[[5, 50, 500]] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "bad.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    source = path.read_bytes() if as_bytes else path
    with pytest.raises(NonFiniteAudioError, match=r"3 of 1600 samples are NaN or Inf") as info:
        read_audio(source, name="utt-9 in shard-000001.tar" if as_bytes else None)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AudioError)
    assert ("utt-9 in shard-000001.tar" if as_bytes else "bad.wav") in str(info.value)
