"""TTSSystem: the stages of a text-to-speech recipe (``egs/<corpus>/tts``).

Canonical order: create_dataset, train_tokenizer, collect_stats, train, infer, measure,
pack_model, upload_model, pack_demo, upload_demo (``all`` leaves out the uploads).

| stage | config | what it does | output |
| --- | --- | --- | --- |
| create_dataset | data | the corpus -> shards per split (as ASR) | ``data/<split>/`` |
| train_tokenizer | data | the phoneme token list of the training texts (espeak-ng) | ``exp/tokenizer/`` |
| collect_stats | training (+ aligner) | mel statistics; trains the CTC aligner (``task: tts_aligner``, a short budget); per-token durations of the training and validation splits; pitch/energy statistics when the model uses them | ``exp/stats/*.npz``, ``exp/aligner/``, ``data/<split>/durations.jsonl`` |
| train | training | FastSpeech2 (``task: tts``) | ``exp/tts/model/`` |
| infer | inference | synthesise the test sentences (batched, sharded, resumable; local / processes / MPI) | ``exp/infer/<set>/wav/``, ``index.jsonl`` |
| measure | metrics | CER/WER of the synthesised audio by an ASR pack, beside its CER/WER on the real audio; MCD; RTF | ``exp/infer/scores.json`` (``asr_cer`` in percent) |
| pack_model / upload_model | publish | the self-contained TTS folder (safetensors, tokenizer, card), loaded back | ``exp/packed/`` |
| pack_demo / upload_demo | publish | a Gradio Space that speaks typed text | ``exp/demo/`` |

A recipe adds a stage as for ASR: ``src/system.py`` defines ``System(TTSSystem)`` with
the stage in ``stages`` (and ``config_roles``), and a method of that name (docs/tts.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from espnet_data.atomic import atomic_open, write_json
from espnet_infer.synthesis import SynthesisConfig, run_synthesis
from espnet_train import TrainingConfig, collect_stats, train

from ..corpus import CorpusSystem
from ..inputs import Reads, StageInput
from ..stages import StageError
from .configs import TTSDataConfig, TTSMetricsConfig, TTSPublishConfig
from .measure import format_tts_scores, load_asr, score_set, summarize

log = logging.getLogger(__name__)

_SPLIT = {"made_by": "create_dataset", "holds": ("index.jsonl",),
          "what": "a split folder written by create_dataset (shard-*.tar + index.jsonl)"}
_TOKENIZER = {"made_by": "train_tokenizer", "holds": ("tokens.txt",),
              "what": "the phoneme tokenizer folder train_tokenizer writes"}
_MODEL = {"made_by": "train", "what": "a TTS model folder (config.yaml, model.pt, tokenizer/)"}
_FRAME_KEYS = ("fs", "n_fft", "hop_length", "win_length", "center")


class TTSSystem(CorpusSystem):
    """Text + audio shards -> phoneme tokens -> durations by CTC alignment -> FastSpeech2
    -> synthesised test sentences scored by an ASR pack -> pack and demo."""

    stages: ClassVar[tuple[str, ...]] = (
        "create_dataset", "train_tokenizer", "collect_stats", "train", "infer", "measure",
        "pack_model", "upload_model", "pack_demo", "upload_demo",
    )
    explicit_only: ClassVar[frozenset[str]] = frozenset({"upload_model", "upload_demo"})
    distributed_stages: ClassVar[frozenset[str]] = frozenset({"train", "infer"})
    config_roles: ClassVar[dict[str, str]] = {
        "create_dataset": "data",
        "train_tokenizer": "data",
        "collect_stats": "training",
        "train": "training",
        "infer": "inference",
        "measure": "metrics",
        "pack_model": "publish",
        "upload_model": "publish",
        "pack_demo": "publish",
        "upload_demo": "publish",
    }
    config_schemas: ClassVar[dict[str, type]] = {
        "data": TTSDataConfig,
        "training": TrainingConfig,
        "aligner": TrainingConfig,
        "inference": SynthesisConfig,
        "metrics": TTSMetricsConfig,
        "publish": TTSPublishConfig,
    }
    stage_inputs: ClassVar[dict[str, tuple[Reads, ...]]] = {
        "train_tokenizer": (Reads("{out_dir}/{tokenizer.train_split}", **_SPLIT),),
        "collect_stats": (Reads("data.train", **_SPLIT), Reads("data.valid", **_SPLIT),
                          Reads("tokenizer", **_TOKENIZER)),
        "train": (
            Reads("data.train", **_SPLIT),
            Reads("data.valid", **_SPLIT),
            Reads("tokenizer", **_TOKENIZER),
            Reads("stats_file", made_by="collect_stats",
                  what="the mel statistics collect_stats writes, or null (normalize: null)"),
            Reads("data.train", made_by="collect_stats", holds=("durations.jsonl",),
                  what="the durations collect_stats writes beside the shards"),
        ),
        "infer": (Reads("model_dir", **_MODEL), Reads("test_sets", **_SPLIT)),
        "measure": (Reads("inference_dir", made_by="infer",
                          what="infer's output_dir (<set>/index.jsonl, <set>/wav/)"),
                    Reads("asr_pack", holds=("config.yaml",),
                          what="a packed ASR model: run `just asr mini all` first (it writes "
                               "egs/mini/asr/exp/packed), or set asr_pack in metrics.yaml")),
        "pack_model": (Reads("model_dir", **_MODEL),),
        "upload_model": (Reads("packed_dir", made_by="pack_model", what="a packed TTS folder"),),
        "pack_demo": (Reads("packed_dir", made_by="pack_model", what="a packed TTS folder"),),
        "upload_demo": (Reads("demo_dir", made_by="pack_demo", what="a demo folder"),),
    }

    # ------------------------------------------------------------------ checks

    def check(self, stages: Sequence[str]) -> None:
        """Also: ``task: tts`` in training.yaml, and (collect_stats) ``aligner.yaml``."""
        super().check(stages)
        if {"collect_stats", "train"} & set(stages) and self.config("training").task != "tts":
            raise StageError(f"{self.config_path('training')}: set task: tts (a TTS recipe trains "
                             "an acoustic model)")
        if "collect_stats" in stages:
            self.aligner_config()

    def aligner_config(self) -> TrainingConfig:
        """``conf/aligner.yaml`` (``task: tts_aligner``), its mel settings those of
        training.yaml (filled in when left out; a different frame rate is refused)."""
        cfg: TrainingConfig = self.config("aligner")
        where = self.config_path("aligner")
        if cfg.task != "tts_aligner":
            raise StageError(f"{where}: set task: tts_aligner (collect_stats trains the CTC aligner "
                             "whose forced alignments give the durations)")
        ours = dict(self.config("training").model.get("feats_extract_conf") or {})
        theirs = cfg.model.get("feats_extract_conf")
        if theirs is None:
            return dataclasses.replace(cfg, model={**cfg.model, "feats_extract_conf": ours})
        differ = [k for k in _FRAME_KEYS if k in theirs and k in ours and theirs[k] != ours[k]]
        if differ:
            raise StageError(
                f"{where}: model.feats_extract_conf differs from training.yaml's in "
                + ", ".join(f"{k} ({theirs[k]} vs {ours[k]})" for k in differ)
                + ": the durations must count the acoustic model's frames; remove it from "
                "aligner.yaml (it defaults to training.yaml's)"
            )
        return cfg

    def inputs(self, stage: str) -> list[StageInput]:
        """The declared paths (:meth:`CorpusSystem.inputs`), less ``stats_file`` for
        ``train`` when training.yaml sets none."""
        found = super().inputs(stage)
        if stage == "train" and not self.config("training").stats_file:
            found = [i for i in found if i.key != "stats_file"]
        return found

    # ------------------------------------------------------------------ data

    # create_dataset: CorpusSystem's (the corpus -> shards per split, the ASR layout)

    def train_tokenizer(self) -> None:
        """The phoneme token list of the training split's texts (espeak-ng)."""
        from espnet_data.tts import PhonemeTokenizer, Phonemizer, read_texts

        cfg: TTSDataConfig = self.config("data")
        tok = cfg.tokenizer
        texts = list(read_texts(Path(cfg.out_dir) / tok.train_split).values())
        tokenizer = PhonemeTokenizer.build(texts, Phonemizer(language=tok.language))
        tokenizer.save(tok.out_dir)
        log.info("phoneme tokenizer: %d tokens from %d texts -> %s", len(tokenizer), len(texts), tok.out_dir)

    # ------------------------------------------------------------------ collect_stats

    def collect_stats(self) -> None:
        """Mel statistics, the CTC aligner, durations per split, pitch/energy statistics."""
        from espnet_model.tts.builder import build_feats_extract

        cfg: TrainingConfig = self.config("training")
        if cfg.stats_file:
            Path(cfg.stats_file).parent.mkdir(parents=True, exist_ok=True)
            stats = collect_stats(cfg.data.train, build_feats_extract(cfg.model), cfg.stats_file)
            log.info("mel statistics: %d utterances, %d frames -> %s", stats["utterances"],
                     stats["frames"], cfg.stats_file)
        aligner_cfg = self.aligner_config()
        aligner_dir = train(aligner_cfg)
        log.info("aligner: %s", aligner_dir)
        aligner, tokenizer = _load_aligner(aligner_dir)
        for split in dict.fromkeys((cfg.data.train, cfg.data.valid)):
            write_split_durations(aligner, tokenizer, split)
        if cfg.stats_file:
            self._variance_stats(cfg)

    def _variance_stats(self, cfg: TrainingConfig) -> None:
        """Token-averaged pitch / energy statistics (ESPnet2's ``pitch_stats.npz``,
        ``energy_stats.npz`` beside the mel statistics) when the model extracts them."""
        from espnet_train.tts import make_tts_stream, stats_files

        wanted = [k for k in ("pitch", "energy") if cfg.model.get(f"{k}_extract")]
        if not wanted:
            return
        from espnet_model.tts import build_tts
        from espnet_train.tts import load_phoneme_tokenizer

        block = {k: v for k, v in cfg.model.items() if not k.endswith("normalize") and not k.endswith("normalize_conf")}
        block["normalize"] = None
        tokenizer = load_phoneme_tokenizer(cfg.tokenizer)
        model = build_tts(block, vocab_size=len(tokenizer)).eval()
        sums = {k: [0.0, 0.0, 0] for k in wanted}
        stream = make_tts_stream(cfg, cfg.data.train, tokenizer, train=False)
        with torch.inference_mode():
            for batch in stream:
                out = model.collect_feats(batch["speech"], batch["speech_lengths"], batch["durations"],
                                          batch["durations_lengths"])
                for k in wanted:
                    values, lengths = out[k], out[f"{k}_lengths"]
                    for row, n in zip(values, lengths, strict=True):
                        v = row[: int(n) - 1, 0].double()  # the eos token's 0 left out
                        sums[k][0] += float(v.sum())
                        sums[k][1] += float((v * v).sum())
                        sums[k][2] += int(v.numel())
        for k in wanted:
            path = Path(stats_files(cfg.stats_file)[f"{k}_normalize"] or "")
            total, square, count = sums[k]
            with atomic_open(path, "wb") as f:
                np.savez(f, count=np.array(count), sum=np.array([total]), sum_square=np.array([square]))
            log.info("%s statistics over %d tokens -> %s", k, count, path)

    # ------------------------------------------------------------------ train / infer / measure

    def train(self) -> None:
        """Train the acoustic model (``task: tts``) and export its folder."""
        out = train(self.config("training"))
        log.info("TTS model folder: %s", out)

    def runs_on_every_rank(self, stage: str) -> bool:
        """``infer`` on every rank only with ``parallel.backend: mpi``."""
        if stage == "infer":
            return self.config("inference").parallel.backend == "mpi"
        return super().runs_on_every_rank(stage)

    def infer(self) -> None:
        """Synthesise every test set (batched, one result per shard, resumable)."""
        result = run_synthesis(self.config("inference"))
        log.info("synthesis: %s", json.dumps({k: v for k, v in result.items() if k != "options"}))
        if result.get("failed_shards"):
            raise StageError(f"{len(result['failed_shards'])} shard(s) failed (see the log and "
                             f"{self.config('inference').output_dir}/summary.json); run infer again")

    def measure(self) -> None:
        """ASR CER/WER of the synthesised and the real test audio, MCD, RTF -> scores file."""
        cfg: TTSMetricsConfig = self.config("metrics")
        try:
            asr = load_asr(cfg)
        except FileNotFoundError as err:
            raise StageError(str(err)) from None
        per_set = {name: score_set(name, split, cfg, asr) for name, split in cfg.test_sets.items()}
        scores = summarize(per_set)
        write_json(cfg.out_file, scores)
        log.info("scores -> %s\n%s", cfg.out_file, format_tts_scores(scores))

    format_scores = staticmethod(format_tts_scores)

    # ------------------------------------------------------------------ publish

    def pack_model(self) -> None:
        """A self-contained TTS folder (safetensors, tokenizer, stats, card, meta.yaml), loaded back."""
        from espnet_publish import pack_model

        cfg: TTSPublishConfig = self.config("publish")
        extra: dict[str, Path] = {}
        if cfg.scores_file and Path(cfg.scores_file).is_file():
            extra["scores.json"] = Path(cfg.scores_file)
        if cfg.inference_config and Path(cfg.inference_config).is_file():
            extra["inference.yaml"] = Path(cfg.inference_config)
        curves = sorted(Path(cfg.curves_dir).glob("*.png")) if cfg.curves_dir else []
        out = pack_model(cfg.model_dir, cfg.packed_dir, model_name=cfg.model_name, extra_files=extra,
                         license=cfg.license, language=cfg.language, repo_id=cfg.repo_id,
                         images=curves, overwrite=True, verify=True)
        log.info("packed TTS model: %s (%d training curve(s))", out, len(curves))

    def upload_model(self) -> None:
        """Upload the packed model to the Hugging Face Hub (needs a token)."""
        from espnet_publish import resolve_token, upload_model

        cfg: TTSPublishConfig = self.config("publish")
        token = resolve_token()
        if not cfg.repo_id:
            raise StageError(f"{self.config_path('publish')}: set repo_id (owner/name) to upload")
        log.info("uploaded: %s", upload_model(cfg.packed_dir, cfg.repo_id, token=token, private=cfg.private,
                                               endpoint=cfg.endpoint, overwrite=cfg.overwrite))

    def pack_demo(self) -> None:
        """A Gradio Space folder that speaks typed text (the packed model inside)."""
        from espnet_publish import pack_demo

        cfg: TTSPublishConfig = self.config("publish")
        log.info("demo folder: %s", pack_demo(cfg.packed_dir, cfg.demo_dir, title=cfg.demo_title, overwrite=True))

    def upload_demo(self) -> None:
        """Upload the demo Space (needs a token)."""
        from espnet_publish import resolve_token, upload_demo

        cfg: TTSPublishConfig = self.config("publish")
        token = resolve_token()
        if not cfg.demo_repo_id:
            raise StageError(f"{self.config_path('publish')}: set demo_repo_id (owner/name) to upload")
        log.info("uploaded demo: %s", upload_demo(cfg.demo_dir, cfg.demo_repo_id, token=token,
                                                  private=cfg.private, endpoint=cfg.endpoint,
                                                  overwrite=cfg.overwrite))


# -- the aligner's durations ---------------------------------------------------------------


def _load_aligner(folder: Path) -> tuple[torch.nn.Module, Any]:
    """The aligner ``train`` exported (``task: tts_aligner``) and its phoneme tokenizer."""
    import yaml
    from espnet_model.tts.aligner import build_aligner
    from espnet_train.tts import load_phoneme_tokenizer

    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    tokenizer = load_phoneme_tokenizer(folder / "tokenizer")
    block = dict(config["model"])
    if block.get("normalize") == "global_mvn":
        block["normalize_conf"] = {**(block.get("normalize_conf") or {}), "stats_file": None}
    model = build_aligner(block, vocab_size=len(tokenizer))  # flat keys + feats_extract_conf
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), tokenizer


def write_split_durations(aligner: torch.nn.Module, tokenizer: Any, split_dir: str, *,
                          batch_size: int = 16) -> dict[str, Any]:
    """``<split_dir>/durations.jsonl``: the aligner's per-token frames of every utterance.

    An utterance whose text the front-end refuses, or that the aligner cannot align
    (fewer frames than tokens), is skipped and counted with its key and reason (the
    ``tts`` task then skips it too).
    """
    from espnet_data.batching import pad_sequences
    from espnet_data.tts import read_tts_samples, write_durations
    from espnet_data.tts.durations import durations_path
    from espnet_model.tts.aligner import batch_durations

    found: list[tuple[str, list[int]]] = []
    skipped: Counter[str] = Counter()
    examples: dict[str, str] = {}

    def skip(key: str, err: Exception) -> None:
        reason = str(err).split(":")[0][:80]
        skipped[reason] += 1
        examples.setdefault(reason, f"{key}: {err}")

    def align(batch: list[tuple[str, np.ndarray, list[int]]]) -> None:
        speech = pad_sequences([a for _, a, _ in batch], 0.0)
        text = pad_sequences([np.asarray(i, dtype=np.int64) for _, _, i in batch], 0)
        slens = torch.tensor([len(a) for _, a, _ in batch])
        tlens = torch.tensor([len(i) for _, _, i in batch])
        try:
            out = batch_durations(aligner, speech, slens, text, tlens)
        except ValueError:  # one utterance cannot be aligned: each on its own
            if len(batch) == 1:
                raise
            for one in batch:
                try:
                    align([one])
                except ValueError as err:
                    skip(one[0], err)
            return
        found.extend((key, [int(d) for d in ds]) for (key, _, _), ds in zip(batch, out, strict=True))

    pending: list[tuple[str, np.ndarray, list[int]]] = []
    with torch.inference_mode():
        for sample in read_tts_samples(split_dir):
            try:
                pending.append((sample.key, sample.audio, tokenizer.encode(sample.text)))
            except ValueError as err:
                skip(sample.key, err)
            if len(pending) == batch_size:
                align(pending)
                pending = []
        if pending:
            align(pending)
    if not found:
        raise StageError(f"{split_dir}: the aligner gave no durations ({dict(skipped)}); see the log")
    path = write_durations(durations_path(split_dir), found)
    for reason, n in skipped.items():
        log.warning("%s: %d utterance(s) without durations, e.g. %s", split_dir, n, examples[reason])
    frames = sum(sum(d) for _, d in found)
    log.info("%s: durations of %d utterances (%d frames), %d skipped -> %s", split_dir, len(found),
             frames, sum(skipped.values()), path)
    return {"utterances": len(found), "skipped": dict(skipped), "frames": frames}
