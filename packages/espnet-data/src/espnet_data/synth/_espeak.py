"""A ctypes binding to libespeak-ng that gives reproducible audio per call.

libespeak-ng keeps its synthesis state in C globals and function-local statics
(e.g. the pitch "flutter" phase in ``wavegen.c`` and the Klatt flutter clock),
which are *not* reset by ``espeak_Terminate`` / ``espeak_Initialize``.  Two calls
with the same text, voice and random seed therefore give different samples
depending on what was synthesised before.  To make ``synthesize`` a pure
function of its arguments (needed so that shards of a corpus can be rendered in
any order, in any process) every call loads a *fresh instance* of the library,
synthesises, terminates and unloads it again.  This costs about 0.3 ms per call.

The instance is loaded from a private copy of ``libespeak-ng.so`` (copied once
per process into a temporary folder), so other code in the same process that
uses the packaged library (phonemizers, other TTS front-ends) is never touched.
espeak-ng is not thread-safe: all calls go through one module-private lock.

Usage::

    from espnet_data.synth._espeak import synthesize
    pcm, rate = synthesize("m3", "my name is john", rate=175, pitch=50, seed=1)
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["EspeakError", "LANGUAGE", "data_path", "synthesize"]

#: espeak-ng language used for every voice variant (American English, like AN4).
LANGUAGE = "en-us"

# Values from espeak-ng/speak_lib.h (1.52).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM_RATE = 1
_PARAM_PITCH = 3

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

_LOCK = threading.Lock()
_private_copy: Path | None = None  # lazily created copy of the shared library


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded or refused a request."""


def _loader() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - dependency of espnet-data
        raise EspeakError(
            "espnet_data.synth needs the 'espeakng-loader' package (it ships "
            "libespeak-ng and its data); install it with `uv pip install espeakng-loader`."
        ) from exc
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def data_path() -> Path:
    """The espeak-ng-data folder shipped by ``espeakng_loader``."""
    return Path(_loader()[1])


def _library_copy() -> Path:
    """Copy libespeak-ng once per process to a private path (see module doc)."""
    global _private_copy
    if _private_copy is None or not _private_copy.exists():
        source = Path(_loader()[0])
        if not source.exists():
            raise EspeakError(
                f"libespeak-ng not found at {source}; reinstall espeakng-loader "
                "(`uv pip install --reinstall espeakng-loader`)."
            )
        folder = Path(tempfile.mkdtemp(prefix="espnet-synth-"))
        atexit.register(shutil.rmtree, folder, True)
        target = folder / source.name
        shutil.copy2(source, target)
        _private_copy = target
    return _private_copy


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    """The C library this process uses (its ``rand``/``srand``)."""
    lib = ctypes.cdll.msvcrt if sys.platform == "win32" else ctypes.CDLL(None)
    lib.srand.argtypes = [ctypes.c_uint]
    return lib


def _unload(lib: ctypes.CDLL) -> None:
    import _ctypes

    if sys.platform == "win32":  # pragma: no cover
        _ctypes.FreeLibrary(lib._handle)  # type: ignore[attr-defined]
    else:
        _ctypes.dlclose(lib._handle)  # type: ignore[attr-defined]


def _open(path: Path) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL if hasattr(os, "RTLD_LOCAL") else 0)
    except OSError as exc:
        raise EspeakError(
            f"cannot load libespeak-ng from {path}: {exc}; check that espeakng-loader "
            "matches this platform."
        ) from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib


def synthesize(
    variant: str, spoken: str, *, rate: int, pitch: int, seed: int
) -> tuple[np.ndarray, int]:
    """Speak ``spoken`` with voice ``LANGUAGE+variant``; return (int16 samples, sample rate).

    ``rate`` is in words per minute (espeak accepts 80-450), ``pitch`` is 0-99
    (50 is the voice's own pitch).  ``variant`` must be a file name under
    ``espeak-ng-data/voices/!v``; callers validate it (see ``voices.check_voice``),
    because espeak silently falls back to the default voice for unknown names.
    """
    if not 80 <= rate <= 450:
        raise ValueError(f"rate={rate} words/min is outside espeak's range 80..450")
    if not 0 <= pitch <= 99:
        raise ValueError(f"pitch={pitch} is outside espeak's range 0..99")
    chunks: list[np.ndarray] = []

    def _collect(wav: ctypes._Pointer, numsamples: int, events: int) -> int:  # type: ignore[type-arg]
        if numsamples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0

    callback = _SynthCallback(_collect)
    text = spoken.encode("utf-8")
    with _LOCK:
        lib = _open(_library_copy())
        try:
            sample_rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path()).encode(), _INITIALIZE_DONT_EXIT
            )
            if sample_rate <= 0:
                raise EspeakError(
                    f"espeak_Initialize failed (returned {sample_rate}) with data path "
                    f"{data_path()}; reinstall espeakng-loader."
                )
            lib.espeak_SetSynthCallback(callback)
            status = lib.espeak_SetVoiceByName(f"{LANGUAGE}+{variant}".encode())
            if status != 0:
                raise EspeakError(
                    f"espeak refused voice {LANGUAGE}+{variant!r} (status {status}); "
                    "see espnet_data.synth.available_voices() for valid names."
                )
            lib.espeak_ng_SetRandSeed(seed & 0x7FFFFFFF)
            # some voices (klatt-based ones, e.g. "Reed", "caleb") also draw from libc's
            # rand(), whose state is per process: seed it too, or a call's audio depends
            # on what this process (or the parent it was forked from) synthesised before
            _libc().srand(seed & 0x7FFFFFFF)
            lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            status = lib.espeak_Synth(
                text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
            )
            if status != 0:
                raise EspeakError(
                    f"espeak_Synth failed with status {status} for voice {variant!r} "
                    f"and text {spoken!r}."
                )
        finally:
            lib.espeak_Terminate()
            _unload(lib)
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return pcm.astype(np.int16, copy=False), int(sample_rate)
