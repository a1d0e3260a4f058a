"""${VAR} and ${VAR:-default} in path fields, expanded once the checks have run."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cloud_sync.http.settings import SPEC as HTTP
from cloud_sync.registry import kind_of
from config.base import ENV_VAR
from config.checks._parts import Parts
from config.errors import Document, NodePath, Severity
from domain.errors import Problem
from drivers.registry import spec_of

_SYSTEMD_DIRS = {
    "CREDENTIALS_DIRECTORY": "LoadCredential=",
    "STATE_DIRECTORY": "StateDirectory=",
    "RUNTIME_DIRECTORY": "RuntimeDirectory=",
    "CACHE_DIRECTORY": "CacheDirectory=",
    "LOGS_DIRECTORY": "LogsDirectory=",
    "CONFIGURATION_DIRECTORY": "ConfigurationDirectory=",
}


def expand_env(
    parts: Parts, doc: Document, environ: Mapping[str, str] | None, require_env: bool
) -> tuple[Parts, list[Problem]]:
    """Path fields with ${VAR} and ${VAR:-default} expanded; an unset VAR stays as written.

    An unset VAR is an error where the file is used as `run` uses it (`require_env`:
    the daemon, `check`), which would otherwise open a path that is not there; a
    warning for the commands that open none of these paths (probe, status).
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    severity: Severity = "error" if require_env else "warning"

    def expand(value: str | None, at: NodePath) -> str | None:
        def one(match: re.Match[str]) -> str:
            name, default = match.groups()
            if default is not None and not env.get(name):
                return default
            if name in env:
                return env[name]
            message = f"${{{name}}} is not set ({_hint(name)})"
            problems.append(doc.problem(at, message, severity=severity))
            return match.group()

        return None if value is None else ENV_VAR.sub(one, value)

    def expanded(settings: Any, fields: tuple[str, ...], at: NodePath) -> Any:
        files = {name: expand(getattr(settings, name), (*at, name)) for name in fields}
        return settings.model_copy(update=files)

    buffer, sync, devices = parts.buffer, parts.sync, dict(parts.devices)
    destinations = dict(parts.destinations)
    if buffer is not None:
        buffer = buffer.model_copy(update={"path": expand(buffer.path, ("buffer", "path"))})
    if sync is not None:
        sync = expanded(sync, HTTP.path_fields, ("sync",))
    for i, valid in devices.items():
        spec = spec_of(valid.model)
        if spec.path_fields:
            link = expanded(spec.link(valid.model), spec.path_fields, ("devices", i, spec.key))
            devices[i] = replace(valid, model=valid.model.model_copy(update={spec.key: link}))
    for i, entry in destinations.items():
        kind = kind_of(entry)
        at = ("destinations", i, kind.key)
        settings = expanded(kind.settings_of(entry), kind.path_fields, at)
        destinations[i] = entry.model_copy(update={kind.key: settings})
    expanded_parts = replace(
        parts, buffer=buffer, sync=sync, devices=devices, destinations=destinations
    )
    return expanded_parts, problems


def _hint(name: str) -> str:
    if name in _SYSTEMD_DIRS:
        return (
            f"systemd sets it with {_SYSTEMD_DIRS[name]}; `edge-agent check --for-systemd` "
            "checks the file as the service will see it"
        )
    return f"set it in the environment, or give a default: ${{{name}:-value}}"
