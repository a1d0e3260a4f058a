"""What `run` opens before its first poll, tried by `check` without starting anything.

A config can be valid and still stop the daemon at start with exit 78: a
token file that is missing or unreadable, a TLS file that does not load, a
buffer that cannot be created. `check` tries each of them the way `run`
does, by the same code: every destination is made by its kind's factory (its
files read as at start) and closed at once, and the buffer's place is
checked. So what stops `run` is an error in `check`.

With a ServiceView (`check --for-systemd`), files are looked for where the
service will find them: `${CREDENTIALS_DIRECTORY}/ID` is the source its unit
loads the credential from, and a directory systemd creates for the service
(StateDirectory= ...) need not exist yet.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from agent import uplinks
from agent.systemd_unit import ServiceView
from buffer.schema import SCHEMA_VERSION, file_version
from config.loader import LoadedConfig
from domain.errors import BufferTooNew, ConfigInvalid, Problem

__all__ = ["preflight"]


async def preflight(loaded: LoadedConfig, service: ServiceView | None = None) -> list[Problem]:
    """Every problem `run` would stop at once the config has loaded, as `run` words it."""
    return [*_buffer(loaded, service), *await _destinations(loaded, service)]


def _buffer(loaded: LoadedConfig, service: ServiceView | None) -> list[Problem]:
    """The buffer opens, or can be created, where `buffer.path` says (agent/daemon.py opens
    it at start, creating its directory)."""
    path = Path(loaded.config.buffer.path)
    at = ("buffer", "path")
    version = file_version(path)
    if version is not None and version > SCHEMA_VERSION:
        why = BufferTooNew(str(path), version, SCHEMA_VERSION)
        return [loaded.problem_at(at, f"cannot open the buffer at {path}: {why}")]
    if service is not None and service.made_by_systemd(path.absolute()):
        return []  # systemd makes the directory, owned by the service's user
    if path.exists():
        if path.is_dir() or not os.access(path, os.R_OK | os.W_OK):
            what = "a directory" if path.is_dir() else "not writable by this user"
            return [loaded.problem_at(at, f"cannot open the buffer at {path}: {what}")]
        return []
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        what = "is not a directory" if not ancestor.is_dir() else "is not writable by this user"
        message = f"cannot create the buffer at {path}: {ancestor} {what}"
        return [loaded.problem_at(at, message)]
    return []


async def _destinations(loaded: LoadedConfig, service: ServiceView | None) -> list[Problem]:
    """Each destination made as at start (its token and TLS files read) and closed again."""
    problems: list[Problem] = []
    for wanted in uplinks.wanted(loaded.config).values():
        want, found = _as_the_service_sees(loaded, wanted, service)
        problems += found
        if want is None:
            continue
        try:
            destination = uplinks.make(loaded, want)
        except ConfigInvalid as exc:
            problems += exc.problems
            continue
        await destination.close()
    return problems


def _as_the_service_sees(
    loaded: LoadedConfig, want: uplinks.Wanted, service: ServiceView | None
) -> tuple[uplinks.Wanted | None, list[Problem]]:
    """Its settings with each credential's path replaced by the file systemd loads it from,
    or None when it cannot be made here: a credential the unit does not load or whose file
    is missing (an error at the field that names it), one this user may not read (a
    warning), or one whose value the unit holds itself (SetCredential=)."""
    if service is None:
        return want, []
    problems = []
    update: dict[str, str] = {}
    held = False
    for name in want.spec.path_fields:
        value = getattr(want.settings, name, None)
        if not isinstance(value, str) or not Path(value).is_relative_to(service.credentials_dir):
            continue
        ident = Path(value).relative_to(service.credentials_dir).parts[0]
        credential = service.credentials.get(ident)
        at = (*want.at, name)
        if credential is None:
            message = (
                f"{service.unit} loads no credential '{ident}': add "
                f"LoadCredential={ident}:/etc/edge-agent/{ident} (systemctl edit edge-agent)"
            )
            problems.append(loaded.problem_at(at, message))
        elif credential.source is None:
            held = True
        elif not credential.source.exists():
            message = f"cannot read {credential.source} ({credential.setting}): no such file"
            problems.append(loaded.problem_at(at, message))
        elif not os.access(credential.source, os.R_OK):
            message = (
                f"{credential.source} ({credential.setting}) is readable by root only, as "
                "systemd reads it: run check with sudo to check what it holds"
            )
            problems.append(loaded.problem_at(at, message, severity="warning"))
        else:
            update[name] = str(credential.source)
    if problems or held:
        return None, problems
    return dataclasses.replace(want, settings=want.settings.model_copy(update=update)), []
