"""Trainer configs under the two policies, the job manager's own boundary and the trainers' structure: a config
from a workflow gets its paths resolved inside ComfyUI's folders (or refused), names no code unless the owner
opted in, while the owner's config files keep free paths; job records cannot name programs or environment; the
trainers import without cycles and the training nodes use no private trainer names."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from rewardloop.trainers.config import config_from_dict
from rewardloop.trainers.jobs import JobManager
from rewardloop.trust import CODE_OPT_IN, Policy
from rewardloop.trust.policy import DATASETS, LORAS, MODELS, PROMPTS, RUNS, TEXT_EMBEDDINGS
from trainer_toys import PACK_ROOT, grpo_config, write_dpo_toy


@pytest.fixture
def folders(tmp_path):
    names = {DATASETS: "input", PROMPTS: "input", TEXT_EMBEDDINGS: "input", MODELS: "models", LORAS: "models/loras",
             RUNS: "user"}
    for sub in set(names.values()):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    return {k: [tmp_path / v] for k, v in names.items()}


def _grpo(tmp_path, **reward):
    cfg = grpo_config(tmp_path / "input", tmp_path / "user" / "run")
    cfg["grpo"]["reward"] = reward or {"name": "brightness"}
    return cfg


def test_workflow_paths_resolve_inside_comfyui_folders(tmp_path, folders):
    cfg = _grpo(tmp_path)
    cfg["grpo"]["prompts"] = "prompts.txt"  # a name: looked up in the input folder
    cfg["run"]["lora_dir"] = str(tmp_path / "models" / "loras")
    checked = config_from_dict(cfg, "grpo", policy=Policy.workflow(folders, environ={}))
    assert checked.grpo.prompts == str(tmp_path / "input" / "prompts.txt")
    assert checked.run.data_roots == [str(tmp_path / "input")]  # dataset clips must stay there
    owner = config_from_dict({**cfg, "run": {**cfg["run"], "lora_dir": "/anywhere"}}, "grpo")
    assert owner.grpo.prompts == "prompts.txt" and owner.run.lora_dir == "/anywhere"  # the CLI keeps free paths


@pytest.mark.parametrize("section, key, value, rule", [
    ("grpo", "prompts", "/etc/passwd", "outside"),
    ("grpo", "text_embeddings", "../../emb.safetensors", "'..'"),
    ("run", "lora_dir", "/tmp", "outside"),
    ("run", "output_dir", "/tmp/victim", "outside"),
    ("run", "lora_name", "../x", "not a plain file name"),
    ("model", "config", "/etc/passwd", "shipped config name"),
    ("lora", "init_from", "%2e%2e/x.safetensors", "URL-encoded"),
])
def test_workflow_path_refusals_name_the_key(tmp_path, folders, section, key, value, rule):
    cfg = _grpo(tmp_path)
    cfg[section][key] = value
    with pytest.raises(ValueError) as err:
        config_from_dict(cfg, "grpo", policy=Policy.workflow(folders, environ={}))
    assert f"{section}.{key}" in str(err.value) and rule in str(err.value), str(err.value)


def test_code_rewards_need_the_owners_opt_in(tmp_path, folders):
    cfg = _grpo(tmp_path, name="python", params={"callable": "math:fsum"})
    with pytest.raises(ValueError, match=f"grpo.reward: reward 'python' .*{CODE_OPT_IN}=1"):
        config_from_dict(cfg, "grpo", policy=Policy.workflow(folders, environ={}))
    allowed = config_from_dict(cfg, "grpo", policy=Policy.workflow(folders, environ={CODE_OPT_IN: "1"}))
    assert allowed.grpo.reward.name == "python"
    assert config_from_dict(cfg, "grpo").grpo.reward.params == {"callable": "math:fsum"}  # a config file on disk


def test_job_records_name_no_program_and_pass_no_environment(tmp_path):
    write_dpo_toy(tmp_path / "data", n_pairs=2)
    manager = JobManager(tmp_path / "jobs", python=sys.executable)
    for bad in ("../x", "a/b", ".hidden", "x\x00", "", "C:\\x"):
        with pytest.raises(ValueError, match="Invalid job id"):
            manager.job_dir(bad)
    job = {"id": "dpo-x", "method": "dpo", "config_path": "/etc/passwd", "nproc": 1}
    assert manager.command(job)[-1] == str(tmp_path / "jobs" / "dpo-x" / "config.json")  # never the record's path
    with pytest.raises(ValueError, match="unknown method"):
        manager.command({**job, "method": "../../evil"})
    cfg = grpo_config(tmp_path / "data", "", max_steps=1)
    launched = manager.launch("grpo", cfg, env={"LD_PRELOAD": "/tmp/x.so", "REWARDLOOP_MODELS_DIR": "/m"})
    manager.cancel(launched["id"], grace_s=10.0)
    assert launched["env"] == {"REWARDLOOP_MODELS_DIR": "/m"}
    written = json.loads(Path(launched["config_path"]).read_text())
    assert written["grpo"]["prompts"] == cfg["grpo"]["prompts"] and "source" not in written


def _imports(path: Path) -> set[str]:
    """Trainer modules a trainers/ module imports at module level (relative imports)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            out.update(a.name for a in node.names)
    return out


def test_trainer_modules_import_without_cycles_and_nodes_use_no_private_names():
    folder = PACK_ROOT / "trainers"
    graph = {p.stem: _imports(p) & {q.stem for q in folder.glob("*.py")} for p in folder.glob("*.py")}
    seen, done = set(), set()

    def visit(module, path):
        assert module not in seen or module in done, f"import cycle: {' -> '.join(path + [module])}"
        if module in done:
            return
        seen.add(module)
        for dep in graph.get(module, ()):
            visit(dep, path + [module])
        done.add(module)

    for module in graph:
        visit(module, [])
    assert not (folder / "loop.py").exists()
    tree = ast.parse((PACK_ROOT / "nodes" / "training.py").read_text())
    private = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and "trainers" in (n.module or "")
               for a in n.names if a.name.startswith("_")]
    assert private == []
