"""The paths stages read, checked before any stage runs (issue 21, point 10)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pytest
import soundfile as sf
from espnet_data.corpora import AN4Corpus, KaldiDirCorpus, LibriSpeechCorpus, MiniCorpus
from espnet_data.testing import tone
from espnet_system import ASRSystem, BaseSystem, StageError
from espnet_system.cli import main
from espnet_system.inputs import MissingInputsError, Reads, corpus_paths

# --- a toy system: the machinery is BaseSystem's, every system only declares ---------


@dataclasses.dataclass
class Paths:
    """A toy config role."""

    raw: str = "raw"
    out: str = "made"
    extra: dict[str, str] | None = None
    optional: str | None = None


class ToySystem(BaseSystem):
    stages: ClassVar[tuple[str, ...]] = ("make", "use")
    config_roles: ClassVar[dict[str, str]] = {"make": "paths", "use": "paths"}
    config_schemas: ClassVar[dict[str, type]] = {"paths": Paths}
    stage_inputs: ClassVar[dict[str, tuple[Reads, ...]]] = {
        "make": (Reads("raw", what="a folder of raw files"),),
        "use": (Reads("out", made_by="make", holds=("done",)), Reads("extra", made_by="make"),
                Reads("optional")),
    }

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []

    def make(self) -> None:
        self.ran.append("make")
        Path("made").mkdir()
        Path("made/done").write_text("")

    def use(self) -> None:
        self.ran.append("use")


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "paths.yaml").write_text("extra: {a: made/a}\n")
    return tmp_path


def test_all_missing_paths_are_listed_in_one_error_and_nothing_runs(toy: Path) -> None:
    system = ToySystem(toy)
    with pytest.raises(MissingInputsError) as err:
        system.run(["use"])
    message = str(err.value)
    assert message.startswith("2 paths that the requested stages read are missing; nothing was run")
    assert "use: out in conf/paths.yaml is made, which does not exist. The make stage writes it" in message
    assert "use: extra.a in conf/paths.yaml is made/a" in message
    assert "--stages make use" in message
    assert [inp.key for inp, _ in err.value.missing] == ["out", "extra.a"]
    assert system.ran == [] and not (toy / "exp").exists()


def test_a_path_an_earlier_stage_of_the_run_writes_need_not_exist(toy: Path) -> None:
    system = ToySystem(toy)
    (toy / "raw").mkdir()
    (toy / "conf" / "paths.yaml").write_text("extra: null\n")
    assert system.missing_inputs(["make", "use"]) == []
    assert system.run(["use", "make"]) == ["make", "use"]


def test_user_data_has_no_maker_and_says_what_it_should_be(toy: Path) -> None:
    with pytest.raises(MissingInputsError, match=r"make: raw in conf/paths.yaml is raw, which "
                       r"does not exist\. No stage makes it: point raw at a folder of raw files"):
        ToySystem(toy).run(["make"])


def test_a_folder_without_the_files_it_must_hold_is_missing(toy: Path) -> None:
    (toy / "made").mkdir()
    (toy / "made" / "a").write_text("")
    (toy / "conf" / "paths.yaml").write_text("extra: {a: made/a}\noptional: null\n")
    with pytest.raises(MissingInputsError, match="made, which exists but holds no done"):
        ToySystem(toy).run(["use"])


def test_other_ranks_check_every_requested_stage(toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")  # rank 0 runs make; this rank trusts it
    (toy / "raw").mkdir()
    assert ToySystem(toy).missing_inputs(["make", "use"]) == []


@pytest.mark.parametrize(("declared", "message"), [
    ((Reads("nope"),), r"stage_inputs\['use'\]: key 'nope' does not name a path"),
    ((Reads("out", made_by="later"),), r"made_by='later' is not a stage of Wrong; its stages are make, use"),
])
def test_a_wrong_declaration_names_itself(toy: Path, declared: tuple[Reads, ...], message: str) -> None:
    class Wrong(ToySystem):
        stage_inputs = {"use": declared}

    with pytest.raises(StageError, match=message):
        Wrong(toy).run(["use"])


# --- ASRSystem: the paths of a speech recipe --------------------------------------------


def _kaldi_dir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for key in ("u1", "u2"):
        sf.write(folder / f"{key}.wav", tone(0.5), 16000)
    (folder / "wav.scp").write_text("".join(f"{k} {folder / k}.wav\n" for k in ("u1", "u2")))
    (folder / "text").write_text("u1 HELLO\nu2 WORLD\n")
    return folder


def _split(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "index.jsonl").write_text("")


TRAINING = "exp_dir: exp/train\ntokenizer: exp/tokenizer\ndata: {train: data/train, valid: data/dev}\n"


def test_missing_kaldi_dir_stops_create_dataset_train_before_anything_is_written(
    tmp_path: Path,
) -> None:
    train = _kaldi_dir(tmp_path / "corpus" / "train")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "data.yaml").write_text(
        "corpus:\n  class_path: espnet_data.corpora.KaldiDirCorpus\n  init_args:\n"
        f"    dirs: {{train: {train}, dev: {tmp_path / 'corpus' / 'dev'}}}\nnum_workers: 1\n"
    )
    (tmp_path / "conf" / "training.yaml").write_text(TRAINING)
    system = ASRSystem(tmp_path)
    with pytest.raises(MissingInputsError) as err:
        system.run(["create_dataset", "train"])
    message = str(err.value)
    assert f"create_dataset: corpus.init_args.dirs.dev in conf/data.yaml is {tmp_path}/corpus/dev" in message
    assert "No stage makes it: point corpus.init_args.dirs.dev at a Kaldi data directory" in message
    # train's shards come from create_dataset in this run; its tokenizer does not
    assert [inp.key for inp, _ in err.value.missing] == ["corpus.init_args.dirs.dev", "tokenizer"]
    assert "(--stages create_dataset train_tokenizer train)" in message
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()


def test_kaldi_dir_without_wav_scp_is_reported(tmp_path: Path) -> None:
    (tmp_path / "corpus" / "train").mkdir(parents=True)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "data.yaml").write_text(
        "corpus:\n  class_path: espnet_data.corpora.KaldiDirCorpus\n  init_args:\n"
        "    dirs: {train: corpus/train}\n"
    )
    with pytest.raises(MissingInputsError, match="corpus/train, which exists but holds no wav.scp, text"):
        ASRSystem(tmp_path).run(["create_dataset"])


def test_missing_test_set_for_infer_without_create_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "exp" / "train" / "model").mkdir(parents=True)
    _split(tmp_path / "data" / "dev")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "inference.yaml").write_text(
        "model_dir: exp/train/model\ntest_sets: {dev: data/dev, test: data/test}\n"
        "output_dir: exp/infer\n"
    )
    (tmp_path / "conf" / "metrics.yaml").write_text("inference_dir: exp/infer\n")
    assert main([str(tmp_path), "--stages", "infer", "measure"]) == 2
    err = capsys.readouterr().err
    assert ("infer: test_sets.test in conf/inference.yaml is data/test, which does not exist. "
            "The create_dataset stage writes it and is not in this run: run it first "
            "(--stages create_dataset infer measure), or point test_sets.test at a split folder "
            "written by create_dataset") in err
    assert "test_sets.dev" not in err and "inference_dir" not in err  # there / made by infer
    assert not (tmp_path / "exp" / "infer").exists() and not (tmp_path / "exp" / "logs").exists()


def test_missing_data_train_for_train_lists_every_missing_path(tmp_path: Path) -> None:
    _split(tmp_path / "data" / "dev")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "training.yaml").write_text(
        TRAINING + "stats_file: exp/stats/feats_stats.npz\n"
    )
    with pytest.raises(MissingInputsError) as err:
        ASRSystem(tmp_path).run(["train"])
    found = {inp.key: inp.made_by for inp, _ in err.value.missing}
    assert found == {"data.train": "create_dataset", "tokenizer": "train_tokenizer",
                     "stats_file": "collect_stats"}
    assert "train: data.train in conf/training.yaml is data/train, which does not exist" in str(err.value)
    assert not (tmp_path / "exp").exists()


def test_split_folder_without_index_is_an_unfinished_create_dataset(tmp_path: Path) -> None:
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "training.yaml").write_text(TRAINING + "stats_file: s.npz\n")
    with pytest.raises(MissingInputsError, match="data/train, which exists but holds no index.jsonl"):
        ASRSystem(tmp_path).run(["collect_stats"])


def test_train_tokenizer_reads_the_split_under_out_dir(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "data.yaml").write_text(
        "corpus: {class_path: espnet_data.corpora.MiniCorpus}\nout_dir: shards\n"
        "tokenizer: {train_split: tr}\n"
    )
    with pytest.raises(MissingInputsError, match=r"\{out_dir\}/\{tokenizer.train_split\} in "
                       r"conf/data.yaml is shards/tr, which does not exist"):
        ASRSystem(tmp_path).run(["train_tokenizer"])
    assert ASRSystem(tmp_path).missing_inputs(["create_dataset", "train_tokenizer"]) == []


def test_dry_run_reports_missing_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _split(tmp_path / "data" / "dev")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "inference.yaml").write_text(
        "model_dir: exp/train/model\ntest_sets: {dev: data/dev}\noutput_dir: exp/infer\n"
    )
    assert main([str(tmp_path), "--stages", "infer", "--dry_run"]) == 2
    captured = capsys.readouterr()
    assert "reads model_dir = exp/train/model (MISSING: does not exist)" in captured.out
    assert "reads test_sets.dev = data/dev (present)" in captured.out
    assert "infer: model_dir in conf/inference.yaml is exp/train/model" in captured.err
    assert "The train stage writes it" in captured.err
    assert not (tmp_path / "exp").exists()


def test_dry_run_of_a_whole_run_needs_only_user_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "inference.yaml").write_text(
        "model_dir: exp/train/model\ntest_sets: {dev: data/dev}\noutput_dir: exp/infer\n"
    )
    (tmp_path / "conf" / "data.yaml").write_text("corpus: {class_path: espnet_data.corpora.MiniCorpus}\n")
    (tmp_path / "conf" / "training.yaml").write_text(TRAINING)
    assert main([str(tmp_path), "--stages", "create_dataset", "train_tokenizer", "train", "infer",
                 "--dry_run"]) == 0
    assert "reads test_sets.dev = data/dev (written by create_dataset before)" in capsys.readouterr().out


# --- corpora --------------------------------------------------------------------------


def test_corpus_paths_of_the_shipped_corpora(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AN4_ROOT", raising=False)
    monkeypatch.delenv("LIBRISPEECH_ROOT", raising=False)
    kaldi = KaldiDirCorpus(dirs={"train": "k/train", "dev": "k/dev"})
    assert [(p.key, p.value) for p in corpus_paths(kaldi, ["train"])] == [("dirs.train", "k/train")]
    assert corpus_paths(kaldi, ["train"])[0].holds == ("wav.scp", "text")
    assert [(p.key, p.value) for p in corpus_paths(AN4Corpus(root="a"), ["train"])] == [("root", "a")]
    assert corpus_paths(AN4Corpus(root="a", download=True), ["train"]) == []
    assert corpus_paths(AN4Corpus(), ["train"]) == []  # no root at all: the corpus says so itself
    monkeypatch.setenv("AN4_ROOT", "/an4")
    assert corpus_paths(AN4Corpus(), ["train"])[0].value == "/an4"
    libri = corpus_paths(LibriSpeechCorpus(), ["train"])
    assert [(p.key, p.value) for p in libri] == [
        ("root (unset: $LIBRISPEECH_ROOT, else downloads)", "downloads")]
    assert corpus_paths(LibriSpeechCorpus(download=True), ["train"]) == []
    assert corpus_paths(MiniCorpus(), ["train"]) == []


def test_a_corpus_may_describe_its_own_paths() -> None:
    class Mine:
        def input_paths(self, splits: list[str]) -> dict[str, str]:
            return {f"folders.{s}": f"/x/{s}" for s in splits}

    assert [(p.key, p.value) for p in corpus_paths(Mine(), ["a", "b"])] == [
        ("folders.a", "/x/a"), ("folders.b", "/x/b")]
