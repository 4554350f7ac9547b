"""Wiring of the subcommands: settings in, exit code out; failures go to the termination log."""

from __future__ import annotations

from pathlib import Path

from tuning_runner.cli import (
    Command,
    FetchCommand,
    PullCommand,
    PushCommand,
    TrainCommand,
)
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


def cmd_fetch(args: FetchCommand, settings: RunnerSettings) -> None:
    dest = args.dest or settings.data_dir
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


def cmd_train(args: TrainCommand, settings: RunnerSettings) -> None:
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


def cmd_push(args: PushCommand, settings: RunnerSettings) -> None:
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


def cmd_pull(args: PullCommand, settings: RunnerSettings) -> None:
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
            files = pull_image(client, ref, args.dest)
    except (InvalidReferenceError, RegistryError, ImageFormatError) as err:
        raise PullError(f"pulling {args.image} into {args.dest} failed: {err}") from err
    log("Pulled image", image=str(ref), dest=str(args.dest), files=",".join(files))


def apply_flags(command: Command, settings: RunnerSettings) -> RunnerSettings:
    """A subcommand's flags override the settings from the environment."""
    updates: dict[str, object] = {}
    if isinstance(command, TrainCommand):
        for key, value in (
            ("config_path", command.config),
            ("data_dir", command.data_dir),
            ("root", command.root),
            ("output_dir", command.output_dir),
            ("progress_file", command.progress_file),
            ("metrics_port", command.metrics_port),
        ):
            if value is not None:
                updates[key] = value
    if isinstance(command, PushCommand) and command.model_name is not None:
        updates["model_name"] = command.model_name
    if isinstance(command, FetchCommand) and command.allow_loopback:
        updates["allow_loopback_urls"] = True
    if not isinstance(command, TrainCommand):
        if command.docker_config:
            updates["docker_config"] = command.docker_config
        if command.plain_http and command.image:
            updates["plain_http_registries"] = [
                *settings.plain_http_registries,
                ImageReference.parse(command.image).registry,
            ]
    return settings.model_copy(update=updates)


def _dispatch(command: Command, settings: RunnerSettings) -> None:
    if isinstance(command, FetchCommand):
        cmd_fetch(command, settings)
    elif isinstance(command, TrainCommand):
        cmd_train(command, settings)
    elif isinstance(command, PushCommand):
        cmd_push(command, settings)
    else:
        cmd_pull(command, settings)


def run(command: Command, settings: RunnerSettings) -> int:
    try:
        settings = apply_flags(command, settings)
        _dispatch(command, settings)
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
