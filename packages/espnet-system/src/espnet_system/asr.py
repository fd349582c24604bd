"""ASRSystem: the stages of a speech recognition recipe.

Canonical order: create_dataset, train_tokenizer, train_lm, collect_stats, train, infer,
measure, pack_model, upload_model, pack_demo, upload_demo. ``all`` leaves out the
uploads and ``train_lm``; a recipe that fuses an LM runs ``train_lm`` when named, or puts
it back into ``all`` (egs/mini/asr/src/system.py). ``train_lm`` runs the stages of an LM
recipe (``conf/lm.yaml``: ``recipe: ../lm``) with its own :class:`~espnet_system.lm.LMSystem`,
after ``train_tokenizer`` as in ESPnet2's asr.sh, since the LM shares the ASR tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import yaml
from espnet_data import read_index, save_tokenizer, train_sentencepiece
from espnet_data.atomic import atomic_open, write_json
from espnet_data.parallel import launcher_world_size
from espnet_data.tokenizer import CharTokenizer, check_same_tokenizer, load_tokenizer_dir
from espnet_infer import InferenceConfig, load_lm_folder, run_inference
from espnet_model.builder import build_frontend
from espnet_train import TrainingConfig, collect_stats, train

from .base import parse_config
from .configs import DataPrepConfig, MetricsConfig, PublishConfig
from .corpus import CorpusSystem
from .inputs import Reads, StageInput
from .lm import LMStageConfig, LMSystem
from .stages import StageError

log = logging.getLogger(__name__)


#: a split folder of shards, complete once create_dataset wrote its index
_SPLIT = {"made_by": "create_dataset", "holds": ("index.jsonl",),
          "what": "a split folder written by create_dataset (shard-*.tar + index.jsonl)"}
_MODEL = {"made_by": "train", "what": "a model folder (config.yaml, model.pt, tokenizer)"}


def format_scores(scores: dict[str, dict[str, float]]) -> str:
    """A small WER/CER table, one row per test set."""
    with_lm = any("wer_no_lm" in s for s in scores.values())
    head = f"{'set':<12} {'WER %':>7} {'CER %':>7}"
    if with_lm:  # WER/CER are the configured decoding's (with the LM); then without it
        head = f"{'set':<12} {'WER %':>7} {'CER %':>7} {'WER no LM':>10} {'CER no LM':>10}"
    lines = [f"{head} {'utts':>6}"]
    for name, s in scores.items():
        flag = "" if s.get("complete", True) else "  INCOMPLETE (missing hypotheses scored as deletions)"
        row = f"{name:<12} {s['wer']:>7.2f} {s['cer']:>7.2f}"
        if with_lm:
            row += (f" {s['wer_no_lm']:>10.2f} {s['cer_no_lm']:>10.2f}" if "wer_no_lm" in s
                    else f" {'-':>10} {'-':>10}")
        lines.append(f"{row} {s['num_utterances']:>6}{flag}")
    return "\n".join(lines)


class ASRSystem(CorpusSystem):
    stages: ClassVar[tuple[str, ...]] = (
        "create_dataset",
        "train_tokenizer",
        "train_lm",
        "collect_stats",
        "train",
        "infer",
        "measure",
        "pack_model",
        "upload_model",
        "pack_demo",
        "upload_demo",
    )
    #: uploads talk to the outside world; train_lm needs conf/lm.yaml and an LM recipe
    explicit_only: ClassVar[frozenset[str]] = frozenset({"upload_model", "upload_demo", "train_lm"})
    #: under DDP (train) or ``mpiexec ... espnet-run --stages infer`` every rank runs these
    distributed_stages: ClassVar[frozenset[str]] = frozenset({"train", "infer"})
    config_roles: ClassVar[dict[str, str]] = {
        "create_dataset": "data",
        "train_tokenizer": "data",
        "train_lm": "lm",
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
        "data": DataPrepConfig,
        "training": TrainingConfig,
        "inference": InferenceConfig,
        "metrics": MetricsConfig,
        "publish": PublishConfig,
        "lm": LMStageConfig,
    }
    #: create_dataset's corpus folders are added by :meth:`inputs`
    stage_inputs: ClassVar[dict[str, tuple[Reads, ...]]] = {
        "train_tokenizer": (Reads("{out_dir}/{tokenizer.train_split}", **_SPLIT),),
        "train_lm": (
            Reads("recipe", holds=("conf",), what="an LM recipe folder (egs/<corpus>/lm)"),
            Reads("tokenizer", made_by="train_tokenizer", holds=("tokenizer.yaml",),
                  what="this recipe's tokenizer folder, which the LM shares"),
        ),
        "collect_stats": (Reads("data.train", **_SPLIT),),
        "train": (
            Reads("data.train", **_SPLIT),
            Reads("data.valid", **_SPLIT),
            Reads("tokenizer", made_by="train_tokenizer", holds=("tokenizer.yaml",),
                  what="a tokenizer folder written by train_tokenizer"),
            Reads("stats_file", made_by="collect_stats",
                  what="the statistics collect_stats writes, or null (normalize: utterance_mvn)"),
            Reads("data.rir", what="a list file of room impulse response audio paths, or null"),
            Reads("data.noise", what="a list file of noise audio paths, or null"),
        ),
        "infer": (
            Reads("model_dir", **_MODEL),
            Reads("test_sets", **_SPLIT),
            Reads("decode.lm", made_by="train_lm", holds=("config.yaml",),
                  what="an LM folder (the LM recipe's exp/lm/model: just asr <corpus> train_lm), "
                       "or null for no LM"),
        ),
        "measure": (Reads("inference_dir", made_by="infer",
                          what="inference's output_dir (<set>/hyp.txt, ref.txt)"),),
        "pack_model": (Reads("model_dir", **_MODEL),),
        "upload_model": (Reads("packed_dir", made_by="pack_model", what="a packed model folder"),),
        "pack_demo": (Reads("packed_dir", made_by="pack_model", what="a packed model folder"),),
        "upload_demo": (Reads("demo_dir", made_by="pack_demo", what="a demo folder"),),
    }

    def runs_on_every_rank(self, stage: str) -> bool:
        """``train`` always; ``infer`` only with ``parallel.backend: mpi`` (other backends
        decode from rank 0 alone, so a DDP rank relaunched by Lightning does not decode);
        ``create_dataset`` when started by ``mpiexec`` (each rank writes its shards)."""
        if stage == "create_dataset":
            return launcher_world_size() > 1
        if stage == "infer":
            cfg: InferenceConfig = self.config("inference")
            return cfg.parallel.backend == "mpi"
        return super().runs_on_every_rank(stage)

    def inputs(self, stage: str) -> list[StageInput]:
        """The declared paths (:meth:`CorpusSystem.inputs`); nothing for ``collect_stats``
        without a ``stats_file`` (it has nothing to collect)."""
        if stage == "collect_stats" and not self.config("training").stats_file:
            return []
        found = super().inputs(stage)
        if stage == "infer":  # an LM on the Hub is fetched when decoding, not looked for
            found = [i for i in found if not (i.key == "decode.lm" and i.value.startswith("hf://"))]
        return found

    def train_tokenizer(self) -> None:
        """Train the tokenizer on the training split's transcripts."""
        cfg: DataPrepConfig = self.config("data")
        tok = cfg.tokenizer
        texts = [row["text"] for row in read_index(Path(cfg.out_dir) / tok.train_split)]
        if tok.type == "char":
            tokenizer = CharTokenizer.from_texts(texts)
        else:
            tokenizer = train_sentencepiece(
                texts, tok.out_dir, vocab_size=tok.vocab_size, model_type=tok.model_type
            )
        save_tokenizer(tokenizer, tok.out_dir)
        log.info("tokenizer: %s, %d tokens -> %s", tok.type, tokenizer.vocab_size, tok.out_dir)

    def check(self, stages: Sequence[str]) -> None:
        """Also parse the LM recipe's configs when ``train_lm`` runs (before any stage)."""
        super().check(stages)
        if "train_lm" in stages:
            system = self.lm_system()
            system.check(system.resolve(self.config("lm").stages))

    def lm_system(self) -> LMSystem:
        """The LM recipe ``conf/lm.yaml`` names, with its own system, configs and logs."""
        from .recipe import load_system  # recipe imports this module

        if getattr(self, "_lm", None) is None:
            cfg: LMStageConfig = self.config("lm")
            folder = self.recipe_dir / cfg.recipe
            if not folder.is_dir():
                raise StageError(f"{self.config_path('lm')}: recipe: {cfg.recipe} is not a folder "
                                 f"({folder}); point it at the LM recipe (e.g. ../lm)")
            system = load_system(folder, conf_dir=cfg.conf_dir, per_rank_logs=self.per_rank_logs)
            if not isinstance(system, LMSystem):
                raise StageError(
                    f"{self.config_path('lm')}: {folder} runs {type(system).__name__}, not an LM "
                    "system: name the folder lm or define System(LMSystem) in its src/system.py")
            self._lm = system
        return self._lm

    def train_lm(self) -> None:
        """Run the LM recipe's stages (its own logs), then check it shares our tokenizer."""
        cfg: LMStageConfig = self.config("lm")
        system = self.lm_system()
        ran = system.run(cfg.stages)
        with system.in_recipe():
            report = system.report(ran)
            model_dir = Path(system.config("training").exp_dir).resolve() / "model"
        if report:
            log.info("%s", report)
        if cfg.tokenizer is None:
            return
        if not (model_dir / "config.yaml").is_file():
            log.warning("%s holds no LM yet: cannot compare its tokenizer with %s", model_dir,
                        cfg.tokenizer)
            return
        check_same_tokenizer(
            load_lm_folder(model_dir, verify=False).tokenizer, load_tokenizer_dir(cfg.tokenizer),
            name=f"the LM's {model_dir / 'tokenizer'}",
            reference_name=f"this recipe's {Path(cfg.tokenizer).resolve()} (conf/lm.yaml: tokenizer)",
        )
        log.info("LM folder: %s (shares %s; inference.yaml decode.lm)", model_dir, cfg.tokenizer)

    def collect_stats(self) -> None:
        """Global feature mean/variance over the training split (for global MVN)."""
        cfg: TrainingConfig = self.config("training")
        if not cfg.stats_file:
            log.info("training.yaml sets no stats_file: nothing to collect")
            return
        frontend = build_frontend(cfg.model)
        stats = collect_stats(cfg.data.train, frontend, cfg.stats_file)
        log.info("%d utterances, %d frames -> %s", stats["utterances"], stats["frames"], cfg.stats_file)

    def train(self) -> None:
        """Train the model and export the best-N averaged model folder."""
        out = train(self.config("training"))
        log.info("model folder: %s", out)

    def infer(self) -> None:
        """Decode every test set, one result file per shard; with ``decode.lm`` also once
        without the LM, into ``<output_dir>/no_lm`` (``measure`` reports both WERs)."""
        cfg: InferenceConfig = self.config("inference")
        result = run_inference(cfg)
        log.info("inference: %s", json.dumps(result))
        if cfg.decode.uses_lm:
            plain = cfg.without_lm()
            log.info("decoding again without the LM -> %s (for wer_no_lm)", plain.output_dir)
            log.info("inference without LM: %s", json.dumps(run_inference(plain)))

    def _no_lm_dir(self, root: Path) -> Path | None:
        """``<inference_dir>/no_lm`` when this recipe's inference fuses an LM (else None: a
        ``no_lm`` folder left from an earlier run with an LM would be stale)."""
        if not self.config_path("inference").is_file():
            return None
        cfg: InferenceConfig = self.config("inference")
        if not cfg.decode.uses_lm:
            return None
        return root / Path(cfg.without_lm().output_dir).name

    def measure(self) -> None:
        """WER and CER per test set, written to the scores file and printed."""
        from espnet_infer.scoring import (
            IncompleteHypotheses,
            read_text_file,
            score_texts,
            write_scores,
        )

        cfg: MetricsConfig = self.config("metrics")
        root = Path(cfg.inference_dir)
        sets = cfg.test_sets or sorted(p.parent.name for p in root.glob("*/hyp.txt"))
        no_lm = self._no_lm_dir(root)
        if not sets:
            raise FileNotFoundError(f"no <set>/hyp.txt under {root}: run the infer stage first")
        results, refused = {}, []
        for name in sets:  # every set scored before anything is written
            refs = read_text_file(root / name / "ref.txt")
            hyps = read_text_file(root / name / "hyp.txt")
            try:
                results[name] = score_texts(refs, hyps, uppercase=cfg.uppercase,
                                            strip_punctuation=cfg.strip_punctuation,
                                            allow_incomplete=cfg.allow_incomplete)
            except IncompleteHypotheses as err:
                refused.append(f"  - {name} ({root / name / 'hyp.txt'}): {err}")
        if refused:
            raise StageError(
                f"{len(refused)} test set(s) incomplete, nothing was scored (allow_incomplete "
                f"is false in {self.config_path('metrics')}):\n" + "\n".join(refused)
            )
        scores = {}
        for name, result in results.items():
            write_scores(result, root / name)
            scores[name] = {
                "wer": round(100 * result.wer, 2),  # percent, as in the printed table
                "cer": round(100 * result.cer, 2),
                "num_utterances": result.num_sentences,
                "complete": result.complete,
                "details": result.to_dict(),
            }
            if not result.complete:
                log.warning("%s: INCOMPLETE, %d of %d utterances without hypothesis scored "
                            "as deletions (allow_incomplete: true)", name,
                            len(result.missing_keys), result.num_sentences)
            if no_lm is not None and (no_lm / name / "hyp.txt").is_file():
                plain = score_texts(read_text_file(no_lm / name / "ref.txt"),
                                    read_text_file(no_lm / name / "hyp.txt"),
                                    uppercase=cfg.uppercase,
                                    strip_punctuation=cfg.strip_punctuation,
                                    allow_incomplete=cfg.allow_incomplete)
                write_scores(plain, no_lm / name)
                scores[name]["wer_no_lm"] = round(100 * plain.wer, 2)
                scores[name]["cer_no_lm"] = round(100 * plain.cer, 2)
        write_json(cfg.out_file, scores)
        log.info("scores -> %s\n%s", cfg.out_file, format_scores(scores))

    format_scores = staticmethod(format_scores)  # the table report() prints after measure

    def pack_model(self) -> None:
        """A Hugging Face model folder: safetensors, configs, tokenizer, stats, card, meta.yaml."""
        from espnet_publish import pack_model

        cfg: PublishConfig = self.config("publish")
        extra = {}
        if cfg.scores_file and Path(cfg.scores_file).is_file():
            extra["scores.json"] = Path(cfg.scores_file)
        curves = sorted(Path(cfg.curves_dir).glob("*.png")) if cfg.curves_dir else []
        lm_dir = None
        with tempfile.TemporaryDirectory() as tmp:
            if cfg.inference_config and Path(cfg.inference_config).is_file():
                extra["inference.yaml"] = self._resolved_inference(
                    Path(cfg.inference_config), Path(tmp) / "inference.yaml"
                )
                # the LM the scores were decoded with travels in the pack (its lm/ folder)
                decode = parse_config(InferenceConfig, Path(cfg.inference_config)).decode
                lm_dir = decode.lm if decode.uses_lm else None
            out = pack_model(
                cfg.model_dir, cfg.packed_dir, model_name=cfg.model_name, extra_files=extra,
                license=cfg.license, language=cfg.language, repo_id=cfg.repo_id,
                images=curves, overwrite=True, verify=True,
                trust_remote_code=cfg.trust_remote_code, lm_dir=lm_dir, datasets=cfg.datasets,
            )
        log.info("packed model: %s (%d training curve(s)%s)", out, len(curves),
                 f", LM {lm_dir}" if lm_dir else "")

    @staticmethod
    def _resolved_inference(src: Path, dst: Path) -> Path:
        """``inference.yaml`` with every default filled in, pointing at the pack itself."""
        resolved = dataclasses.asdict(parse_config(InferenceConfig, src))
        resolved["model_dir"] = "."
        with atomic_open(dst) as f:
            f.write(f"# {src} resolved by espnet-system pack_model; model_dir is this folder.\n")
            yaml.safe_dump(resolved, f, sort_keys=False)
        return dst

    def upload_model(self) -> None:
        """Upload the packed model to the Hugging Face Hub (needs a token)."""
        from espnet_publish import resolve_token, upload_model

        cfg: PublishConfig = self.config("publish")
        token = resolve_token()
        if not cfg.repo_id:
            raise StageError(f"{self.config_path('publish')}: set repo_id (owner/name) to upload")
        url = upload_model(cfg.packed_dir, cfg.repo_id, token=token, private=cfg.private,
                           endpoint=cfg.endpoint, overwrite=cfg.overwrite)
        log.info("uploaded: %s", url)

    def pack_demo(self) -> None:
        """A Hugging Face Space folder (Gradio app + the packed model)."""
        from espnet_publish import pack_demo

        cfg: PublishConfig = self.config("publish")
        out = pack_demo(cfg.packed_dir, cfg.demo_dir, title=cfg.demo_title, overwrite=True,
                        trust_remote_code=cfg.trust_remote_code)
        log.info("demo folder: %s", out)

    def upload_demo(self) -> None:
        """Upload the demo Space (needs a token)."""
        from espnet_publish import resolve_token, upload_demo

        cfg: PublishConfig = self.config("publish")
        token = resolve_token()
        if not cfg.demo_repo_id:
            raise StageError(f"{self.config_path('publish')}: set demo_repo_id (owner/name) to upload")
        url = upload_demo(cfg.demo_dir, cfg.demo_repo_id, token=token, private=cfg.private,
                          endpoint=cfg.endpoint, overwrite=cfg.overwrite)
        log.info("uploaded demo: %s", url)
