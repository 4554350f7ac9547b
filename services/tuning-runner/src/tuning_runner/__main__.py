"""Entry point: `python -m tuning_runner fetch|train|push|pull ...`."""

from __future__ import annotations

import argparse
import sys

from kaito_common.omp import prefer_passive_waiting
from tuning_runner import logs
from tuning_runner.app import run
from tuning_runner.settings import RunnerSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuning_runner", description=__doc__)
    parser.add_argument("--termination-log", help="where the failure reason goes")
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="download input URLs or an image's /data/* into data")
    source = fetch.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", action="append", default=[], help="repeatable; or space-separated")
    source.add_argument("--image", help="an OCI image whose /data/* is the input")
    fetch.add_argument("--dest", help="target folder (default: the data dir)")
    fetch.add_argument("--docker-config", action="append", help="docker config JSON (file or dir)")
    fetch.add_argument("--allow-loopback", action="store_true", help="tests only")
    fetch.add_argument("--plain-http", action="store_true", help="speak plain HTTP to the registry")

    train = sub.add_parser("train", help="LoRA/QLoRA fine-tuning per training_config.yaml")
    train.add_argument("--config", help="training_config.yaml")
    train.add_argument("--data-dir")
    train.add_argument("--output-dir", help="overrides TrainingArguments.output_dir")
    train.add_argument("--root", help="output_dir must be under this folder (default /mnt)")
    train.add_argument("--progress-file")
    train.add_argument("--metrics-port", type=int, help="0 turns the metrics server off")

    push = sub.add_parser("push", help="push the adapter in output_dir as an OCI image")
    push.add_argument("--image", required=True)
    push.add_argument("--output-dir", help="folder with the adapter (default /mnt/results)")
    push.add_argument("--model-name", help="preset name for the sh.kaito.model.name annotation")
    push.add_argument("--docker-config", action="append", help="docker config JSON (file or dir)")
    push.add_argument("--plain-http", action="store_true")

    pull = sub.add_parser("pull", help="copy an image's /data/* into a folder (adapters, inputs)")
    pull.add_argument("--image", required=True)
    pull.add_argument("--dest", required=True)
    pull.add_argument("--docker-config", action="append", help="docker config JSON (file or dir)")
    pull.add_argument("--plain-http", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    passive = prefer_passive_waiting()  # before anything imports torch
    logs.configure()
    if passive:
        logs.log(
            "Set OMP_WAIT_POLICY=PASSIVE for torch's CPU threads: the CPUs were already busy "
            "(set OMP_WAIT_POLICY to override)"
        )
    args = build_parser().parse_args(argv)
    return run(args, RunnerSettings())


if __name__ == "__main__":
    sys.exit(main())
