"""`python -m visionr1 run PARAMS --dry-run`: every check `run` makes, then the plan, nothing written;
the validation rules it relies on (benchmark files, batch arithmetic, W&B login); and the params'
wandb_mode reaching the processes that log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import test_runner
from fixtures_layouts import write_mathverse_tsv, write_mathvista_parquet, write_rl_converter_layout
from fixtures_released import image_bytes, square, write_sharegpt_fixture

from visionr1 import benchmarks, env, runner, validate
from visionr1.params import declarations, resolve

EIGHT, ONE, ONE_3B = "params/qwen2.5-vl-7b-8gpu.yaml", "params/qwen2.5-vl-7b-1gpu-lora.yaml", \
    "params/qwen2.5-vl-3b-1gpu-lora.yaml"


def write_mmmath(root: Path) -> Path:
    """THU-KEG/MM_Math: MM_Math.jsonl (question, file_name, solution, year, difficult, knowledge) with
    the images of Image.zip beside it."""
    (root / "MM_Math").mkdir(parents=True, exist_ok=True)
    square("red").save(root / "MM_Math" / "q0.png")
    rec = {"question": "Find the side.", "file_name": "q0.png", "solution": "So the side is $\\boxed{6cm}$.",
           "year": "八年级上学期", "difficult": "easy", "knowledge": ["Properties of Shapes"]}
    (root / "MM_Math.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    return root


def write_dynamath_sample(root: Path) -> Path:
    """DynaMath/DynaMath_Sample as the Hub has it: data/sample_variant{K}-*.parquet, decoded_image an
    Image struct."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    for k in (1, 2):
        rows = [{"id": "1", "question": "What is the slope?", "image": f"images/1_{k}.png",
                 "decoded_image": {"bytes": image_bytes("blue"), "path": None}, "ground_truth": f"{k}.5",
                 "answer_type": "float", "subject": "AG", "knowledge_level": "high school"}]
        pq.write_table(pa.Table.from_pylist(rows), root / "data" / f"sample_variant{k}-00000-of-00001.parquet")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data/ folder in the real layouts: the two released sets and the four paper benchmarks."""
    root = tmp_path_factory.mktemp("data")
    write_rl_converter_layout(root / "Vision-R1-rl")
    write_sharegpt_fixture(root / "Vision-R1-cold", with_problems=False)
    write_mathvista_parquet(root / "MathVista")
    write_mathverse_tsv(root / "MathVerse")
    write_mmmath(root / "MM_Math")
    write_dynamath_sample(root / "DynaMath_Sample")
    return root


def data_sets(data: Path, **benches: str) -> list[str]:
    """--set arguments pointing the real params at `data` (benchmark paths overridable)."""
    paths = {"mathvista": data / "MathVista", "mathverse": data / "MathVerse", "mmmath": data / "MM_Math",
             "dynamath": data / "DynaMath_Sample", **benches}
    named = ", ".join(f"{b}: {json.dumps(str(p))}" for b, p in paths.items())
    out = []
    for item in (f"rl_data_dir={data / 'Vision-R1-rl'}", f"cold_data_dir={data / 'Vision-R1-cold'}",
                 f"sft_data={data / 'Vision-R1-cold'}", f"eval_benchmarks={{{named}}}"):
        out += ["--set", item]
    return out


def dry_run(tmp_path, capsys, *args: str) -> tuple[int, str, str]:
    code = runner.main([*args, "--set", f"output_root={tmp_path / 'out'}", "--dry-run"])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture()
def no_wandb_login(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_the_data_fixtures_load_as_the_benchmarks_they_stand_for(data):
    for bench, folder in (("mathvista", "MathVista"), ("mathverse", "MathVerse"), ("mmmath", "MM_Math"),
                          ("dynamath", "DynaMath_Sample")):
        assert len(benchmarks.load(bench, data / folder)) >= 1, bench


def test_dry_run_of_the_8gpu_recipe_prints_the_plan_and_writes_nothing(data, tmp_path, capsys, no_wandb_login):
    code, out, err = dry_run(tmp_path, capsys, EIGHT, *data_sets(data))
    assert code == 0, out + err
    print(out)  # the plan, for the record (pytest -s)
    # 02 on all 8 GPUs with accelerate; 03 trains on 6 and serves vLLM on the other 2 (tensor parallel),
    # started and stopped per stage
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 python -m accelerate.commands.launch" in out
    assert "--num_processes 8" in out and "-m visionr1.sft" in out
    assert out.count("start vLLM: CUDA_VISIBLE_DEVICES=6,7 python -m trl.scripts.vllm_serve") == 2
    assert "--tensor-parallel-size 2" in out
    assert out.count("train: CUDA_VISIBLE_DEVICES=0,1,2,3,4,5 python -m accelerate.commands.launch") == 2
    assert "stop vLLM (port 8000) when stage 1 ends" in out and "stop vLLM (port 8000) when stage 2 ends" in out
    assert "qwen2.5-vl-7b/02_cold_start_sft/final --tensor" in out  # stage 1 serves the CI model
    assert "qwen2.5-vl-7b/03_grpo_ptst/stage1/final --tensor" in out  # stage 2 serves stage 1's final
    # the batch arithmetic, and every training stage fits 80 GB by preflight
    assert "8 per device x 6 process(es) x 2 accumulation = 96 completions = 6 prompts per step" in out
    assert "= 96 completions = 12 prompts per step" in out
    assert out.count("fits 80 GiB") == 3 and "DOES NOT FIT" not in out
    assert "01_cold_start_data: skipped (skip_stages)" in out
    assert "mathvista" in out and "dynamath" in out
    # W&B online without a login: a warning, not a failure
    assert "warning: wandb_mode is online but no W&B login" in out
    assert not (tmp_path / "out").exists()  # no run folder, no params.yaml


@pytest.mark.parametrize("files", [[ONE], [ONE, ONE_3B]])
def test_dry_run_passes_on_the_one_gpu_recipes(files, data, tmp_path, capsys, no_wandb_login):
    code, out, err = dry_run(tmp_path, capsys, *files, *data_sets(data))
    assert code == 0, out + err
    assert out.count("fits") == 3 and "DOES NOT FIT" not in out  # 02 and both PTST stages
    assert "rollouts by HF generate" in out and "vllm_serve" not in out
    assert not (tmp_path / "out").exists()


def test_a_missing_benchmark_file_is_named_with_its_key(data, tmp_path, capsys, no_wandb_login):
    empty = tmp_path / "MM_Math_empty"
    empty.mkdir()
    cases = {  # mmmath path -> words the problem must contain
        str(tmp_path / "nowhere"): "does not exist",
        str(empty): "no data file in",  # a folder in none of the layouts MM-Math's loader reads
    }
    for path, words in cases.items():
        code, out, err = dry_run(tmp_path, capsys, EIGHT, *data_sets(data, mmmath=path))
        assert code == 2 and f"eval_benchmarks.mmmath = {path!r} (from --set): " in err and words in err, err
        assert "nothing was run or written" in err
    assert not (tmp_path / "out").exists()


def test_released_data_with_the_nano_default_benchmark_is_refused(data, tmp_path, capsys, no_wandb_login):
    # the issue's case: eval_benchmarks {"nano": ""} means 00's test.jsonl, which released data never writes
    code, out, err = dry_run(tmp_path, capsys, EIGHT, *data_sets(data), "--set", "eval_benchmarks={nano: ''}")
    assert code == 2 and "eval_benchmarks.nano = '' (from --set): \"\" means 00's test.jsonl, which 00 writes only " \
        "for data_source: nano" in err


def test_every_problem_is_listed_at_once(data, tmp_path, capsys, no_wandb_login):
    code, out, err = dry_run(tmp_path, capsys, EIGHT, *data_sets(data, dynamath=str(tmp_path / "nowhere")),
                             "--set", "rl_batch_size=6", "--set", "rl_deepspeed=zero4")
    assert code == 2
    # 6 x 6 x 2 = 72 completions per step hold the groups of 8 (stage 2), not those of 16 (stage 1)
    assert "3 problem(s)" in err and "eval_benchmarks.dynamath = " in err and "zero4" in err
    assert err.count("rl_batch_size = 6") == 1
    assert "stage 1: per-device batch 6 x 6 process(es) x grad_accum 2 = 72" in err


def test_a_stage_that_does_not_fit_the_stated_gpu_is_a_problem(data, tmp_path, capsys, no_wandb_login):
    # the old 8-GPU setting: a whole group of 16 per GPU in stage 2 (16 x 10,496 tokens, 16 images of 1 MP)
    code, out, err = dry_run(tmp_path, capsys, EIGHT, *data_sets(data), "--set", "rl_batch_size=16",
                             "--set", "rl_grad_accum=1", "--set", "rl_num_gpus=7", "--set", "rl_vllm_gpus=1")
    assert code == 2 and "03 RL stage 2 (8192 x 8, full): estimated 90.8 GiB per GPU does not fit" in err


def test_params_check_says_what_it_does_not_check():
    r = subprocess.run([sys.executable, "-m", "visionr1", "params", "--help"], capture_output=True, text=True,
                       cwd=env.PROJECT_ROOT, check=True)
    text = " ".join(r.stdout.split())
    assert "Checks keys and declared types only" in text and "run PARAMS... --dry-run" in text


# ---------------------------------------------------------------------------------------------
# validate.problems: the batch rule (table-driven)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sets, refused", [
    # 8 completions per device, one process, no accumulation: whole groups of 8, 8 and 4
    (["rl_batch_size=8"], False),
    # a per-device batch smaller than a group, accumulated to whole groups (TRL's generation batch)
    (["rl_batch_size=4", "rl_grad_accum=2"], False),
    (["rl_batch_size=2", "rl_num_gpus=2", "rl_grad_accum=2"], False),
    # 6 completions per step cannot hold groups of 8
    (["rl_batch_size=6"], True),
    # 4 per device x 1 x 1 = 4: half a group of stages 1 and 2
    (["rl_batch_size=4"], True),
])
def test_rl_batch_must_hold_whole_groups_per_step(sets, refused):
    root = env.PROJECT_ROOT
    r = resolve([root / "params" / "nano.yaml"], sets, declarations(runner.stage_notebooks(env.NOTEBOOKS_DIR)))
    found = [p for p in validate.problems(r.values, r.sources, ["03_grpo_ptst"]) if "completions per step" in p]
    assert bool(found) == refused, found


def test_the_batch_rule_names_each_factor():
    v = {"rl_stages": [{"steps": 1, "max_completion_length": 8, "num_generations": 16}], "rl_batch_size": 8,
         "rl_num_gpus": 3, "rl_grad_accum": 1}
    (msg,) = [p for p in validate.problems(v, {"rl_batch_size": "x.yaml"}, []) if "completions" in p]
    assert msg.startswith("rl_batch_size = 8 (from x.yaml): stage 1: per-device batch 8 x 3 process(es) x "
                          "grad_accum 1 = 24 completions per step is not a multiple of num_generations 16")
    assert validate.rl_generation_batch({**v, "rl_num_gpus": 6, "rl_grad_accum": 2}, v["rl_stages"][0]) == (8, 6, 2, 96)


# ---------------------------------------------------------------------------------------------
# The run folder: the refusals run would meet, found by the dry run
# ---------------------------------------------------------------------------------------------
PARAMS = ('run_name: str = "t"  # run\noutput_root: str = "outputs"  # root\n'
          "skip_stages: list[str] = []  # stages to skip\n" 'tag: str = "a"  # a setting every stage reads\n'
          'wandb_mode: str = "offline"  # W&B mode\n')


def notebook(path: Path, body: str) -> None:
    test_runner.notebook(path, body, PARAMS)


@pytest.fixture()
def stages(tmp_path) -> Path:
    d = tmp_path / "notebooks"
    d.mkdir()
    body = "from pathlib import Path\nr = Path(output_root) / run_name\nr.mkdir(parents=True, exist_ok=True)\n"
    for name in ("00_first", "01_second", "02_third"):
        notebook(d / f"{name}.ipynb", body + f"open(r / 'log', 'a').write('{name[:2]}\\n')")
    return d


def run(stages: Path, tmp_path: Path, *args: str) -> int:
    return runner.main(["--notebooks", str(stages), "--set", f"output_root={tmp_path / 'out'}", *args])


def test_dry_run_meets_the_refusals_of_a_finished_run_folder(stages, tmp_path, capsys):
    assert run(stages, tmp_path) == 0
    rd = tmp_path / "out" / "t"
    capsys.readouterr()
    # other params into finished stages
    assert run(stages, tmp_path, "--set", "tag=b", "--dry-run") == 2
    assert "holds stages finished with other params: 00_first (tag)" in capsys.readouterr().err
    # --resume: every stage done with these params, nothing would run
    assert run(stages, tmp_path, "--resume", "--dry-run") == 0
    assert capsys.readouterr().out.count("done earlier with the same params and inputs, skipped (--resume)") == 3
    # 00 re-run alone leaves 01 and 02 stale: 02 alone would start on a stale 01
    assert run(stages, tmp_path, "--only", "00") == 0
    capsys.readouterr()
    assert run(stages, tmp_path, "--only", "02", "--dry-run") == 2
    assert "02_third would start on stale inputs: 01_second (00_first re-ran" in capsys.readouterr().err
    assert run(stages, tmp_path, "--from", "01", "--dry-run") == 0  # 01 runs first, then 02 reads a fresh 01
    before = {p: p.stat().st_mtime_ns for p in rd.rglob("*")}
    assert run(stages, tmp_path, "--set", "tag=c", "--overwrite", "--dry-run") == 0
    assert {p: p.stat().st_mtime_ns for p in rd.rglob("*")} == before  # a dry run moves and writes nothing


# ---------------------------------------------------------------------------------------------
# W&B: the params' mode reaches the kernel and the processes it launches (no network)
# ---------------------------------------------------------------------------------------------
MODE_PROBE = ("import os, subprocess, sys\nfrom visionr1 import env\nenv.setup_environment(wandb_mode)\n"
              "child = subprocess.run([sys.executable, '-c', 'import os; print(os.environ[\"WANDB_MODE\"])'],\n"
              "                       capture_output=True, text=True).stdout.strip()\n"
              "open(output_root + '/mode.txt', 'w').write(os.environ['WANDB_MODE'] + ' ' + child)")


def test_wandb_mode_from_params_wins_over_an_exported_one(tmp_path, monkeypatch, capsys):
    d = tmp_path / "notebooks"
    d.mkdir()
    notebook(d / "00_probe.ipynb", MODE_PROBE)
    (tmp_path / "out").mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")  # as the runner's own default, or a user's export, leaves it
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a login (never used: nothing here talks to W&B)
    assert run(d, tmp_path, "--set", "wandb_mode=online") == 0
    # the kernel (where the stage's W&B mirror runs) and a process it launches (a trainer) both see online
    assert (tmp_path / "out" / "mode.txt").read_text() == "online online"
    assert run(d, tmp_path, "--set", "wandb_mode=disabled", "--overwrite") == 0
    assert (tmp_path / "out" / "mode.txt").read_text() == "disabled disabled"


def test_wandb_online_without_a_login_logs_offline_and_says_so(tmp_path, monkeypatch, capsys, no_wandb_login):
    d = tmp_path / "notebooks"
    d.mkdir()
    notebook(d / "00_probe.ipynb", MODE_PROBE)
    (tmp_path / "out").mkdir()
    assert run(d, tmp_path, "--set", "wandb_mode=online") == 0
    assert (tmp_path / "out" / "mode.txt").read_text() == "offline offline"
    cap = capsys.readouterr()
    assert "warning: wandb_mode is online but no W&B login" in cap.out  # the runner, before any stage
    assert "logging offline instead" in cap.err  # the stage itself


def test_a_netrc_entry_for_the_wandb_host_is_a_login(tmp_path, monkeypatch, no_wandb_login):
    from visionr1 import tracking

    rc = tmp_path / "netrc"
    rc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert tracking.wandb_login_missing() is not None  # NETRC still points at the missing file
    monkeypatch.setenv("NETRC", str(rc))
    assert tracking.wandb_login_missing() is None
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")  # a login for another host is none here
    assert "wandb.example.org" in tracking.wandb_login_missing()
    assert tracking.effective_mode("online", warn=lambda m: None) == "offline"
    assert tracking.effective_mode("disabled") == "disabled"


# ---------------------------------------------------------------------------------------------
# Inputs earlier stages write: made by a stage of this run, or on disk
# ---------------------------------------------------------------------------------------------
def test_an_ablation_needs_the_run_it_is_put_on(tmp_path, capsys):
    root = env.PROJECT_ROOT / "params"
    files = [str(root / "nano.yaml"), str(root / "ablation-zero.yaml")]
    code, out, err = dry_run(tmp_path, capsys, *files)
    assert code == 2
    assert "rl_start = 'base'" in err and "run 00_data of nano first" in err  # the base model 00 records
    assert "rl_data = None" in err and "run nano (rl_source_run) up to 00_data first" in err
    assert "eval_benchmarks.nano = '' (from default): \"\" means 00's test.jsonl, and " in err  # the main run's
    main = tmp_path / "out" / "nano" / "00_data"  # what the main run's 00 leaves
    (main / "rl").mkdir(parents=True)
    (main / "test.jsonl").write_text("")
    (main / "metrics.json").write_text(json.dumps({"base_model_path": "nano"}))
    code, out, err = dry_run(tmp_path, capsys, *files)
    assert code == 0, err
    assert "[1/6] 00_data: skipped (skip_stages)" in out and "[4/6] 03_grpo_ptst: papermill" in out


def test_02_alone_needs_01s_set_or_sft_data(tmp_path, capsys):
    nano = str(env.PROJECT_ROOT / "params" / "nano.yaml")
    code, out, err = dry_run(tmp_path, capsys, nano, "--only", "02")
    assert code == 2 and "sft_data = None" in err and "02 reads 01's cold/sft.jsonl, but 01 does not run" in err
    assert "sft_model = None" in err and "'base' needs " in err  # None: the base model 00 records
    code, out, err = dry_run(tmp_path, capsys, nano, "--from", "01")  # 01 writes the set, 00's base is missing
    assert code == 2 and "sft_data" not in err and "sft_model = None" in err
