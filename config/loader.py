"""From a YAML file to a validated, resolved `Config`, or to every problem in it.

The file is read into a Document that knows where every value was written
(config/parse.py, imported only when a file is read: the daemon reads its config in
a child process and never needs PyYAML itself, 0.9 MiB of its memory). The whole
file is validated for its schema errors, and each section, device and rule once
more on its own: the cross-field checks (config/checks/) run on every part that
validated, so one run reports every problem, not a second batch after the first is
fixed.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from cloud_sync.http.settings import HttpSettings
from config import checks
from config.base import DeviceBase
from config.checks import DeviceLink, Parts, ValidDevice
from config.errors import TOP, Document, NodePath, translate, unknown
from config.factors import shipped
from config.models import Buffer, Config, Destination, Emissions, Gateway, Rule
from config.profiles import (
    Profile,
    Sourced,
    list_profiles,
    merge_points,
    profile_model,
    profile_path,
)
from config.valid_devices import valid_devices
from domain.errors import ConfigInvalid, Problem, Severity
from drivers.registry import PROTOCOLS, spec_of

_SECTIONS: dict[str, TypeAdapter[Any]] = {
    "gateway": TypeAdapter(Gateway),
    "buffer": TypeAdapter(Buffer),
    "sync": TypeAdapter(HttpSettings),
    "emissions": TypeAdapter(Emissions),
}
_RULE = TypeAdapter(Rule)
_DESTINATION = TypeAdapter(Destination)
_LINKS = {key: TypeAdapter(spec.settings) for key, spec in PROTOCOLS.items()}


@dataclass(frozen=True)
class LoadedConfig:
    """A config that passed every check; `warnings` are worth showing all the same."""

    config: Config
    warnings: list[Problem]
    path: Path
    # the text as validated, zlib-compressed: a file of meters written out repeats itself
    # (5,000 meters: 7.5 MiB of text, 84 KiB packed in 11 ms), and the daemon keeps it
    # for months for problem_at; the parsed node tree is not kept (see there)
    packed: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return zlib.decompress(self.packed).decode("utf-8")

    def problem_at(self, path: NodePath, message: str, *, severity: Severity = "error") -> Problem:
        """A problem found later (an unreadable token file) at the field's position.

        The text is parsed again for it: a YAML node tree with positions costs about
        100 times the text in memory (40 MiB for 200 meters), for an error that is rare.
        """
        from config.parse import parse_document

        doc = parse_document(self.text, str(self.path))
        return doc.problem(path, message, severity=severity)


@dataclass(frozen=True)
class LoadedProfile:
    profile: Profile
    doc: Document

    @property
    def points(self) -> list[Sourced]:
        return [Sourced(p, self.doc, ("points", i)) for i, p in enumerate(self.profile.points)]


def load_config(
    path: str | Path, require_env: bool = False, *, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Read, validate and resolve a config; ConfigInvalid lists every problem found.

    `require_env`: an unset ${VAR} in a path field is an error (the daemon)
    rather than a warning (`check` on a workstation). `environ` defaults to
    the process environment.
    """
    from config.parse import read_text

    text = read_text(Path(path), str(path))
    with collector_paused():
        config, problems = _checked(text, str(path), environ, require_env)
    packed = zlib.compress(text.encode("utf-8"), 1)
    return LoadedConfig(config, sorted(dict.fromkeys(problems)), Path(path), packed)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Loading allocates millions of objects that all live until it ends, and no cycles
    worth collecting: the cyclic collector would walk the growing heap again and again
    (a 5,000-meter file: 9.9 s to parse with it, 4.9 s without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _shared(points: list[Any], seen: dict[Any, Any], known: dict[Any, Any]) -> list[Any]:
    """Identical points of different devices as one (frozen) model: 200 meters of one
    type, by profile or written out, hold one set of points instead of 200.

    Most are one already (config/valid_devices.py); `known` holds those by identity, so
    each distinct model is compared with the others once, not each of 100,000 uses, and
    each list of them (a tuple of ids) is made once: each device gets a copy."""
    listed = tuple(map(id, points))
    out = known.get(listed)
    if out is None:
        out = known[listed] = []
        for point in points:
            shared = known.get(id(point))
            if shared is None:
                shared = known[id(point)] = seen.setdefault(point, point)
            out.append(shared)
    return list(out)


def load_config_apart(
    path: str | Path,
    require_env: bool = False,
    *,
    meanwhile: Callable[[], object] | None = None,
) -> LoadedConfig:
    """`load_config` in a forked child, for the long-running daemon.

    Loading keeps the file's data and several validation passes in memory at once
    (about 100 MiB for 5,000 meters written out in full; with a node tree when a
    problem needs positions). In the daemon that peak would stay as fragmented heap
    for months; in a child it leaves with the child, and only the pickled result (the
    models) comes back. Where fork is unavailable or the child dies, the config is
    loaded here instead. `meanwhile` runs here while the child loads, on the other
    core: what the daemon needs next anyway (its own imports).
    """
    if not hasattr(os, "fork"):
        return load_config(path, require_env)
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns if threads run; the child only loads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: load, send the result or the problems, leave at once
        code = 1
        try:  # whatever happens, the child must never return into the daemon's code
            os.close(read)
            try:
                result: LoadedConfig | ConfigInvalid = load_config(path, require_env)
            except ConfigInvalid as exc:
                result = exc
            with os.fdopen(write, "wb") as out:  # and the factor file, read with it
                pickle.dump((result, shipped()), out, protocol=pickle.HIGHEST_PROTOCOL)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        if meanwhile is not None:
            meanwhile()
    finally:  # the child is read and reaped whatever meanwhile did
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
    try:
        with collector_paused():  # 1.4 MiB of models at 5,000 meters, all kept
            answer, factor_data = pickle.loads(data) if status == 0 else (None, None)
        shipped(factor_data)
    except Exception:
        answer = None
    if isinstance(answer, ConfigInvalid):
        raise answer
    if isinstance(answer, LoadedConfig):
        return answer
    return load_config(path, require_env)  # the child failed: do it here after all


def _checked(
    text: str, file: str, environ: Mapping[str, str] | None, require_env: bool
) -> tuple[Config, list[Problem]]:
    from config.parse import parse_document

    doc = parse_document(text, file)
    if doc.data is None:
        message = "the file is empty; a config needs at least gateway: and sync:"
        raise ConfigInvalid([doc.problem((), message)])
    if not isinstance(doc.data, dict):
        message = f"must be a mapping of sections (gateway:, sync:, devices: ...), not {_kind(doc)}"
        raise ConfigInvalid([doc.problem((), message)])
    profiles, profile_problems = _profiles(doc)
    parts = _parts(doc, profiles)
    config, problems = _validate_config(doc, parts.every_device)
    problems += profile_problems
    problems += checks.check_config(parts, doc)
    parts, env_problems = checks.expand_env(parts, doc, environ, require_env)
    problems += env_problems
    if config is None or _errors(problems):
        raise ConfigInvalid(problems)
    seen: dict[Any, Any] = {}
    known: dict[Any, Any] = {}  # the points are alive until the end: their ids are theirs
    devices = [
        valid.model.model_copy(
            update={"points": _shared([s.point for s in valid.points], seen, known)}
        )
        for valid in parts.devices.values()
    ]
    config = config.model_copy(
        update={
            "buffer": parts.buffer,
            "sync": parts.sync,
            "devices": devices,
            "destinations": list(parts.destinations.values()),
        }
    )
    return config, problems


def load_profile(name: str) -> LoadedProfile:
    """A shipped profile, validated with its points checked; ConfigInvalid if not."""
    if name not in list_profiles():
        raise ConfigInvalid([Problem(name, 1, 1, TOP, unknown("profile", name, list_profiles()))])
    path = profile_path(name)
    from config.parse import read_document

    doc = read_document(path, _display(path))
    profile, problems = validate(doc, profile_model(doc.data))
    if profile is None:
        raise ConfigInvalid(problems)
    loaded = LoadedProfile(profile, doc)
    problems = checks.check_points(loaded.points)
    if problems:
        raise ConfigInvalid(problems)
    return loaded


def validate(doc: Document, model: type[BaseModel]) -> tuple[Any, list[Problem]]:
    """The model from the document's data (strict: YAML already typed it), or the problems."""
    try:
        return model.model_validate(doc.data, strict=True), []
    except ValidationError as exc:
        return None, translate(exc, doc, model)


def _validate_config(doc: Document, every_device: bool) -> tuple[Config | None, list[Problem]]:
    """The whole file validated for its schema errors, each at its node.

    When every device validated on its own (in _parts, which the config then takes them
    from), they are left out here: validating them twice was a third of checking a
    5,000-meter file (0.3 s). Any device with an error is validated within the file, so
    its errors read as they always have.
    """
    if not every_device:
        return validate(doc, Config)
    data = {key: value for key, value in doc.data.items() if key != "devices"}
    try:
        return Config.model_validate(data, strict=True), []
    except ValidationError as exc:
        return None, translate(exc, doc, Config)


def _profiles(doc: Document) -> tuple[dict[str, LoadedProfile], list[Problem]]:
    """Each profile the devices name, loaded once; problems at the `profile` key or in the file."""
    loaded: dict[str, LoadedProfile] = {}
    problems: list[Problem] = []
    broken: set[str] = set()
    devices, known = doc.data.get("devices"), list_profiles()
    for i, device in enumerate(devices if isinstance(devices, list) else []):
        name = device.get("profile") if isinstance(device, dict) else None
        if not isinstance(name, str):
            continue
        at: NodePath = ("devices", i, "profile")
        if name not in known:
            problems.append(doc.problem(at, unknown("profile", name, known)))
            continue
        if name not in loaded and name not in broken:
            try:
                loaded[name] = load_profile(name)
            except ConfigInvalid as exc:
                problems += exc.problems
                broken.add(name)
                continue
        protocols = [p for p in PROTOCOLS if p in device]
        family = loaded[name].profile.protocol if name in loaded else None
        if family and len(protocols) == 1 and PROTOCOLS[protocols[0]].family != family:
            message = f"'{name}' is a {family} profile; this device speaks {protocols[0]}"
            problems.append(doc.problem(at, message))
    return loaded, problems


def _parts(doc: Document, profiles: dict[str, LoadedProfile]) -> Parts:
    """Each section, device and rule validated on its own; what did not validate is left out.

    Its errors are not collected here: validating the whole file reports them.
    """
    data: dict[str, Any] = doc.data
    sections: dict[str, Any] = {}
    for name, adapter in _SECTIONS.items():
        if name in data:
            sections[name] = _valid(adapter, data[name])
        else:  # a section left out is its default, or missing if it has none
            field = Config.model_fields[name]
            sections[name] = None if field.is_required() else field.get_default()
    devices, every_device = valid_devices(data.get("devices", []))
    rules, _ = _valid_items(data.get("rules", []), _RULE)
    destinations, _ = _valid_items(data.get("destinations", []), _DESTINATION)
    return Parts(
        **sections,
        destinations=destinations,
        devices={i: _with_points(doc, i, device, profiles) for i, device in devices.items()},
        rules=rules,
        every_device=every_device,
        links=_links(data.get("devices", []), devices),
    )


def _links(items: Any, devices: dict[int, DeviceBase]) -> dict[int, DeviceLink]:
    """Every device's link that validates: a valid device's, or the link alone of a device
    with an error elsewhere (so the meters of its serial line are checked all the same)."""
    links: dict[int, DeviceLink] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        if i in devices:
            spec = spec_of(devices[i])
            links[i] = DeviceLink(devices[i].name, spec, spec.link(devices[i]))
            continue
        keys = [key for key in PROTOCOLS if isinstance(item, dict) and key in item]
        if len(keys) != 1:
            continue
        settings = _valid(_LINKS[keys[0]], item[keys[0]])
        if settings is not None:
            name = item.get("name")
            links[i] = DeviceLink(
                name if isinstance(name, str) else "?", PROTOCOLS[keys[0]], settings
            )
    return links


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    """The value validated as the models validate it within the file, or None."""
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError:
        return None


def _valid_items(items: Any, adapter: TypeAdapter[Any]) -> tuple[dict[int, Any], bool]:
    """The items of a list that validate, by index, and whether all of them did."""
    if not isinstance(items, list):
        return {}, False
    valid = {i: _valid(adapter, item) for i, item in enumerate(items)}
    valid = {i: item for i, item in valid.items() if item is not None}
    return valid, len(valid) == len(items)


def _with_points(
    doc: Document, index: int, device: DeviceBase, profiles: dict[str, LoadedProfile]
) -> ValidDevice:
    """The device with its profile's points merged with its own, if its profile can be used."""
    own = [Sourced(p, doc, ("devices", index, "points", j)) for j, p in enumerate(device.points)]
    if device.profile is None:
        return ValidDevice(device, own)
    profile = profiles.get(device.profile)
    if profile is None or profile.profile.protocol != spec_of(device).family:
        return ValidDevice(device, own, complete=False)  # _profiles reported why
    return ValidDevice(device, merge_points(profile.points, own))


def _kind(doc: Document) -> str:
    return "a list" if isinstance(doc.data, list) else f"a single value ({_root_text(doc)})"


def _root_text(doc: Document) -> str:
    import yaml  # imported by the parse already (see the module's docstring)

    root = doc.values.get(())
    return root.value if isinstance(root, yaml.ScalarNode) else str(doc.data)


def _errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def _display(path: Path) -> str:
    """A profile's path relative to the working directory when it is below it (and not /)."""
    cwd = Path.cwd()
    if cwd == Path(cwd.anchor) or not path.is_relative_to(cwd):
        return str(path)
    return str(path.relative_to(cwd))
