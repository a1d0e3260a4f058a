"""Each device of a file validated on its own, its points validated once per distinct point.

A plant's meters are mostly of a few types, written out point by point: 5,000 meters
of 20 points are 100,000 point mappings but perhaps 20 distinct ones. Validating each
of them was the larger part of validating the file (0.3 s), and each made a model of
its own, which the loader then had to find equal to the others to share them.

So a device is validated without its points, and each point by itself, through a
cache keyed by the point's keys and the identity of its values: config/parse.py
builds each distinct scalar once (`type: float32` is one object wherever it is
written), so two point mappings written alike hold the same objects and find the
same model, while `1` and `1.0` or `true`, equal in Python but not to a strict
model, never meet. A list of points is one object in as many devices as wrote it
alike (config/alike.py): its models are found once, and the devices share the list.
The result is the model validating the whole device gives: the
device models hold no validator that looks at their points (checked here, for every
protocol, before the shortcut is taken), and a point's model sees only the point.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from config.base import DeviceBase
from config.models import Device

__all__ = ["valid_devices"]

_DEVICE: TypeAdapter[Any] = TypeAdapter(Device)
_POINTS: dict[type[DeviceBase], TypeAdapter[Any] | None] = {}  # by device model


def valid_devices(items: Any) -> tuple[dict[int, DeviceBase], bool]:
    """The devices of a list that validate, by index, and whether all of them did."""
    if not isinstance(items, list):
        return {}, False
    points: dict[tuple[Any, ...], Any] = {}
    lists: dict[tuple[Any, int], list[Any]] = {}  # by adapter and the written list's id
    valid = {}
    for i, item in enumerate(items):
        device = _valid_device(item, points, lists)
        if device is not None:
            valid[i] = device
    return valid, len(valid) == len(items)


def _valid_device(
    item: Any, cache: dict[tuple[Any, ...], Any], lists: dict[tuple[Any, int], list[Any]]
) -> DeviceBase | None:
    written = item.get("points") if isinstance(item, dict) else None
    if not isinstance(written, list) or not written:
        return _valid(_DEVICE, item)
    device = _valid(_DEVICE, {**item, "points": []})
    if device is None:
        return None
    adapter = _point_adapter(type(device))
    if adapter is None:  # a model that may look at its points: the whole device, as written
        return _valid(_DEVICE, item)
    points = lists.get((adapter, id(written)))  # the list is alive in the data: its id is its
    if points is None:
        points = _valid_points(adapter, written, cache)
        if points is None:
            return None
        lists[adapter, id(written)] = points
    return device.model_copy(update={"points": points})


def _valid_points(
    adapter: TypeAdapter[Any], written: list[Any], cache: dict[tuple[Any, ...], Any]
) -> list[Any] | None:
    points = []
    for raw in written:
        if not isinstance(raw, dict):
            return None  # not a point: the file's validation says so
        key = (adapter, *raw, *map(id, raw.values()))
        point = cache.get(key)
        if point is None:
            point = cache[key] = _valid(adapter, raw)
            if point is None:
                return None
        points.append(point)
    return points


def _point_adapter(model: type[DeviceBase]) -> TypeAdapter[Any] | None:
    """The adapter of a device model's point, if its points may be validated apart: a
    list of points, and no validator of the device's that could look at them."""
    if model not in _POINTS:
        _POINTS[model] = _made_point_adapter(model)
    return _POINTS[model]


def _made_point_adapter(model: type[DeviceBase]) -> TypeAdapter[Any] | None:
    decorators = model.__pydantic_decorators__
    on_points = any(
        "points" in d.info.fields or "*" in d.info.fields
        for d in decorators.field_validators.values()
    )
    annotation = model.model_fields["points"].annotation
    if decorators.model_validators or on_points or get_origin(annotation) is not list:
        return None
    return TypeAdapter(get_args(annotation)[0])


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    """The value validated as the models validate it within the file, or None."""
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError:
        return None
