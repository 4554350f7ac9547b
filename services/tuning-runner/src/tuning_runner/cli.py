"""The command line: `python -m tuning_runner [SETTINGS] fetch|train|push|pull [FLAGS]`.

pydantic-settings' own CLI: every `RunnerSettings` field is a kebab-case flag before the
subcommand (`--help` lists defaults and the `KAITO_TUNING_*` variables); each subcommand has the
flags the tuning Job passes. A subcommand's flag wins over the same setting given before it or
in the environment (`app.apply_flags`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import CliApp, CliSubCommand, SettingsConfigDict, get_subcommand

from tuning_runner.settings import RunnerSettings

PROG = "python -m tuning_runner"
# Flags whose values are taken whole: pydantic-settings splits list values at commas, and a URL
# may hold one.
_WHOLE_VALUES = ("--url",)


class FetchCommand(BaseModel):
    """Download input URLs, or an image's /data/*, into the data folder."""

    url: list[str] = Field(
        default_factory=list, description="repeatable; or space-separated (not with --image)"
    )
    image: str | None = Field(None, description="an OCI image whose /data/* is the input")
    dest: Path | None = Field(None, description="target folder (default: the data dir)")
    docker_config: list[Path] | None = Field(None, description="docker config JSON (file or dir)")
    allow_loopback: bool = Field(False, description="tests only: let URLs reach 127.0.0.1")
    plain_http: bool = Field(False, description="speak plain HTTP to the registry")

    @model_validator(mode="after")
    def _one_source(self) -> FetchCommand:
        if bool(self.url) == bool(self.image):
            raise ValueError("fetch needs either --url or --image (not both)")
        return self


class TrainCommand(BaseModel):
    """LoRA/QLoRA fine-tuning per training_config.yaml."""

    config: Path | None = Field(None, description="training_config.yaml")
    data_dir: Path | None = Field(None, description="folder with the dataset")
    output_dir: Path | None = Field(None, description="overrides TrainingArguments.output_dir")
    root: Path | None = Field(None, description="output_dir must be under this folder")
    progress_file: Path | None = Field(None, description="progress JSON")
    metrics_port: int | None = Field(None, description="0 turns the metrics server off")


class PushCommand(BaseModel):
    """Push the adapter in output_dir as an OCI image."""

    image: str = Field(description="the image reference to push")
    output_dir: Path | None = Field(
        None, description="folder with the adapter (default <root>/results)"
    )
    model_name: str | None = Field(
        None, description="preset name for the sh.kaito.model.name annotation"
    )
    docker_config: list[Path] | None = Field(None, description="docker config JSON (file or dir)")
    plain_http: bool = Field(False, description="speak plain HTTP to the registry")


class PullCommand(BaseModel):
    """Copy an image's /data/* into a folder (adapters, inputs)."""

    image: str = Field(description="the image reference to pull")
    dest: Path = Field(description="target folder")
    docker_config: list[Path] | None = Field(None, description="docker config JSON (file or dir)")
    plain_http: bool = Field(False, description="speak plain HTTP to the registry")


Command = FetchCommand | TrainCommand | PushCommand | PullCommand


class RunnerCli(RunnerSettings):
    """Kaito tuning runner: fetch inputs, fine-tune, push or pull adapter images."""

    model_config = SettingsConfigDict(
        env_prefix="KAITO_TUNING_",
        extra="ignore",
        cli_prog_name=PROG,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_show_env_vars=True,
        cli_enforce_required=True,
    )

    fetch: CliSubCommand[FetchCommand]
    train: CliSubCommand[TrainCommand]
    push: CliSubCommand[PushCommand]
    pull: CliSubCommand[PullCommand]


def parse_cli(argv: Sequence[str] | None = None) -> tuple[Command, RunnerSettings]:
    """The subcommand and the settings (environment, then the flags before the subcommand)."""
    args = _keep_whole(list(sys.argv[1:] if argv is None else argv))
    try:
        cli = CliApp.run(RunnerCli, cli_args=args)
    except ValidationError as err:
        # A usage error, as argparse reports one: exit status 2 with the reason.
        print(f"{PROG}: invalid arguments: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    command = get_subcommand(cli)
    assert isinstance(command, FetchCommand | TrainCommand | PushCommand | PullCommand)
    fields = set(RunnerSettings.model_fields)
    settings = RunnerSettings.model_construct(**cli.model_dump(include=fields))
    return command, settings


def _keep_whole(args: list[str]) -> list[str]:
    """Quote the values of `_WHOLE_VALUES` flags so that no comma in them splits the value."""
    out: list[str] = []
    quote_next = False
    for arg in args:
        if quote_next:
            out.append(json.dumps(arg))
            quote_next = False
            continue
        flag, eq, value = arg.partition("=")
        if flag in _WHOLE_VALUES:
            if eq:
                out.append(f"{flag}={json.dumps(value)}")
            else:
                out.append(arg)
                quote_next = True
            continue
        out.append(arg)
    return out
