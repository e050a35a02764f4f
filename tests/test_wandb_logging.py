"""W&B logging: offline runs hold the summary, config and sample table; disabled writes nothing.

The offline run's ``run-<id>.wandb`` file is read back record by record (a
LevelDB-style log of protobuf ``Record`` messages, the format ``wandb sync``
uploads), so the test checks what would reach the server, not just that a
folder appeared.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from synthetic_runs import base_config, make_run  # noqa: E402

from hsd_bench import wandb_logging  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def read_wandb_records(path: Path) -> list:
    """Records of a .wandb file: 7-byte header, then 32 KiB blocks of (crc32, length, type) chunks."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    block, pos, buf, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too short for a chunk header: zero padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def _summary_items(records) -> dict:
    items = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            for u in r.summary.update:
                if u.key:
                    items[u.key] = json.loads(u.value_json)
    return items


def _run_and_config(records):
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    return run, config


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path / "runs", base_config(**{"dataset.limit": 2, "max_new_tokens": 16}))


def _load(run_dir: Path):
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "rows.jsonl").read_text().splitlines()]
    return summary, rows


def test_offline_run_holds_summary_config_and_table(tmp_path, run_dir, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    summary, rows = _load(run_dir)
    cfg = dict(summary["config"], wandb={"mode": "offline", "project": "hsd-test", "group": "sweep-7"})

    local = wandb_logging.log_run(cfg, summary, rows, run_dir)

    assert local is not None and Path(local).is_dir()
    assert Path(local).resolve().is_relative_to((tmp_path / "wb").resolve()), "WANDB_DIR must be honoured"
    (log_file,) = Path(local).glob("run-*.wandb")
    records = read_wandb_records(log_file)
    run, config = _run_and_config(records)
    assert (run.project, run.run_group, run.job_type) == ("hsd-test", "sweep-7", "layerskip")
    assert run.display_name == f"layerskip-humaneval-{run_dir.name}"
    assert config["method"]["name"] == "layerskip" and config["run_dir"] == str(run_dir)

    items = _summary_items(records)
    ls, ar = summary["methods"]["layerskip"], summary["methods"]["autoregressive"]
    assert items["speedup_vs_ar"] == pytest.approx(ls["speedup_vs_ar"])
    assert items["tokens_per_s"] == pytest.approx(ls["tokens_per_s"])
    assert items["layerskip/acceptance_rate"] == pytest.approx(ls["acceptance_rate"])
    assert items["autoregressive/tokens_per_s"] == pytest.approx(ar["tokens_per_s"])
    assert items["layerskip/scores/pass@1"] == pytest.approx(ls["scores"]["pass@1"])
    assert items["run_hash"] == run_dir.name

    (table_file,) = Path(local).glob("files/media/table/samples_*.table.json")
    table = json.loads(table_file.read_text())
    assert len(table["data"]) == len(rows) == 4
    cols = table["columns"]
    assert {"sample_id", "method", "tokens_per_s", "acceptance_rate", "output_text", "scores/pass@1"} <= set(cols)
    assert "output_ids" not in cols
    by_col = [dict(zip(cols, r, strict=True)) for r in table["data"]]
    assert [(r["sample_id"], r["method"]) for r in by_col] == [(r["sample_id"], r["method"]) for r in rows]


def _run_isolated(code: str, tmp_path: Path, env_extra: dict) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with no W&B credentials and no terminal to prompt on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path / "home"), NETRC=str(tmp_path / "home" / "no-netrc"), PYTHONPATH=str(REPO),
               **env_extra)
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


CALL = """
    import json, sys
    from pathlib import Path
    from hsd_bench import wandb_logging
    d = Path({run_dir!r})
    summary = json.loads((d / "summary.json").read_text())
    rows = [json.loads(l) for l in (d / "rows.jsonl").read_text().splitlines()]
    cfg = dict(summary["config"], wandb={{"mode": {mode!r}, "project": "hsd-test"}})
    out = wandb_logging.log_run(cfg, summary, rows, d)
    print("RESULT", out)
    print("IMPORTED", "wandb" in sys.modules)
"""


def test_disabled_imports_nothing_and_writes_nothing(tmp_path, run_dir):
    before = {p for p in tmp_path.rglob("*")}
    proc = _run_isolated(CALL.format(run_dir=str(run_dir), mode="disabled"), tmp_path,
                         {"WANDB_DIR": str(tmp_path / "wb")})
    assert proc.returncode == 0, proc.stderr
    assert "RESULT None" in proc.stdout
    assert "IMPORTED False" in proc.stdout, "wandb must not even be imported when disabled"
    assert {p for p in tmp_path.rglob("*")} - before <= {tmp_path / "home"}, "disabled must write no files"


def test_online_without_credentials_falls_back_to_offline_without_prompting(tmp_path, run_dir):
    proc = _run_isolated(CALL.format(run_dir=str(run_dir), mode="online"), tmp_path,
                         {"WANDB_DIR": str(tmp_path / "wb")})
    assert proc.returncode == 0, proc.stderr
    assert "no W&B credentials" in proc.stderr and "logging offline" in proc.stderr
    result = proc.stdout.split("RESULT ", 1)[1].split()[0]
    assert Path(result).name.startswith("offline-run-"), result
    assert list(Path(result).glob("run-*.wandb"))


def test_bad_mode_is_a_clear_error(run_dir):
    summary, rows = _load(run_dir)
    cfg = dict(summary["config"], wandb={"mode": "onlin"})
    with pytest.raises(ValueError, match=r"wandb.mode='onlin' is not one of online, offline, disabled"):
        wandb_logging.log_run(cfg, summary, rows, run_dir)


def test_group_defaults_to_the_hydra_sweep_dir(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from hsd_bench.config import register_schemas

    register_schemas()
    sweep = tmp_path / "multirun" / "2026-01-01_12-00-00"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra.sweep.dir={sweep}", "hydra.mode=MULTIRUN"],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        assert wandb_logging.sweep_group({"group": None}) == "2026-01-01_12-00-00"
        assert wandb_logging.sweep_group({"group": "mine"}) == "mine"
    finally:
        HydraConfig.instance().cfg = None
    assert wandb_logging.sweep_group({}) is None


def test_summary_metrics_flattening():
    summary = {"method": "hispec", "run_hash": "abc", "lossless": True,
               "methods": {"hispec": {"tokens_per_s": 10.0, "acceptance_per_level": {"mid": 0.5, "target": 0.8},
                                      "acceptance_per_position": [0.9, 0.8]},
                           "autoregressive": {"tokens_per_s": 5.0}}}
    m = wandb_logging.summary_metrics(summary)
    assert m["tokens_per_s"] == 10.0 and m["hispec/tokens_per_s"] == 10.0
    assert m["autoregressive/tokens_per_s"] == 5.0
    assert m["hispec/acceptance_per_level/mid"] == 0.5
    assert "hispec/acceptance_per_position" not in m  # lists go to the table/rows, not the summary
    assert m["run_hash"] == "abc" and m["lossless"] is True
