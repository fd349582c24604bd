"""On-the-fly augmentation stages: speed perturbation, reverberation, additive noise.

All are ``iterator -> iterator`` stages over decoded samples (``audio``,
``sample_rate``, ``duration``, ``key``), placed before the batcher so that batches are
cut on the perturbed durations::

    stages = [SpeedPerturb((0.9, 1.0, 1.1)), AddReverb(prob=0.5),
              AddNoise("noise.txt", snr_db=(10, 20)), batcher]
    dataset = ShardDataset(urls, shuffle_shards=True, stages=stages)

Randomness is drawn per sample from ``(seed, epoch, key)``: the same sample gets the
same perturbation in an epoch however the shards are split over ranks and DataLoader
workers, and another one the next epoch (``set_epoch``, called by ``ShardDataset``).
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import resample, to_mono
from .rir import reverberate, simulate_rir

log = logging.getLogger(__name__)

Sample = dict[str, Any]
Pathlike = str | os.PathLike[str]

_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".sph"}
_SPEED_STREAM = 1
_NOISE_STREAM = 2
_REVERB_STREAM = 3


def _rng(seed: int, epoch: int, stream: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, stream, zlib.crc32(key.encode("utf-8"))])


class SpeedPerturb:
    """Play each utterance ``factor`` times as fast, ``factor`` drawn from ``factors``.

    As Kaldi's and ESPnet's speed perturbation: the audio is resampled from
    ``rate * factor`` to ``rate`` (torchaudio's band-limited resampler), which changes
    tempo and pitch together; 1.1 gives an utterance 1/1.1 as long. The sample keeps
    its key and gets ``speed`` = the factor; ``duration`` follows the new length.

    Args:
        factors: speeds to choose from, uniformly (ESPnet: 0.9, 1.0, 1.1).
        seed: base seed of the per-sample choice.
    """

    def __init__(self, factors: Sequence[float] = (0.9, 1.0, 1.1), *, seed: int = 0) -> None:
        if not factors or any(not 0.5 <= f <= 2.0 for f in factors):
            raise ValueError(f"speed factors must be a non-empty list in [0.5, 2.0], got {list(factors)}")
        self.factors = [float(f) for f in factors]
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def perturb(self, sample: Sample) -> Sample:
        """One sample at a speed drawn for its key (a new dict; the input is untouched)."""
        rng = _rng(self.seed, self.epoch, _SPEED_STREAM, sample["key"])
        factor = self.factors[int(rng.integers(len(self.factors)))]
        if factor == 1.0:
            return {**sample, "speed": 1.0}
        rate = int(sample["sample_rate"])
        audio = resample(sample["audio"], round(rate * factor), rate)
        return {**sample, "audio": audio, "duration": len(audio) / rate, "speed": factor}

    def __call__(self, samples: Iterable[Sample]) -> Iterator[Sample]:
        for sample in samples:
            yield self.perturb(sample)


def read_noise_list(path: Pathlike, what: str = "noise") -> list[str]:
    """Audio files (noise, or ``what`` else) listed one per line in ``path`` (``#``
    comments and blank lines are skipped; relative paths are relative to the list's folder)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} list {path} not found: write one audio file path per line")
    files = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            file = Path(line)
            files.append(str(file if file.is_absolute() else path.parent / file))
    return files


def _audio_files(source: Sequence[Pathlike] | Pathlike, what: str) -> list[str]:
    """One audio file, a list file of them, or a sequence of paths -> checked paths."""
    if not isinstance(source, str | os.PathLike):
        files = [str(f) for f in source]
    elif Path(source).suffix.lower() in _AUDIO_SUFFIXES:
        files = [str(source)]
    else:
        files = read_noise_list(source, what)
    if not files:
        raise ValueError(f"no {what} files in {source!r}")
    missing = [f for f in files if not Path(f).is_file()][:3]
    if missing:
        raise FileNotFoundError(f"{what} files not found, e.g. {missing} (from {source!r})")
    return files


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    a, b = (float(v) for v in value)
    if not (low <= a <= b <= high):
        raise ValueError(f"{name} must be (low, high) with {low} <= low <= high <= {high}, got {value}")
    return a, b


class AddNoise:
    """Add a random stretch of a random noise file at a random SNR.

    The noise is read from disk for each sample (only the frames needed, so noise sets
    of any size work), resampled to the sample's rate if needed, repeated if shorter
    than the utterance, and scaled so that ``10 log10(P_speech / P_noise)`` is drawn
    uniformly from ``snr_db``. A noise file that cannot be read is logged and the
    sample passes clean.

    Args:
        noise: the noise files, one audio file, or the path of a list file (see
            :func:`read_noise_list`).
        snr_db: ``(low, high)`` signal-to-noise ratio in dB.
        prob: chance that a sample gets noise.
        seed: base seed of the per-sample draws.
    """

    def __init__(
        self,
        noise: Sequence[Pathlike] | Pathlike,
        *,
        snr_db: tuple[float, float] = (10.0, 20.0),
        prob: float = 1.0,
        seed: int = 0,
    ) -> None:
        files = _audio_files(noise, "noise")
        low, high = snr_db
        if low > high:
            raise ValueError(f"snr_db must be (low, high) with low <= high, got {snr_db}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.files = files
        self.snr_db = (float(low), float(high))
        self.prob = prob
        self.seed = seed
        self.epoch = 0
        self._info: dict[str, tuple[int, int]] = {}  # path -> (frames, rate), per process

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _noise(self, path: str, rng: np.random.Generator, num: int, rate: int) -> np.ndarray:
        """``num`` samples of noise at ``rate`` from a random offset of ``path``."""
        if path not in self._info:
            info = sf.info(path)
            self._info[path] = (info.frames, info.samplerate)
        frames, noise_rate = self._info[path]
        need = math.ceil(num * noise_rate / rate) + 1
        start = int(rng.integers(0, max(1, frames - need + 1)))
        noise, _ = sf.read(path, start=start, frames=min(need, frames), dtype="float32", always_2d=True)
        noise = resample(to_mono(noise, name=path), noise_rate, rate)
        if len(noise) == 0:
            raise ValueError(f"noise file {path} holds no audio")
        return np.resize(noise, num)  # repeats a noise shorter than the utterance

    def add(self, sample: Sample) -> Sample:
        """One sample with noise (a new dict), or the sample itself when none is drawn."""
        rng = _rng(self.seed, self.epoch, _NOISE_STREAM, sample["key"])
        if rng.random() >= self.prob:
            return sample
        path = self.files[int(rng.integers(len(self.files)))]
        snr = float(rng.uniform(*self.snr_db))
        audio = np.asarray(sample["audio"], dtype=np.float32)
        try:
            noise = self._noise(path, rng, len(audio), int(sample["sample_rate"]))
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            log.warning("noise file %s unusable (%s); %s stays clean", path, err, sample["key"])
            return sample
        speech_power = float(np.mean(audio.astype(np.float64) ** 2))
        noise_power = float(np.mean(noise.astype(np.float64) ** 2))
        if noise_power == 0.0 or speech_power == 0.0:
            return sample
        scale = math.sqrt(speech_power / (noise_power * 10.0 ** (snr / 10.0)))
        noisy = (audio + scale * noise).astype(np.float32)
        return {**sample, "audio": noisy, "snr_db": snr, "noise": path}

    def __call__(self, samples: Iterable[Sample]) -> Iterator[Sample]:
        for sample in samples:
            yield self.add(sample)


class AddReverb:
    """Convolve utterances with a room impulse response (ESPnet2's ``rir_scp``).

    With ``rirs`` the response is a random one of those files (read once per process,
    resampled to the utterance's rate); without, each utterance gets a room simulated
    for it (:func:`espnet_data.rir.simulate_rir`: reverberation time drawn from
    ``rt60``, direct-to-reverberant ratio from ``drr_db``). The output keeps the
    utterance's length, timing (aligned on the response's peak) and mean power
    (:func:`espnet_data.rir.reverberate`); the sample gets ``rt60`` (simulated) or
    ``rir`` (the file).

    Args:
        rirs: RIR audio files, one file, or a list file of them; None: simulated rooms.
        rt60: ``(low, high)`` seconds, simulated rooms only.
        drr_db: ``(low, high)`` dB, simulated rooms only.
        prob: chance that a sample is reverberated.
        seed: base seed of the per-sample draws.
    """

    def __init__(
        self,
        rirs: Sequence[Pathlike] | Pathlike | None = None,
        *,
        rt60: tuple[float, float] = (0.2, 1.0),
        drr_db: tuple[float, float] = (-5.0, 10.0),
        prob: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.files = None if rirs is None else _audio_files(rirs, "rir")
        self.rt60 = _check_range("rt60", rt60, 0.05, 3.0)
        self.drr_db = _check_range("drr_db", drr_db, -40.0, 40.0)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.seed = seed
        self.epoch = 0
        self._cache: dict[tuple[str, int], np.ndarray] = {}  # (path, rate) -> rir, per process

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _file(self, path: str, rate: int) -> np.ndarray:
        if (path, rate) not in self._cache:
            rir, rir_rate = sf.read(path, dtype="float32", always_2d=True)
            self._cache[(path, rate)] = resample(to_mono(rir, name=path), rir_rate, rate)
        return self._cache[(path, rate)]

    def add(self, sample: Sample) -> Sample:
        """One reverberated sample (a new dict), or the sample itself when none is drawn."""
        rng = _rng(self.seed, self.epoch, _REVERB_STREAM, sample["key"])
        if rng.random() >= self.prob:
            return sample
        rate = int(sample["sample_rate"])
        if self.files is None:
            rt60 = float(rng.uniform(*self.rt60))
            rir = simulate_rir(rng, rate, rt60=rt60, drr_db=float(rng.uniform(*self.drr_db)))
            return {**sample, "audio": reverberate(sample["audio"], rir), "rt60": rt60}
        path = self.files[int(rng.integers(len(self.files)))]
        try:
            audio = reverberate(sample["audio"], self._file(path, rate))
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            log.warning("rir file %s unusable (%s); %s stays dry", path, err, sample["key"])
            return sample
        return {**sample, "audio": audio, "rir": path}

    def __call__(self, samples: Iterable[Sample]) -> Iterator[Sample]:
        for sample in samples:
            yield self.add(sample)


def augmentation_stages(
    *,
    speed_factors: Sequence[float] | None = None,
    reverb: bool = False,
    rirs: Sequence[Pathlike] | Pathlike | None = None,
    rt60: tuple[float, float] = (0.2, 1.0),
    drr_db: tuple[float, float] = (-5.0, 10.0),
    reverb_prob: float = 1.0,
    noise: Sequence[Pathlike] | Pathlike | None = None,
    snr_db: tuple[float, float] = (10.0, 20.0),
    noise_prob: float = 1.0,
    seed: int = 0,
) -> list[SpeedPerturb | AddReverb | AddNoise]:
    """The stages a config asks for, in the usual order (speed, reverberation, noise:
    the room reverberates the talker, not the noise); [] for none. ``reverb`` (or
    ``rirs``) turns reverberation on, simulated rooms unless ``rirs`` names files."""
    stages: list[SpeedPerturb | AddReverb | AddNoise] = []
    if speed_factors:
        stages.append(SpeedPerturb(speed_factors, seed=seed))
    if reverb or rirs:
        stages.append(AddReverb(rirs, rt60=rt60, drr_db=drr_db, prob=reverb_prob, seed=seed))
    if noise:
        stages.append(AddNoise(noise, snr_db=snr_db, prob=noise_prob, seed=seed))
    return stages
