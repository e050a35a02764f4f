"""Every named sweep in conf/experiment/ composes, and so does every job it expands to.

Why: a typo in an experiment (a key the schema does not have, a method that
does not exist) should fail here in a second, not on a cluster after the
array was queued. The sweep's jobs are expanded the way Hydra's basic sweeper
does (cartesian product of ``hydra.sweeper.params``) and each job's config is
composed against the run schema.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hsd_bench.sweep_jobs import sweep_jobs

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
FIGURE_EXPERIMENTS = {"exit_layer", "draft_length", "verification_period", "method_comparison", "verifier_rules"}


@pytest.fixture(scope="module", autouse=True)
def _hydra():
    from hsd_bench.config import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
    _compose_cached.cache_clear()


@functools.lru_cache(maxsize=None)
def _compose_cached(overrides: tuple[str, ...], hydra_cfg: bool):
    return compose("config", overrides=list(overrides), return_hydra_config=hydra_cfg)


def _compose(overrides: list[str], hydra_cfg: bool = False):
    return _compose_cached(tuple(overrides), hydra_cfg)


def _jobs(experiment: str) -> list[list[str]]:
    """The override lists of the sweep's jobs, as the basic sweeper expands them."""
    cfg = _compose([f"+experiment={experiment}"], hydra_cfg=True)
    grid = OmegaConf.to_container(cfg.hydra.sweeper.params)
    return [[f"+experiment={experiment}", *job] for job in sweep_jobs(grid)]


def test_sweep_jobs_multiplies_the_grid_by_the_command_line_as_run_py_m_does():
    """The experiment's grid first, the command line's sweeps multiplying it, a plain override in
    every job, and a command-line value replacing the grid's for the same key (Hydra's rule)."""
    assert sweep_jobs({"method": "ar,hispec"}, ["exit=8,16", "seed=3"]) == [
        ["method=ar", "exit=8", "seed=3"], ["method=ar", "exit=16", "seed=3"],
        ["method=hispec", "exit=8", "seed=3"], ["method=hispec", "exit=16", "seed=3"]]
    assert sweep_jobs(None, ["seed=3"]) == [["seed=3"]]
    assert sweep_jobs({"method": "ar,hispec"}, ["method=layerskip"]) == [["method=layerskip"]]


def test_every_figure_has_an_experiment():
    assert FIGURE_EXPERIMENTS <= set(EXPERIMENTS), f"missing: {FIGURE_EXPERIMENTS - set(EXPERIMENTS)}"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment):
    cfg = _compose([f"+experiment={experiment}"], hydra_cfg=True)
    assert cfg.results_dir == f"runs/{experiment}", "each figure's sweep writes to its own results dir"
    assert cfg.wandb.group == experiment
    assert cfg.wandb.mode == "disabled", "an experiment must not switch W&B on by itself"
    assert cfg.hydra.sweeper.params, "an experiment is a sweep: hydra.sweeper.params must be set"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_job_of_the_sweep_composes(experiment):
    jobs = _jobs(experiment)
    assert len(jobs) >= 2
    seen = set()
    for overrides in jobs:
        cfg = _compose(overrides)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        assert resolved["method"]["name"] in {"autoregressive", "vanilla_sd", "layerskip", "hispec", "hierarchy"}
        seen.add(repr(sorted(overrides)))
    assert len(seen) == len(jobs)


def test_sweep_values_reach_the_config():
    """Spot checks that the swept keys are the ones the runner reads."""
    by_exit = {_compose(j).method.exit for j in _jobs("exit_layer")}
    assert by_exit == {1, 2, 3, 4, 6, 8, 12, 16}
    period = {(c.method.name, c.method.period, c.method.flush_on_mismatch)
              for c in map(_compose, _jobs("verification_period"))}
    assert {name for name, _, _ in period} == {"hispec"} and len(period) == 14
    rules = {(c.verifier, c.decoding.temperature) for c in map(_compose, _jobs("verifier_rules"))}
    assert {r for r, _ in rules} == {"tokenwise", "block", "hsd", "hsd_official"}
    assert {t for _, t in rules} == {1.0}, "verifier rules are compared under sampling"
    combos = {(c.method.name, c.dataset.name) for c in map(_compose, _jobs("method_comparison"))}
    assert {d for _, d in combos} == {"humaneval", "gsm8k", "cnn_dm"} and len(combos) == 12


def test_unknown_key_in_a_sweep_fails_at_compose_time():
    with pytest.raises(Exception, match="not_a_key"):
        _compose(["+experiment=exit_layer", "method.not_a_key=3"])


@pytest.mark.parametrize("launcher", ["slurm", "local"])
def test_launcher_configs_compose(launcher):
    cfg = _compose([f"hydra/launcher={launcher}"], hydra_cfg=True)
    lc = cfg.hydra.launcher
    assert lc.timeout_min > 0 and lc.cpus_per_task >= 1 and lc.mem_gb >= 1
    if launcher == "slurm":
        assert lc._target_.endswith("SlurmLauncher")
        for key in ("partition", "gpus_per_node", "array_parallelism"):
            assert key in lc
        over = _compose(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
                         "hydra.launcher.timeout_min=30", "hydra.launcher.array_parallelism=8"], hydra_cfg=True)
        assert (over.hydra.launcher.partition, over.hydra.launcher.gpus_per_node) == ("gpu", 1)
        assert (over.hydra.launcher.timeout_min, over.hydra.launcher.array_parallelism) == (30, 8)
    else:
        assert lc._target_.endswith("LocalLauncher")
