"""What the controller needs from `training_config.yaml`: where the results go.

The results volume is mounted at `TrainingArguments.output_dir`, so the Job's shape depends on
it. The full config is the runner's to parse (and the webhook's to check); this only reads one
key and refuses what the pod could not honour.
"""

from __future__ import annotations

import posixpath

import yaml

from kaito_common.controller import objects
from kaito_common.controller.objects import Obj
from workspace_controller.tuning.plan import (
    DEFAULT_OUTPUT_DIR,
    MOUNT_ROOT,
    TRAINING_CONFIG_KEY,
)


class TuningConfigError(ValueError):
    """The tuning ConfigMap cannot drive a Job (the message says what to fix)."""


def output_dir_of(config_map: Obj) -> str:
    """`TrainingArguments.output_dir` of the ConfigMap's training config (default /mnt/results),
    normalised; an error when it is missing, unreadable or outside /mnt."""
    name = objects.name(config_map)
    text = (config_map.get("data") or {}).get(TRAINING_CONFIG_KEY)
    if text is None:
        raise TuningConfigError(f"ConfigMap {name} has no key {TRAINING_CONFIG_KEY}")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise TuningConfigError(
            f"{TRAINING_CONFIG_KEY} in ConfigMap {name} is not valid YAML: {err}"
        ) from err
    body = doc.get("training_config") if isinstance(doc, dict) else None
    if not isinstance(body, dict):
        raise TuningConfigError(
            f"{TRAINING_CONFIG_KEY} in ConfigMap {name} must have the top-level key training_config"
        )
    arguments = body.get("TrainingArguments") or {}
    raw = arguments.get("output_dir") if isinstance(arguments, dict) else None
    if raw is None:
        return DEFAULT_OUTPUT_DIR
    path = posixpath.normpath(str(raw))
    if not path.startswith(MOUNT_ROOT + "/") or path == MOUNT_ROOT:
        raise TuningConfigError(
            f"TrainingArguments.output_dir {raw!r} in ConfigMap {name} must be a directory "
            f"under {MOUNT_ROOT} (e.g. {DEFAULT_OUTPUT_DIR})"
        )
    reserved = ("/mnt/data", "/mnt/config")
    if any(path == r or path.startswith(r + "/") for r in reserved):
        raise TuningConfigError(
            f"TrainingArguments.output_dir {raw!r} in ConfigMap {name} overlaps the input or "
            f"config mount; use another directory under {MOUNT_ROOT} (e.g. {DEFAULT_OUTPUT_DIR})"
        )
    return path
