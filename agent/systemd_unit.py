"""What a systemd unit gives the agent before it starts: directories and credentials.

`edge-agent check --for-systemd` checks a config as the service will see it,
not as the shell it runs in: `${CREDENTIALS_DIRECTORY}`, `${STATE_DIRECTORY}`
and the other directories are set by systemd for the service only, and a
credential file is read by systemd (as root) from the source its unit names.
This reads those settings from the unit file and its drop-ins; it never asks a
running systemd, so it works on a machine being prepared, and in a test.

What it follows, from systemd.exec(5)
(https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html):
- `LoadCredential=ID[:PATH]` (and `LoadCredentialEncrypted=`) makes the file
  `$CREDENTIALS_DIRECTORY/ID`, with CREDENTIALS_DIRECTORY set to
  `/run/credentials/<unit name>`; a PATH that is not absolute, or none, is
  searched in /etc/credstore/, /run/credstore/ and /usr/lib/credstore/
  (the `.encrypted` ones for the encrypted kind). `SetCredential=ID:VALUE`
  gives the value itself.
- `StateDirectory=`, `RuntimeDirectory=`, `CacheDirectory=`, `LogsDirectory=`
  and `ConfigurationDirectory=` name directories below /var/lib, /run,
  /var/cache, /var/log and /etc that systemd creates, owned by the service's
  user, and sets the matching variables to their absolute paths, joined by ':'.
- An empty assignment (`LoadCredential=`) resets the list built so far;
  drop-ins (`<unit>.d/*.conf`) apply after the unit, in the order of their
  file names, one in /etc/ hiding a same-named one in /usr/lib/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

UNIT = "edge-agent.service"
UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/run/systemd/system"),
    Path("/usr/local/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
    Path("/lib/systemd/system"),
)
"""Where systemd finds a system unit, the first place first (systemd.unit(5))."""

CREDSTORE = (Path("/etc/credstore"), Path("/run/credstore"), Path("/usr/lib/credstore"))
DIRECTORIES = {
    "StateDirectory": ("STATE_DIRECTORY", Path("/var/lib")),
    "RuntimeDirectory": ("RUNTIME_DIRECTORY", Path("/run")),
    "CacheDirectory": ("CACHE_DIRECTORY", Path("/var/cache")),
    "LogsDirectory": ("LOGS_DIRECTORY", Path("/var/log")),
    "ConfigurationDirectory": ("CONFIGURATION_DIRECTORY", Path("/etc")),
}
_CREDENTIALS = ("LoadCredential", "LoadCredentialEncrypted", "SetCredential")


class UnitNotFound(Exception):
    """No unit file where one was looked for."""


@dataclass(frozen=True)
class Credential:
    """Where systemd takes a credential from: a file, or the value written in the unit."""

    id: str
    source: Path | None  # None: SetCredential= gives the value itself
    setting: str  # the line that loads it, as written: LoadCredential=sync-token:/etc/...


@dataclass(frozen=True)
class ServiceView:
    """The service's surroundings as its unit makes them."""

    unit: Path  # the unit file read
    environ: dict[str, str]  # the variables systemd sets: CREDENTIALS_DIRECTORY ...
    credentials: dict[str, Credential] = field(default_factory=dict)
    made: tuple[Path, ...] = ()  # directories systemd creates for the service

    @property
    def credentials_dir(self) -> Path:
        return Path("/run/credentials") / self.unit.name

    def made_by_systemd(self, path: Path) -> bool:
        """Whether `path` lies in a directory systemd creates for the service."""
        return any(path.is_relative_to(directory) for directory in self.made)


def find_unit(given: str | None) -> Path:
    """The unit file named, or the installed edge-agent.service; UnitNotFound if none."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise UnitNotFound(f"{given}: no such unit file")
        return path
    for directory in UNIT_DIRS:
        if (directory / UNIT).is_file():
            return directory / UNIT
    places = ", ".join(str(d) for d in UNIT_DIRS)
    raise UnitNotFound(
        f"{UNIT} is not installed (looked in {places}); name the unit file: "
        "--for-systemd systemd/edge-agent.service"
    )


def read_unit(unit: Path) -> ServiceView:
    """The view of the service that `unit` and its drop-ins describe."""
    lists: dict[str, list[str]] = {}
    for path in (unit, *_drop_ins(unit)):
        for key, value in _service_settings(path.read_text(encoding="utf-8", errors="replace")):
            if key in _CREDENTIALS or key in DIRECTORIES:
                if value:
                    lists.setdefault(key, []).append(value)
                else:
                    lists.pop(key, None)  # an empty assignment resets the list
    environ: dict[str, str] = {}
    made: list[Path] = []
    for key, (variable, base) in DIRECTORIES.items():
        names = [name for value in lists.get(key, []) for name in value.split()]
        paths = [base / name.split(":")[0] for name in names]  # name[:mode] in newer systemd
        if paths:
            environ[variable] = ":".join(str(p) for p in paths)
            made += paths
    credentials: dict[str, Credential] = {}
    for key in _CREDENTIALS:
        for value in lists.get(key, []):
            credential = _credential(key, value)
            credentials.setdefault(credential.id, credential)  # the first one wins
    view = ServiceView(unit, environ, credentials, tuple(made))
    if credentials:
        environ["CREDENTIALS_DIRECTORY"] = str(view.credentials_dir)
    return view


def _credential(key: str, value: str) -> Credential:
    ident, sep, rest = value.partition(":")
    setting = f"{key}={value}"
    if key == "SetCredential":
        return Credential(ident, None, setting)
    encrypted = key == "LoadCredentialEncrypted"
    if sep and rest.startswith("/"):
        return Credential(ident, Path(rest), setting)
    name = (rest if sep and rest else ident) + (".encrypted" if encrypted else "")
    found = next((d / name for d in CREDSTORE if (d / name).exists()), CREDSTORE[0] / name)
    return Credential(ident, found, setting)


def _drop_ins(unit: Path) -> list[Path]:
    """`<unit>.d/*.conf` beside the unit and in the usual places, by file name; a file in
    an earlier place hides one of the same name in a later one."""
    found: dict[str, Path] = {}
    for directory in (unit.parent, *UNIT_DIRS):
        folder = directory / f"{unit.name}.d"
        if folder.is_dir():
            for conf in folder.glob("*.conf"):
                found.setdefault(conf.name, conf)
    return [found[name] for name in sorted(found)]


def _service_settings(text: str) -> list[tuple[str, str]]:
    """The KEY=VALUE lines of the [Service] section, continuation lines joined."""
    settings = []
    section = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if section == "Service" and sep:
            settings.append((key.strip(), value.strip()))
    return settings
