"""ASRSystem: its stage table, measure, and the upload stages' token check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from espnet_publish import PublishError
from espnet_system import ASRSystem, StageError
from espnet_system.cli import main

STAGES = ("create_dataset", "train_tokenizer", "train_lm", "collect_stats", "train", "infer",
          "measure", "pack_model", "upload_model", "pack_demo", "upload_demo")


def test_stage_table_is_consistent() -> None:
    assert ASRSystem.stages == STAGES
    assert set(ASRSystem.config_roles) == set(STAGES)
    assert set(ASRSystem.config_roles.values()) == set(ASRSystem.config_schemas)
    assert ASRSystem.explicit_only == {"upload_model", "upload_demo", "train_lm"}
    assert ASRSystem.distributed_stages == {"train", "infer"}
    assert all(callable(getattr(ASRSystem, s)) for s in STAGES)


def test_measure_scores_every_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "metrics.yaml").write_text("inference_dir: out\nout_file: out/scores.json\n")
    for name, hyp in (("dev", "A B C"), ("test", "A X C")):
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / "ref.txt").write_text("u1 A B C\nu2 D E\n")
        (tmp_path / "out" / name / "hyp.txt").write_text(f"u1 {hyp}\nu2 D E\n")
    assert main([str(tmp_path), "--stages", "measure"]) == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["dev"]["wer"] == 0.0
    assert scores["test"]["wer"] == pytest.approx(20.0)  # 1 of 5 words, in percent
    assert scores["test"]["num_utterances"] == 2
    assert (tmp_path / "out" / "test" / "scores.json").is_file()
    out = capsys.readouterr().out
    assert "WER %" in out and "test" in out  # the table is printed after the run


@pytest.mark.parametrize(("normalise", "wer"), [("", 100.0), ("uppercase: true\nstrip_punctuation: true\n", 0.0)])
def test_measure_text_normaliser_is_configured(tmp_path: Path, normalise: str, wer: float) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "metrics.yaml").write_text(
        f"inference_dir: out\nout_file: out/scores.json\n{normalise}"
    )
    (tmp_path / "out" / "test").mkdir(parents=True)
    (tmp_path / "out" / "test" / "ref.txt").write_text("u1 Hello, world\n")
    (tmp_path / "out" / "test" / "hyp.txt").write_text("u1 HELLO WORLD\n")
    assert main([str(tmp_path), "--stages", "measure"]) == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["test"]["wer"] == pytest.approx(wer)  # unnormalised, both words differ


def _two_sets_one_incomplete(tmp_path: Path, allow: str) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "metrics.yaml").write_text(
        f"inference_dir: out\nout_file: out/scores.json\n{allow}"
    )
    for name, hyp in (("dev", "u1 A B\nu2 C\n"), ("test", "u1 A B\n")):  # test lacks u2
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / "ref.txt").write_text("u1 A B\nu2 C\n")
        (tmp_path / "out" / name / "hyp.txt").write_text(hyp)


def test_measure_refuses_a_set_with_missing_hypotheses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_sets_one_incomplete(tmp_path, "")
    assert main([str(tmp_path), "--stages", "measure"]) == 2
    err = capsys.readouterr().err
    assert "1 test set(s) incomplete, nothing was scored (allow_incomplete is false in " in err
    assert "metrics.yaml" in err and "- test (" in err and "1 of 2 reference utterances" in err
    assert "(u2)" in err and "- dev" not in err
    assert not list((tmp_path / "out").rglob("scores.json"))  # not even dev's


def test_measure_scores_an_incomplete_set_when_allowed_and_flags_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_sets_one_incomplete(tmp_path, "allow_incomplete: true\n")
    assert main([str(tmp_path), "--stages", "measure"]) == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["dev"]["complete"] and not scores["test"]["complete"]
    assert scores["test"]["wer"] == pytest.approx(33.33)  # u2's word counted as deleted
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "INCOMPLETE" in line][0].startswith("test")


def test_measure_without_inference_says_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "metrics.yaml").write_text("inference_dir: out\n")
    with pytest.raises(StageError, match=r"inference_dir in conf/metrics.yaml is out, which does "
                       r"not exist\. The infer stage writes it"):
        ASRSystem(tmp_path).run(["measure"])
    (tmp_path / "out").mkdir()  # there, but infer wrote no set into it
    with pytest.raises(FileNotFoundError, match="infer stage"):
        ASRSystem(tmp_path).run(["measure"])


def test_collect_stats_without_stats_file_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "training.yaml").write_text(
        "exp_dir: e\ntokenizer: t\ndata: {train: nowhere, valid: nowhere}\n"
    )
    assert ASRSystem(tmp_path).run(["collect_stats"]) == ["collect_stats"]


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    class NoNetwork:
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            raise AssertionError("the Hub was contacted")

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    monkeypatch.setattr(huggingface_hub, "HfApi", NoNetwork)


@pytest.mark.parametrize("stage", ["upload_model", "upload_demo"])
def test_upload_without_token_fails_before_the_network(
    tmp_path: Path, no_token: None, capsys: pytest.CaptureFixture[str], stage: str
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "publish.yaml").write_text("repo_id: me/model\ndemo_repo_id: me/demo\n")
    (tmp_path / "exp" / "packed").mkdir(parents=True)  # what the upload stages read
    (tmp_path / "exp" / "demo").mkdir()
    with pytest.raises(PublishError, match="HF_TOKEN"):
        ASRSystem(tmp_path).run([stage])
    assert main([str(tmp_path), "--stages", stage]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert "HF_TOKEN" in (tmp_path / "exp" / "logs" / f"{stage}.log").read_text()


def test_publish_stages_pack_upload_and_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import huggingface_hub
    import yaml
    from espnet_infer import Speech2Text
    from espnet_publish.testing import tiny_asr_model_folder

    from tests.espnet_publish._hub_server import LocalHub

    tiny_asr_model_folder(tmp_path / "exp" / "train" / "model")
    (tmp_path / "exp" / "train" / "images").mkdir()
    (tmp_path / "exp" / "train" / "images" / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "inference.yaml").write_text(
        "model_dir: exp/train/model\ntest_sets: {test: data/test}\noutput_dir: exp/infer\n"
        "decode: {beam_size: 3}\n"
    )
    with LocalHub(token="hf_tok_xyz") as hub:
        (tmp_path / "conf" / "publish.yaml").write_text(
            f"model_name: tiny\nrepo_id: me/tiny\ndemo_repo_id: me/tiny-demo\nendpoint: {hub.url}\n"
            "datasets: [openslr/librispeech_asr]\n"
        )
        monkeypatch.setenv("HF_TOKEN", "hf_tok_xyz")
        stages = ["pack_model", "pack_demo", "upload_model", "upload_demo"]
        assert main([str(tmp_path), "--stages", *stages]) == 0
        packed = tmp_path / "exp" / "packed"
        resolved = yaml.safe_load((packed / "inference.yaml").read_text())
        assert resolved["model_dir"] == "." and resolved["decode"]["beam_size"] == 3
        assert resolved["decode"]["method"] == "beam_search"  # defaults filled in
        assert (packed / "images" / "loss.png").is_file()
        assert (packed / "model.safetensors").is_file()
        card = huggingface_hub.ModelCard.load(packed / "README.md")
        assert card.data.datasets == ["openslr/librispeech_asr"]
        assert card.data.library_name == "espnet-infer"
        Speech2Text(packed)  # loads
        files = hub.repos[("model", "me/tiny")].files["main"]
        assert files == {p.relative_to(packed).as_posix(): p.read_bytes()
                         for p in packed.rglob("*") if p.is_file()}
        assert ("space", "me/tiny-demo") in hub.repos
        logs = "".join(p.read_text() for p in (tmp_path / "exp" / "logs").glob("*.log"))
        assert "hf_tok_xyz" not in logs and hub.url in logs
        # a second upload is refused: the repository exists and overwrite is not set
        assert main([str(tmp_path), "--stages", "upload_model"]) == 2
        assert "already exists" in (tmp_path / "exp" / "logs" / "upload_model.log").read_text()


@pytest.mark.parametrize(("backend", "runs"), [("mpi", True), ("local", False)])
def test_infer_runs_on_every_rank_only_under_mpi(tmp_path: Path, backend: str, runs: bool) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "inference.yaml").write_text(
        f"model_dir: m\ntest_sets: {{t: d}}\noutput_dir: o\nparallel: {{backend: {backend}}}\n"
    )
    system = ASRSystem(tmp_path)
    assert system.runs_on_every_rank("infer") is runs
    assert system.runs_on_every_rank("train") and not system.runs_on_every_rank("measure")


def test_upload_without_repo_id_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "publish.yaml").write_text("model_name: m\n")
    (tmp_path / "exp" / "packed").mkdir(parents=True)
    assert main([str(tmp_path), "--stages", "upload_model"]) == 2
    assert "publish.yaml: set repo_id (owner/name) to upload" in capsys.readouterr().err


@pytest.mark.parametrize("with_lm", [True, False])
def test_measure_reports_the_wer_without_lm_beside_the_fused_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], with_lm: bool
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "metrics.yaml").write_text("inference_dir: out\nout_file: out/scores.json\n")
    lm = "  lm: lm/model\n  lm_weight: 0.5\n" if with_lm else ""
    (conf / "inference.yaml").write_text(
        f"model_dir: m\ntest_sets: {{test: data/test}}\noutput_dir: out\n"
        f"decode:\n  method: beam_search\n{lm}"
    )
    for folder, hyp in (("out/test", "A B C"), ("out/no_lm/test", "A X C")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "ref.txt").write_text("u1 A B C\nu2 D E\n")
        (tmp_path / folder / "hyp.txt").write_text(f"u1 {hyp}\nu2 D E\n")
    assert main([str(tmp_path), "--stages", "measure"]) == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["test"]["wer"] == 0.0  # the configured decoding (with the LM)
    assert list(scores) == ["test"]  # no_lm/ is not a test set
    out = capsys.readouterr().out
    if with_lm:
        assert scores["test"]["wer_no_lm"] == pytest.approx(20.0)
        assert "WER no LM" in out
    else:  # a no_lm/ left from an earlier run with an LM is stale: not reported
        assert "wer_no_lm" not in scores["test"] and "WER no LM" not in out
