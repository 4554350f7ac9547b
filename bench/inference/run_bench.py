"""Inference benchmark: our server (transformers engine, and vLLM engine) vs `transformers serve`.

Builds a seeded ~31M-parameter Llama-style model (fp32, CPU), starts each server alone in turn on
127.0.0.1, drives it with C concurrent streaming chat clients (64 forced output tokens, greedy)
and prints one table plus a RESULT line of ratios. `ours-vllm` is the same server on the vLLM
engine, run from .venv-vllm (`make install-vllm`; KAITO_VLLM_PYTHON names another interpreter),
with the same model, clients and requests. Usage: python bench/inference/run_bench.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kaito_testing.ports import free_port

OUTPUT_TOKENS = 64
# 32 prompt tokens with the tiny model's chat template (the reference runs used ~15-token prompts).
PROMPT = "Tell me a story."
# Requests per client at each concurrency: (full run, --quick). The one-at-a-time server needs
# ~1 s per request on a quiet 2-core machine, so at C=32 it gets one request per client.
PER_CLIENT = {1: (4, 2), 8: (2, 1), 32: (2, 1)}
SEQUENTIAL_PER_CLIENT_C32 = 1


@dataclass
class Run:
    server: str
    concurrency: int
    tokens: int = 0
    requests: int = 0
    errors: int = 0
    wall_s: float = 0.0
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    load1: float = 0.0
    cpu_s: float = 0.0  # server process CPU seconds (user + system) spent in this run

    def row(self) -> str:
        def pct(values: list[float], q: float) -> float:
            if not values:
                return float("nan")
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        itl = statistics.median(self.itl) * 1000 if self.itl else float("nan")
        return (
            f"| {self.server:<18} | {self.concurrency:>3} | {self.tokens / self.wall_s:>9.1f} | "
            f"{self.requests / self.wall_s:>7.2f} | {pct(self.ttft, 0.5):>8.3f} | "
            f"{pct(self.ttft, 0.99):>8.3f} | {itl:>7.1f} | {self.errors:>4} | "
            f"{self.rss_mb:>7.0f} | {self.load1:>5.1f} | {self.cpu_ms_per_token:>6.1f} |"
        )

    @property
    def cpu_ms_per_token(self) -> float:
        """Server CPU time per output token: less sensitive to other load than tokens/s."""
        return 1000 * self.cpu_s / self.tokens if self.tokens else float("nan")

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0


def rss_mb(pid: int) -> float:
    total = 0
    for child in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children, from /proc (clock ticks)."""
    ticks = 0
    for child in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Every descendant: children started by any thread (vLLM starts its engine from one)."""
    out: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += (task / "children").read_text().split()
        except OSError:
            continue
    kids = [int(p) for p in out]
    return kids + [g for k in kids for g in _children(k)]


async def one_request(
    client: httpx.AsyncClient, model: str, extra: dict[str, object], run: Run
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": OUTPUT_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    start = time.monotonic()
    stamps: list[float] = []
    usage_tokens = None
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                run.errors += 1
                await r.aread()
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        stamps.append(time.monotonic())
    except httpx.HTTPError:
        run.errors += 1
        return
    tokens = usage_tokens if usage_tokens else len(stamps)
    if not stamps or tokens != OUTPUT_TOKENS:
        run.errors += 1
    if stamps:
        run.ttft.append(stamps[0] - start)
        run.itl += [b - a for a, b in itertools.pairwise(stamps)]
    run.tokens += tokens
    run.requests += 1


async def drive(
    url: str, model: str, extra: dict[str, object], c: int, per: int, run: Run, pid: int
) -> None:
    limits = httpx.Limits(max_connections=c + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await one_request(client, model, extra, Run("warmup", 1))

        async def worker() -> None:
            for _ in range(per):
                await one_request(client, model, extra, run)

        start, cpu = time.monotonic(), cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(c)))
        run.wall_s = time.monotonic() - start
        run.cpu_s = cpu_seconds(pid) - cpu


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], paths: list[str], timeout: float = 300
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        for path in paths:
            try:
                if httpx.get(url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    raise RuntimeError("server did not become healthy")


def bench_server(
    name: str, cmd: list[str], port: int, model: str, extra: dict[str, object],
    plan: list[tuple[int, int]], log_dir: Path, env: dict[str, str] | None = None,
) -> list[Run]:  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log = (log_dir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    runs: list[Run] = []
    try:
        # vLLM starts three processes that each import torch: minutes on 2 busy cores.
        wait_healthy(url, proc, ["/health"], timeout=900 if "vllm" in name else 300)
        for c, per in plan:
            run = Run(name, c)
            asyncio.run(drive(url, model, extra, c, per, run, proc.pid))
            run.rss_mb = rss_mb(proc.pid)
            run.load1 = os.getloadavg()[0]
            runs.append(run)
            print(run.row(), flush=True)
    except Exception as exc:
        print(f"| {name:<18} | failed: {exc} (log: {log_dir / (name + '.log')})", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests per client")
    parser.add_argument(
        "--servers",
        default="ours,ours-vllm,tserve-seq,tserve-cb",
        help="comma-separated subset to run; tserve-seq+passive and tserve-cb+passive are controls",
    )
    args = parser.parse_args()
    from kaito_testing.tiny_model import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    model_dir = build_tiny_model(
        work / "model", hidden_size=512, num_layers=8, num_heads=8, vocab_size=512,
        intermediate_size=1792, max_position_embeddings=1024, seed=0,
        silence_special_tokens=True,
    )  # fmt: skip
    pick = 1 if args.quick else 0
    plan = [(c, per[pick]) for c, per in PER_CLIENT.items()]
    plans = {"tserve-seq": [(c, SEQUENTIAL_PER_CLIENT_C32 if c == 32 else n) for c, n in plan]}
    py = sys.executable
    tserve = str(Path(py).with_name("transformers"))
    root = Path(__file__).resolve().parents[2]
    vllm_py = os.environ.get("KAITO_VLLM_PYTHON") or str(root / ".venv-vllm" / "bin" / "python")
    servers: dict[str, tuple[list[str], str, dict[str, object]]] = {
        "ours": (
            [py, "-m", "inference_server", "--model", str(model_dir), "--served-model-name",
             "bench", "--host", "127.0.0.1", "--max-batch-size", "32", "--log-level", "warning",
             "--adapters-dir", str(work / "no-adapters")],
            "bench", {"ignore_eos": True},
        ),
        "ours-vllm": (
            [vllm_py, "-m", "inference_server", "--engine", "vllm", "--model", str(model_dir),
             "--served-model-name", "bench", "--host", "127.0.0.1", "--max-batch-size", "32",
             "--dtype", "float32", "--max-model-len", "1024", "--log-level", "warning",
             "--adapters-dir", str(work / "no-adapters")],
            "bench", {"ignore_eos": True},
        ),
        "tserve-seq": (
            [tserve, "serve", str(model_dir), "--host", "127.0.0.1", "--device", "cpu",
             "--dtype", "float32", "--no-continuous-batching"],
            str(model_dir), {},
        ),
        "tserve-cb": (
            [tserve, "serve", str(model_dir), "--host", "127.0.0.1", "--device", "cpu",
             "--dtype", "float32", "--continuous-batching", "--attn-implementation", "sdpa"],
            str(model_dir), {},
        ),
    }  # fmt: skip
    # Controls (not in the RESULT line): the baselines with the OpenMP policy our server sets for
    # itself, to show how much of the gap is thread-pool waiting rather than batching.
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}
    for base in ("tserve-seq", "tserve-cb"):
        servers[base + "+passive"] = servers[base]
        if base in plans:
            plans[base + "+passive"] = plans[base]
    wanted = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(servers))
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(servers)}")
    print(f"model: {model_dir} (~31M params, fp32, cpu); {OUTPUT_TOKENS} output tokens, greedy")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        "| server             |   C |  out tok/s |   req/s | TTFTp50s | TTFTp99s | ITLp50ms "
        "| err |  RSS MB | load1 | CPU ms/tok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    results: dict[str, dict[int, Run]] = {}
    for name in wanted:
        cmd, model, extra = servers[name]
        port = free_port()
        cmd = [*cmd, "--port", str(port)]
        env = passive if name.endswith("+passive") else None
        if name == "ours-vllm":
            if not Path(vllm_py).exists():
                print(f"| {name:<18} | skipped: {vllm_py} missing (make install-vllm)", flush=True)
                continue
            env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
        env_runs = bench_server(name, cmd, port, model, extra, plans.get(name, plan), work, env)
        results[name] = {r.concurrency: r for r in env_runs}

    def ratio(a: str, b: str, c: int) -> str:
        ra, rb = results.get(a, {}).get(c), results.get(b, {}).get(c)
        if ra is None or rb is None or not rb.tok_s:
            return "nan"
        return f"{ra.tok_s / rb.tok_s:.2f}"

    def ttft_p50(server: str, c: int) -> str:
        run = results.get(server, {}).get(c)
        return f"{sorted(run.ttft)[len(run.ttft) // 2]:.3f}" if run and run.ttft else "nan"

    ttft = ttft_p50("ours", 32)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        f"RESULT c1_vs_seq={ratio('ours', 'tserve-seq', 1)} "
        f"c8_vs_seq={ratio('ours', 'tserve-seq', 8)} "
        f"c32_vs_seq={ratio('ours', 'tserve-seq', 32)} "
        f"c32_vs_tserve_cb={ratio('ours', 'tserve-cb', 32)} ttft_p50_c32_s={ttft}"
    )
    print(
        f"RESULT_VLLM c1_vllm_vs_ours={ratio('ours-vllm', 'ours', 1)} "
        f"c8_vllm_vs_ours={ratio('ours-vllm', 'ours', 8)} "
        f"c32_vllm_vs_ours={ratio('ours-vllm', 'ours', 32)} "
        f"c32_vllm_vs_tserve_cb={ratio('ours-vllm', 'tserve-cb', 32)} "
        f"ttft_p50_c32_s={ttft_p50('ours-vllm', 32)}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
