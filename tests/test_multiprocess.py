"""Data-parallel training: two CPU processes (gloo) against one process, and the accelerate configs.

`accelerate launch --cpu --num_processes 2` starts a single process unless it is given an MPI
hostfile, so the two processes are started with accelerate's torch.distributed launcher
(`--multi_gpu`); `use_cpu=True` in the config makes them a gloo group on the CPU.
"""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from multiprocess_worker import CONFIGS, GLOBAL_BATCH, laser_step

NUM_PROCESSES = 2
WORKER = Path(__file__).with_name("multiprocess_worker.py")
ACCELERATE_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "recipes" / "accelerate").glob("*.yaml"))
GRAD_TOLERANCE = dict(rtol=1e-4, atol=1e-6)  # the shards' forwards add up in another order


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_processes(model_dir: Path, out_file: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(NUM_PROCESSES),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        "1",
        "--main_process_port",
        str(free_port()),
        str(WORKER),
        str(model_dir),
        str(out_file),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=80)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out_file)


def expected_weights(rows) -> torch.Tensor:
    """N / (2 N_c) for the class c of each finished completion of `rows`, 0 if truncated, divided by N."""
    rewards = torch.tensor([reward for _, _, reward, _ in rows])
    finished = torch.tensor([finished for *_, finished in rows])
    n, n_correct = finished.sum(), (finished & (rewards == 1)).sum()
    n_wrong = n - n_correct
    weights = torch.where(rewards == 1, n / (2 * n_correct), n / (2 * n_wrong)) * finished
    return weights / n


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is unavailable: two CPU processes cannot be run",
)
def test_two_processes_give_the_gradients_and_class_weights_of_one_process(short_answer_model, tokenizer, tmp_path):
    model_dir = tmp_path / "model"
    short_answer_model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    two = launch_two_processes(model_dir, tmp_path / "two_processes.pt")

    global_weights = expected_weights(GLOBAL_BATCH)
    shard = len(GLOBAL_BATCH) // NUM_PROCESSES
    shard_weights = torch.cat([expected_weights(GLOBAL_BATCH[i : i + shard]) for i in (0, shard)])
    # The batch tells global weights from per-shard ones: a trainer balancing each shard fails below.
    assert not torch.allclose(shard_weights, global_weights, atol=0.05)

    for name, overrides in CONFIGS.items():
        one = laser_step(str(model_dir), str(tmp_path / "one_process"), **overrides)
        assert (one["num_processes"], two[name]["num_processes"]) == (1, NUM_PROCESSES)
        torch.testing.assert_close(one["self_reward_weights"], global_weights)
        for key in ("verifier_rewards", "self_reward_weights", "advantages", "loss"):
            torch.testing.assert_close(two[name][key], one[key], msg=f"{name}: {key}")
        assert two[name]["metrics"].keys() == one["metrics"].keys()
        for metric, value in one["metrics"].items():
            assert two[name]["metrics"][metric] == pytest.approx(value, rel=1e-5, abs=1e-6), f"{name}: {metric}"
        # What DDP applies (the mean of the processes' gradients) is the gradient of the whole batch.
        for two_grad, one_grad in zip(two[name]["grads"], one["grads"], strict=True):
            torch.testing.assert_close(two_grad, one_grad, **GRAD_TOLERANCE, msg=name)

        # The self-reward MSE weighs in those gradients: getting its scale or weights wrong shows.
        without_mse = laser_step(
            str(model_dir), str(tmp_path / "one_process"), **overrides | {"self_reward_loss_coef": 0}
        )
        mse_grad = torch.cat([(g - g0).flatten() for g, g0 in zip(one["grads"], without_mse["grads"], strict=True)])
        assert mse_grad.norm() > 0.1 * torch.cat([g.flatten() for g in one["grads"]]).norm()
    assert "laser/mixed_groups" in two["mixed_advantages"]["metrics"]


def test_accelerate_configs_load_for_one_node_of_8_gpus_in_bf16():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    launch_flags = vars(launch_command_parser().parse_args(["train.py"]))
    sharding = {"fsdp.yaml": ("FSDP", None), "zero2.yaml": ("DEEPSPEED", 2), "zero3.yaml": ("DEEPSPEED", 3)}
    assert [path.name for path in ACCELERATE_CONFIGS] == sorted(sharding)
    for path in ACCELERATE_CONFIGS:
        config = load_config_from_file(str(path))
        stage = (config.deepspeed_config or {}).get("zero_stage")
        assert (config.distributed_type.value, stage) == sharding[path.name]
        assert (config.num_machines, config.num_processes, config.mixed_precision) == (1, 8, "bf16"), path.name
        # `accelerate launch` turns each nested key into the flag of the same name: a typo would be ignored.
        nested = {**(config.deepspeed_config or {}), **(config.fsdp_config or {})}
        assert nested and set(nested) <= set(launch_flags), path.name
        # "auto" (the key left out) takes the recipe's value; a number there must equal it or the Trainer stops.
        assert "gradient_accumulation_steps" not in nested, path.name
