"""00_data on the released formats, through the runner: loads clean folders, fails past the
bad-row threshold with a report naming file, row and reason; and `data check` from the shell."""

from __future__ import annotations

import json
import subprocess
import sys

from fixtures_released import write_geometry3k_fixture, write_sharegpt_fixture

from visionr1 import env


def run_data(tmp_path, rl, cold, *extra):
    return subprocess.run(
        [sys.executable, "-m", "visionr1", "run", "--only", "00_data", "--set", "data_source=released",
         "--set", f"rl_data_dir={rl}", "--set", f"cold_data_dir={cold}", "--set", "run_name=released",
         "--set", f"output_root={tmp_path / 'out'}",
         "--set", "cold_datasets=[vision_r1_llava_cot_full, vision_r1_mulberry_sft_full]", *extra],
        cwd=env.PROJECT_ROOT, capture_output=True, text=True, timeout=600)


def test_released_folders_load_and_are_described(tmp_path):
    rl = write_geometry3k_fixture(tmp_path / "rl", with_problems=False)
    cold = write_sharegpt_fixture(tmp_path / "cold", with_problems=False)
    proc = run_data(tmp_path, rl, cold)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "out" / "released" / "00_data" / "metrics.json").read_text())
    assert m["sets"]["rl_train"]["rows"] == 3 and m["sets"]["rl_test"]["rows"] == 2
    assert m["sets"]["vision_r1_llava_cot_full"]["rows"] >= 3
    assert all(v["bad_rows"] == 0 for v in m["sets"].values())
    assert (tmp_path / "out" / "released" / "00_data" / "samples.png").exists()


def test_bad_rows_past_threshold_fail_the_stage_with_the_report(tmp_path):
    rl = write_geometry3k_fixture(tmp_path / "rl", with_problems=True)
    cold = write_sharegpt_fixture(tmp_path / "cold", with_problems=False)
    proc = run_data(tmp_path, rl, cold, "--set", "data_max_bad_fraction=0.1")
    assert proc.returncode == 1
    # the failing cell's error names the file, the row and the reason
    assert "stage 00_data failed" in proc.stderr and "DataError" in proc.stderr
    assert "train-00000-of-00001.parquet" in proc.stderr and "corrupt_image" in proc.stderr


def test_data_check_cli(tmp_path):
    rl = write_geometry3k_fixture(tmp_path / "rl", with_problems=True)
    proc = subprocess.run([sys.executable, "-m", "visionr1", "data", "check", str(rl)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "corrupt_image" in proc.stdout and "missing_field" in proc.stdout
    clean = write_geometry3k_fixture(tmp_path / "clean", with_problems=False)
    assert subprocess.run([sys.executable, "-m", "visionr1", "data", "check", str(clean)]).returncode == 0
