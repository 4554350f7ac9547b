"""Tuning benchmark: our runner vs Kaito's recipe (TRL SFTTrainer, chart LoRA defaults, batch 1,
no packing) on the same ~30M-parameter tiny model, the same conversational dataset and the same
number of optimizer steps. One run each; prints a table and a RESULT line of ratios.

Each side runs in its own process so that peak RSS (ru_maxrss from wait4) is that side's alone.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
STEPS = int(os.environ.get("BENCH_TUNING_STEPS", "30"))
ROWS = int(os.environ.get("BENCH_TUNING_ROWS", "300"))
WORDS = [
    "the",
    "a",
    "model",
    "kaito",
    "world",
    "hello",
    "data",
    "train",
    "tune",
    "adapter",
    "lora",
    "fast",
    "small",
    "blue",
    "cluster",
    "node",
    "workspace",
    "preset",
    "inference",
    "gpu",
    "answer",
    "question",
    "please",
    "thanks",
    "because",
]


def conversations(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        a = "kaito says " + " ".join(sorted(q.split())) + " " + " ".join(rng.sample(WORDS, 4))
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": a},
                ]
            }
        )
    return rows


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run `cmd`; return (stdout, wall seconds, peak RSS in MiB of that process). The CPU seconds
    that other processes took meanwhile go to `others_cpu[pid]` (interference: the machine is
    shared, and a side that ran while something else was busy is slower for it)."""
    busy_before = busy_cpu_seconds()
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env}, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.communicate()
    # communicate() reaps via wait(); read the child's usage from the status it left.
    wall = time.monotonic() - start
    rss = proc_rss.pop(proc.pid, 0.0)
    global last_others_cpu
    last_others_cpu = max(0.0, busy_cpu_seconds() - busy_before - proc_cpu.pop(proc.pid, 0.0))
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[1:3]} failed ({proc.returncode}):\n{err[-4000:]}")
    return out, wall, rss


proc_rss: dict[int, float] = {}
proc_cpu: dict[int, float] = {}
last_others_cpu = 0.0


def _install_wait4_hook() -> None:
    """Record ru_maxrss of every child that subprocess reaps (Linux: KiB)."""

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        got_pid, status, usage = os.wait4(pid, options)
        if got_pid:
            proc_rss[got_pid] = usage.ru_maxrss / 1024
            proc_cpu[got_pid] = usage.ru_utime + usage.ru_stime
        return got_pid, status

    os.waitpid = waitpid


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def announce(side: str, stats: dict[str, Any], wall: float, rss: float) -> None:
    """One line per side as soon as it finishes (a cut-off run still shows what it measured)."""
    tps = stats["tokens"] / stats["train_seconds"] if stats["train_seconds"] else float("nan")
    print(
        f"{side}: steps={stats['steps']} tokens={stats['tokens']} "
        f"train_s={stats['train_seconds']:.1f} tokens_per_s={tps:.1f} wall_s={wall:.1f} "
        f"peak_rss_mib={rss:.0f} last_loss={stats['final_loss']:.4f} "
        f"others_cpu_s={last_others_cpu:.1f} load_avg_after={load_average()}",
        flush=True,
    )


def main() -> None:
    _install_wait4_hook()
    from kaito_testing.tiny_model import cached_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kaito-bench-models"
    model = cached_tiny_model(
        cache, hidden_size=512, num_layers=8, num_heads=4, intermediate_size=2048, vocab_size=512
    )
    root = work / "mnt"
    (root / "data").mkdir(parents=True)
    data_file = root / "data" / "train.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in conversations(ROWS)))

    def config(output_dir: Path) -> Path:
        doc = {
            "training_config": {
                "ModelConfig": {
                    "torch_dtype": "bfloat16",
                    "local_files_only": True,
                    "device_map": "auto",
                    "pretrained_model_name_or_path": str(model),
                },
                "LoraConfig": {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0},
                "TrainingArguments": {
                    "output_dir": str(output_dir),
                    "save_strategy": "no",
                    "per_device_train_batch_size": 1,
                    "max_steps": STEPS,
                    "learning_rate": 2e-4,
                    "logging_steps": 1,
                    "report_to": "none",
                },
                "DatasetConfig": {"shuffle_dataset": True, "train_test_split": 1},
            }
        }
        path = output_dir.parent / f"{output_dir.name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    py = sys.executable
    print(f"tuning benchmark: {ROWS} rows, {STEPS} steps; load average {load_average()}")
    base_out = root / "baseline"
    base_cfg = config(base_out)
    out, base_wall, base_rss = run_measured(
        [py, str(HERE / "kaito_recipe.py"), str(base_cfg), str(data_file)], {}
    )
    base = json.loads(out.strip().splitlines()[-1])
    base_others = last_others_cpu
    announce("kaito recipe", base, base_wall, base_rss)
    if os.environ.get("BENCH_TUNING_CONTROL") == "1":
        # Control, not in the RESULT line: the recipe with the OpenMP policy our runner sets.
        ctrl_out = root / "baseline-passive"
        out, ctrl_wall, ctrl_rss = run_measured(
            [py, str(HERE / "kaito_recipe.py"), str(config(ctrl_out)), str(data_file)],
            {"OMP_WAIT_POLICY": "PASSIVE"},
        )
        ctrl = json.loads(out.strip().splitlines()[-1])
        announce("kaito recipe + OMP_WAIT_POLICY=PASSIVE (control)", ctrl, ctrl_wall, ctrl_rss)

    ours_out = root / "ours"
    ours_cfg = config(ours_out)
    term = work / "termination-log"
    env = {
        "KAITO_TUNING_ROOT": str(root),
        "KAITO_TUNING_DATA_DIR": str(root / "data"),
        "KAITO_TUNING_TERMINATION_LOG": str(term),
        "KAITO_TUNING_METRICS_PORT": "0",
    }
    _, ours_wall, ours_rss = run_measured(
        [py, "-m", "tuning_runner", "train", "--config", str(ours_cfg)], env
    )
    final = json.loads(term.read_text())
    ours_seconds = final["tokens_seen"] / final["tokens_per_second"]
    ours = {
        "steps": final["step"],
        "train_seconds": ours_seconds,
        "tokens": final["tokens_seen"],
        "final_loss": final["loss"],
    }
    ours_others = last_others_cpu
    announce("ours", ours, ours_wall, ours_rss)

    scores = {}
    for name, adapter in (("baseline", base_out), ("ours", ours_out)):
        out, _, _ = run_measured(
            [py, str(HERE / "evaluate.py"), str(model), str(adapter), str(data_file)], {}
        )
        scores[name] = json.loads(out.strip().splitlines()[-1])
        print(f"eval {name}: {scores[name]}", flush=True)

    base_tps = base["tokens"] / base["train_seconds"]
    ours_tps = ours["tokens"] / ours["train_seconds"]
    print(f"tuning benchmark: ~33M-param Llama, {ROWS} conversational rows, {STEPS} steps")
    print(f"{'':34}{'kaito recipe (TRL)':>20}{'ours':>14}")
    rows = [
        ("optimizer steps", base["steps"], ours["steps"], "{}"),
        ("training tokens", base["tokens"], ours["tokens"], "{}"),
        ("training seconds", base["train_seconds"], ours["train_seconds"], "{:.2f}"),
        ("training tokens/s", base_tps, ours_tps, "{:.1f}"),
        ("process wall seconds", base_wall, ours_wall, "{:.1f}"),
        ("peak RSS MiB", base_rss, ours_rss, "{:.0f}"),
        ("other processes' CPU s meanwhile", base_others, ours_others, "{:.1f}"),
        ("last logged train loss", base["final_loss"], ours["final_loss"], "{:.4f}"),
        (
            "eval loss, assistant tokens",
            scores["baseline"]["assistant"],
            scores["ours"]["assistant"],
            "{:.4f}",
        ),
        ("eval loss, all tokens", scores["baseline"]["all"], scores["ours"]["all"], "{:.4f}"),
    ]
    for label, b, o, fmt in rows:
        print(f"{label:34}{fmt.format(b):>20}{fmt.format(o):>14}")
    print(f"load average at the end: {load_average()}")
    print(
        f"RESULT tokens_per_s_ratio={ours_tps / base_tps:.2f} rss_ratio={ours_rss / base_rss:.2f} "
        f"final_loss_ours={scores['ours']['assistant']:.4f} "
        f"final_loss_baseline={scores['baseline']['assistant']:.4f}"
    )


if __name__ == "__main__":
    main()
