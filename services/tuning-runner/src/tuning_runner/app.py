"""Wiring of the subcommands: settings in, exit code out; failures go to the termination log."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from tuning_runner.errors import ConfigError, PullError, PushError, TuningFailure
from tuning_runner.fetch.image import fetch_image
from tuning_runner.fetch.urls import FetchOptions, fetch_urls
from tuning_runner.logs import log
from tuning_runner.oci.client import RegistryError
from tuning_runner.oci.connect import client_for
from tuning_runner.oci.image import ImageFormatError, push_adapter
from tuning_runner.oci.reference import ImageReference, InvalidReferenceError
from tuning_runner.progress import ProgressReporter
from tuning_runner.settings import RunnerSettings
from tuning_runner.termination import write_termination_message


def cmd_fetch(args: argparse.Namespace, settings: RunnerSettings) -> None:
    dest = Path(args.dest) if args.dest else settings.data_dir
    if args.image:
        ref = ImageReference.parse(args.image)
        with client_for(
            ref,
            settings.docker_config,
            settings.plain_http_registries,
            settings.registry_timeout_seconds,
            settings.ca_file,
        ) as client:
            fetch_image(client, args.image, dest)
        return
    opts = FetchOptions(
        max_bytes=settings.fetch_max_bytes,
        attempts=settings.fetch_attempts,
        backoff_seconds=settings.fetch_backoff_seconds,
        connect_timeout=settings.fetch_connect_timeout_seconds,
        read_timeout=settings.fetch_read_timeout_seconds,
        allow_loopback=settings.allow_loopback_urls,
        allowed_networks=tuple(settings.allowed_data_networks),
        ca_file=settings.ca_file,
    )
    urls = [u for item in args.url for u in item.split()]
    fetch_urls(urls, dest, opts)


def cmd_train(args: argparse.Namespace, settings: RunnerSettings) -> None:
    from tuning_runner.config.training_config import load_training_config
    from tuning_runner.train.runner import resolve_output_dir, run_training

    cfg = load_training_config(settings.config_path)
    output_dir = resolve_output_dir(cfg, settings)
    reporter = ProgressReporter(settings.resolved_progress_file(output_dir))
    reporter.serve(settings.metrics_host, settings.metrics_port)
    try:
        result = run_training(cfg, settings, reporter)
    except BaseException as err:
        reporter.update(phase="Failed", message=str(err)[:500])
        raise
    if not result.skipped:
        write_termination_message(settings.termination_log, reporter.progress.to_json())


def cmd_push(args: argparse.Namespace, settings: RunnerSettings) -> None:
    from tuning_runner.train.outputs import is_complete

    source = Path(args.output_dir or settings.output_dir or settings.root / "results")
    if not is_complete(source):
        raise PushError(
            f"{source} holds no completed adapter (no fine_tuning_completed.txt with "
            "adapter_config.json and adapter_model.safetensors); did training finish?"
        )
    try:
        ref = ImageReference.parse(args.image)
        with client_for(
            ref,
            settings.docker_config,
            settings.plain_http_registries,
            settings.registry_timeout_seconds,
            settings.ca_file,
        ) as client:
            pushed = push_adapter(client, ref, source, args.model_name or settings.model_name)
    except (InvalidReferenceError, RegistryError, ImageFormatError) as err:
        raise PushError(f"pushing the adapter to {args.image} failed: {err}") from err
    log("Pushed adapter image", image=str(ref), digest=pushed.manifest_digest)


def cmd_pull(args: argparse.Namespace, settings: RunnerSettings) -> None:
    from tuning_runner.oci.image import pull_image

    try:
        ref = ImageReference.parse(args.image)
        with client_for(
            ref,
            settings.docker_config,
            settings.plain_http_registries,
            settings.registry_timeout_seconds,
            settings.ca_file,
        ) as client:
            files = pull_image(client, ref, Path(args.dest))
    except (InvalidReferenceError, RegistryError, ImageFormatError) as err:
        raise PullError(f"pulling {args.image} into {args.dest} failed: {err}") from err
    log("Pulled image", image=str(ref), dest=args.dest, files=",".join(files))


COMMANDS: dict[str, Callable[[argparse.Namespace, RunnerSettings], None]] = {
    "fetch": cmd_fetch,
    "train": cmd_train,
    "push": cmd_push,
    "pull": cmd_pull,
}


def apply_flags(args: argparse.Namespace, settings: RunnerSettings) -> RunnerSettings:
    """Flags override environment settings."""
    updates: dict[str, object] = {}
    for flag, key in (
        ("config", "config_path"),
        ("data_dir", "data_dir"),
        ("root", "root"),
        ("termination_log", "termination_log"),
        ("progress_file", "progress_file"),
        ("metrics_port", "metrics_port"),
        ("model_name", "model_name"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            updates[key] = (
                Path(value) if key.endswith(("_path", "_dir", "_log", "_file", "root")) else value
            )
    if getattr(args, "output_dir", None) and args.command == "train":
        updates["output_dir"] = Path(args.output_dir)
    if getattr(args, "docker_config", None):
        updates["docker_config"] = [Path(p) for p in args.docker_config]
    if getattr(args, "plain_http", False):
        updates["plain_http_registries"] = [
            *settings.plain_http_registries,
            ImageReference.parse(args.image).registry,
        ]
    if getattr(args, "allow_loopback", False):
        updates["allow_loopback_urls"] = True
    return settings.model_copy(update=updates)


def run(args: argparse.Namespace, settings: RunnerSettings) -> int:
    try:
        settings = apply_flags(args, settings)
        COMMANDS[args.command](args, settings)
    except TuningFailure as err:
        _fail(settings, err.reason, err.message)
        return 1
    except InvalidReferenceError as err:
        _fail(settings, ConfigError.reason, str(err))
        return 1
    except Exception as err:  # the pod must say why it died, whatever the cause
        _fail(settings, "InternalError", f"{type(err).__name__}: {err}")
        raise
    return 0


def _fail(settings: RunnerSettings, reason: str, message: str) -> None:
    log("Failed", reason=reason, message=message)
    write_termination_message(settings.termination_log, f"{reason}: {message}")


def failure_json(reason: str, message: str) -> str:
    return json.dumps({"reason": reason, "message": message})
