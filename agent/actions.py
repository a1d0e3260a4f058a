"""Rule actions: the write (a Modbus coil, an OPC UA node ...) a raised or cleared rule
asks for, done by the device's driver if it `Writes`.

They run as tasks beside the polls, so a dead stack light never delays a
meter. A transient failure (timeout, lost link) is retried a few times under
tenacity; what still fails is logged and becomes an `action_failed` event,
never an exception in the daemon. Writes to one output keep their order (a
lock per output): a quick raise and clear end with the output cleared.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.rules import Action
from domain.errors import TransientError
from domain.records import EventRow
from drivers.base import Writes

log = logging.getLogger(__name__)

ATTEMPTS = 3
Locks = dict[tuple[str, str], asyncio.Lock]


def output(action: Action) -> str:
    """The output written, as a technician names it: 'coil 5', 'node ns=2;s=Lamp'."""
    return action.write.output()


def target(action: Action) -> tuple[str, str]:
    """The output a write goes to: writes to one target keep their order (one lock each)."""
    return action.device, output(action)


def describe(action: Action) -> str:
    return f"{action.device} {output(action)} = {action.value}"


async def run(
    action: Action, driver: object | None, locks: Locks, wait_max: float = 5.0
) -> EventRow | None:
    """Do one write; None when done, else the event saying why it was not. `locks` is
    the caller's (one per event loop): one lock per output keeps writes in order."""
    if not isinstance(driver, Writes):  # config checks ask for a device serving the write
        return _failed(action, f"{action.device} is not polled (its driver did not start)")
    lock = locks.setdefault(target(action), asyncio.Lock())
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.5, max=wait_max),
        reraise=True,
    )
    try:
        async with lock:
            async for attempt in retrying:
                with attempt:
                    await driver.write(action.write, action.value)
    except Exception as exc:  # every failure is reported, none escapes into the daemon
        return _failed(action, str(exc))
    log.info("rule %s: wrote %s", action.rule, describe(action))
    return None


def _failed(action: Action, why: str) -> EventRow:
    message = f"rule {action.rule}: could not write {describe(action)}: {why}"
    log.error("%s", message)
    return EventRow(time.time(), action.device, "action_failed", "warning", message)
