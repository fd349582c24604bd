"""The typed schema of ``inference.yaml`` (parsed by jsonargparse)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

NO_LM_DIR = "no_lm"
"""Where :meth:`InferenceConfig.without_lm` decodes, under ``output_dir``."""


@dataclass
class StreamingConfig:
    """Decode each utterance as a stream (:class:`~espnet_infer.Speech2TextStreaming`):
    its audio fed ``chunk_ms`` at a time, as a live recogniser would receive it. Needs a
    streaming model (``encoder: contextual_block_conformer``). ``decode.beam_size``,
    ``ctc_weight``, ``penalty`` and ``maxlenratio`` apply, and ``lm`` / ``lm_weight`` in
    the ``joint`` mode (shallow fusion, as ESPnet2's ``Speech2TextStreaming``) and the
    ``ctc_prefix`` mode; ``method``, ``minlenratio`` and ``nbest > 1`` do not.

    Args:
        mode: ``joint`` (blockwise synchronous joint CTC/attention beam search, as
            ESPnet2's ``Speech2TextStreaming``), ``ctc_prefix`` (frame-synchronous CTC
            prefix beam search) or ``ctc_greedy``.
        chunk_ms: milliseconds of audio per chunk. The transcript does not depend on it
            (only when partial results appear does).
        disable_repetition_detection: ``joint``: do not stop a block's search at a token
            its hypothesis already holds.
        block_size / hop_size / look_ahead: the encoder's blocks at inference; None keeps
            the model's (``encoder_conf``). For a model trained with
            ``encoder_conf.dynamic_blocks``.
    """

    mode: Literal["joint", "ctc_prefix", "ctc_greedy"] = "joint"
    chunk_ms: float = 640.0
    disable_repetition_detection: bool = False
    block_size: int | None = None
    hop_size: int | None = None
    look_ahead: int | None = None


@dataclass
class DecodeConfig:
    """How token sequences are searched.

    Args:
        method: ``ctc_greedy`` (fastest) or ``beam_search`` (joint CTC/attention).
        beam_size: hypotheses kept per utterance (beam search).
        ctc_weight: weight of the CTC prefix score against the attention decoder (0..1).
        penalty: length bonus added per emitted token (``eos`` included); positive values
            favour longer hypotheses.
        maxlenratio: maximum output length as a ratio of encoder frames (0: the number
            of encoder frames).
        minlenratio: ``eos`` is not allowed before ``minlenratio * frames`` tokens.
        nbest: hypotheses kept per utterance, best first (``beam_search`` only; at most
            ``beam_size``). With ``nbest > 1`` every row of ``hyp.jsonl`` lists them with
            their scores.
        fuse_encoder: on a CPU, run a float32 conformer encoder (``rel_pos_type:
            latest``) frozen (``espnet_model.frozen``: constants and BatchNorm folded
            into the weights, fewer operators, no padded frame computed); its output
            equals the module's up to float rounding. ``false`` runs the model's own
            modules, as do other encoders and GPUs.
        lm: a language model for shallow fusion (``beam_search`` only): an LM folder
            (espnet-train's LM task exports ``exp/<lm>/model``), the ``lm`` folder of a
            pack, or an ESPnet2 LM experiment. It must use the ASR model's tokenizer
            (checked at load). A relative path is relative to where decoding runs (the
            recipe folder under espnet-run). None: no LM.
        lm_weight: weight of the LM log-probability in the score
            (``(1 - ctc_weight) * att + ctc_weight * ctc + lm_weight * lm``); only used
            with ``lm``, and ``0`` decodes without it. 0.3 is a cautious start for a
            small LM; ESPnet2's LibriSpeech recipes use 0.6 (with ``ctc_weight: 0.3``).

    ``ctc_weight: 0`` is attention-only decoding, ``ctc_weight: 1`` a CTC prefix beam
    search that never calls the attention decoder; both take an LM.

    ``streaming`` (:class:`StreamingConfig`, e.g. ``streaming: {mode: joint, chunk_ms:
    320}``) decodes every utterance chunk by chunk with a streaming model instead.
    """

    method: Literal["ctc_greedy", "beam_search"] = "beam_search"
    beam_size: int = 10
    ctc_weight: float = 0.3
    penalty: float = 0.0
    maxlenratio: float = 0.0
    minlenratio: float = 0.0
    nbest: int = 1
    fuse_encoder: bool = True
    lm: str | None = None
    lm_weight: float = 0.3
    streaming: StreamingConfig | None = None

    @property
    def uses_lm(self) -> bool:
        """Whether decoding fuses an LM: ``lm`` set, ``lm_weight > 0`` and beam search
        (offline, or a streaming beam search: ``joint`` or ``ctc_prefix``)."""
        return (
            self.lm is not None
            and self.lm_weight > 0
            and self.method == "beam_search"
            and (self.streaming is None or self.streaming.mode != "ctc_greedy")
        )


@dataclass
class ParallelConfig:
    """Where the shards are decoded.

    Args:
        backend: ``local`` (this process), ``processes`` (a process pool on this machine),
            ``mpi`` (one rank per process under ``mpiexec -n N``).
        num_workers: processes for the ``processes`` backend.
        threads_per_worker: torch threads in each worker. None: with several workers on
            a machine (pool processes, MPI ranks on one node), its cores divided among
            them; with one worker, torch's default.
    """

    backend: Literal["local", "processes", "mpi"] = "local"
    num_workers: int = 1
    threads_per_worker: int | None = None


@dataclass
class InferenceConfig:
    """Everything ``espnet-infer`` needs.

    Args:
        model_dir: a model folder (``config.yaml`` + ``model.pt`` + tokenizer).
        test_sets: name -> split folder of shards, e.g. ``{test: data/test}``.
        output_dir: results go to ``<output_dir>/<name>/`` (one JSONL per shard, then
            ``hyp.txt``, ``ref.txt`` and ``hyp.jsonl``).
        max_seconds: padded seconds of audio per decoding batch (length-sorted). The
            default suits a GPU; on a CPU about 20 decodes fastest (padding and large
            activations cost more than batching saves).
        device: ``cpu``, ``cuda``, ``cuda:1``...; under MPI ``cuda`` picks the rank's GPU.
        keep_host_memory: (glibc) each worker keeps freed host memory for reuse
            (:mod:`espnet_model.host_memory`): no page faults per batch, RSS stays at
            its peak.
        trust_remote_code: let the model folder run code of its own while it is loaded
            (passed to :func:`~espnet_infer.loading.load_model_folder`). Off by default:
            turn it on only for a model whose source you trust.

    Only one run at a time may use an ``output_dir``: a run holds
    ``<output_dir>/.espnet-infer.lock`` while it works, and another one started
    meanwhile stops at once, naming the process that holds it.
    """

    model_dir: str
    test_sets: dict[str, str]
    output_dir: str
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    max_seconds: float = 200.0
    max_batch_size: int = 64
    device: str = "cpu"
    keep_host_memory: bool = True
    trust_remote_code: bool = False

    def without_lm(self, subdir: str = NO_LM_DIR) -> InferenceConfig:
        """This run decoded again without the language model, into
        ``<output_dir>/<subdir>/`` (e.g. to report ``wer_no_lm`` next to ``wer``)::

            run_inference(config)                  # <output_dir>/<set>/hyp.txt
            if config.decode.uses_lm:
                run_inference(config.without_lm())  # <output_dir>/no_lm/<set>/hyp.txt

        Everything else (model, sets, search, parallel) is kept; its own ``settings.json``
        and lock live in the sub-folder, so each of the two resumes on its own.
        """
        if subdir in self.test_sets:
            raise ValueError(
                f"test set {subdir!r} would share {Path(self.output_dir) / subdir} with the "
                f"decoding without LM; rename the test set or pass without_lm(subdir=...)"
            )
        return replace(self, output_dir=str(Path(self.output_dir) / subdir),
                       decode=replace(self.decode, lm=None))
