"""One OPC UA subscription carrying a device's nodes, and how to tell it is alive.

The server answers every publish request with changes or, when nothing
changed for `KEEPALIVE_COUNT` publishing intervals, with a keep-alive. So a
subscription that sends nothing at all for `SILENT_AFTER` keep-alive periods
is dead, whatever the values do: after a server restart some servers keep the
socket and the session but forget the subscription. The driver then reads a
server node: if the server answers, it re-creates the subscription.

The subscription is not registered with asyncua's client (asyncua would
re-create it on its own schedule); the driver alone decides.

Each value carries the time the server took it (SourceTimestamp, else
ServerTimestamp), on the server's clock, or on the clock of the device behind
it: a gateway may pass on each PLC's own. `taken_at` puts it on the agent's
clock with the offset seen on arrival, per monitored item: the agent's time
of arrival minus the newest time among that item's values in the publish
response. They changed since the previous publish, so that offset is the
clock difference plus the link's latency plus at most about one publishing
interval; the smallest seen is kept, and one much larger than it (the clock
stepped back) replaces it. A server whose clock is off by minutes still gives
changes spaced as they happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeNotif, Subscription

from domain.errors import EdgeAgentError
from drivers.opcua._link import call
from drivers.opcua.codec import explain
from drivers.opcua.settings import OpcUaPoint

KEEPALIVE_COUNT = 3  # publishing intervals without change before the server sends a keep-alive
SILENT_AFTER = 2  # keep-alive periods without any message before the subscription is dead
MAX_QUEUE = 1000  # server-side queue of one counter's changes between two publishes
MIN_LIFETIME_S = 120.0  # the server keeps a subscription nobody asks for this long

OnValue = Callable[[OpcUaPoint, ua.DataValue, float | None], None]
OnRefused = Callable[[OpcUaPoint, str], None]
OnDead = Callable[[str], None]


class _Subscription(Subscription):
    """asyncua's subscription, telling the feed when each publish response arrives."""

    def __init__(self, session: Any, params: ua.CreateSubscriptionParameters, feed: Feed) -> None:
        super().__init__(session, params, feed)
        self._feed = feed

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        arrived = self._feed.arrived(publish_result)
        await super().publish_callback(publish_result)  # values go out in tasks, in order
        # heard once those tasks ran: a poll never sees the time without the values
        asyncio.get_running_loop().call_soon(self._feed.heard, arrived)


class Feed:
    """A live subscription: notifications go to `on_value` with the time the server took
    each value (agent clock, None if the server gave none), its death to `on_dead`."""

    def __init__(
        self, targets: dict[ua.NodeId, list[OpcUaPoint]], on_value: OnValue, on_dead: OnDead
    ) -> None:
        self._targets = targets
        self._on_value = on_value
        self._on_dead = on_dead
        self._subscription: Subscription | None = None
        self._opened = time.monotonic()
        self.since = time.time()  # agent clock: no value of this subscription was taken before
        self.heard_at: float | None = None  # agent clock: the last publish, keep-alives too
        self._offsets: dict[int, float] = {}  # per item: agent clock - server's, + latency
        self._slack = 3.0  # a publish this much later than the offset says: the clock stepped
        self.limit = 1.0  # seconds of silence after which the subscription is dead
        self.dead: str | None = None  # why the server says it is gone, if it said so
        self.closed = False

    @classmethod
    async def open(
        cls,
        client: Client,
        targets: dict[ua.NodeId, list[OpcUaPoint]],
        *,
        publishing: float,
        sampling: float,
        timeout: float,
        where: str,
        on_value: OnValue,
        on_refused: OnRefused,
        on_dead: OnDead,
    ) -> Feed:
        """Create the subscription and its monitored items; domain.errors only.

        Counters are sampled every `sampling` seconds with a queue that holds a
        publishing interval's worth of changes; gauges once per publishing
        interval, latest only. A node the server refuses goes to `on_refused`.
        """
        feed = cls(targets, on_value, on_dead)
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=publishing * 1000,
            # in publishing intervals; the standard wants at least three keep-alive periods
            RequestedLifetimeCount=max(3 * KEEPALIVE_COUNT, math.ceil(MIN_LIFETIME_S / publishing)),
            RequestedMaxKeepAliveCount=KEEPALIVE_COUNT,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        subscription = _Subscription(client.uaclient.session, params, feed)
        result = await call(f"{where}: create subscription", subscription.init(), timeout)
        feed._subscription = subscription
        interval = result.RevisedPublishingInterval / 1000 or publishing
        feed.limit = max(interval * max(result.RevisedMaxKeepAliveCount, 1) * SILENT_AFTER, 1.0)
        feed._slack = 2 * interval + 1.0
        try:
            counters = [n for n, ps in targets.items() if any(p.kind == "counter" for p in ps)]
            gauges = [n for n in targets if n not in counters]
            queue = min(MAX_QUEUE, 2 * math.ceil(interval / sampling) + 1)
            for nodes, every, size in ((counters, sampling, queue), (gauges, interval, 1)):
                if not nodes:
                    continue
                handles = await call(
                    f"{where}: create monitored items",
                    subscription.subscribe_data_change(
                        [client.get_node(n) for n in nodes],
                        queuesize=size,
                        # asyncua annotates ua.Double, its own float subclass; a float it is
                        sampling_interval=every * 1000,  # type: ignore[arg-type]
                    ),
                    timeout,
                )
                for node, handle in zip(nodes, handles, strict=True):
                    if isinstance(handle, ua.StatusCode):
                        for point in targets[node]:
                            on_refused(point, explain(handle))
        except BaseException:
            await feed.close(timeout, where)
            raise
        feed._opened = time.monotonic()
        return feed

    def arrived(self, result: ua.PublishResult) -> float:
        """A publish response is here: update the items' clock offsets; the agent's time now."""
        now = time.time()
        newest: dict[int, float] = {}
        for item in _items(result):
            taken = server_time(item.Value)
            if taken is not None:
                newest[item.ClientHandle] = max(taken, newest.get(item.ClientHandle, taken))
        for handle, taken in newest.items():
            seen = now - taken
            offset = self._offsets.get(handle)
            if offset is None or seen < offset or seen > offset + self._slack:
                self._offsets[handle] = seen
        return now

    def heard(self, at: float) -> None:
        self.heard_at = at if self.heard_at is None else max(self.heard_at, at)

    def taken_at(self, item: ua.MonitoredItemNotification) -> float | None:
        """When the server took the item's value, on the agent's clock, not before the
        subscription; None if the server did not say."""
        taken = server_time(item.Value)
        offset = self._offsets.get(item.ClientHandle)
        if taken is None or offset is None:
            return None
        return max(taken + offset, self.since)

    def silent_for(self) -> float:
        """Seconds since the server last sent anything (data or keep-alive) for it."""
        last = self._subscription.last_publish_at if self._subscription else None
        return time.monotonic() - max(last or 0.0, self._opened)

    async def close(self, timeout: float, where: str) -> None:
        """Delete it on the server if the server is there to hear it; never raises."""
        self.closed = True
        if self._subscription is None:
            return
        with contextlib.suppress(EdgeAgentError):  # the server forgot it already, or is gone
            await call(f"{where}: delete subscription", self._subscription.delete(), timeout)

    # --- asyncua calls these (the handler protocol) ---------------------------------

    def datachange_notification(self, node: Node, value: Any, data: DataChangeNotif) -> None:
        if self.closed:
            return
        item = data.monitored_item
        taken = self.taken_at(item)
        for point in self._targets.get(node.nodeid, ()):
            self._on_value(point, item.Value, taken)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        if self.closed or status.Status is None or status.Status.is_good():
            return
        self.dead = f"the server ended the subscription: {explain(status.Status)}"
        self._on_dead(self.dead)


def server_time(data: ua.DataValue | None) -> float | None:
    """When the server says it took `data` (SourceTimestamp, else ServerTimestamp), as
    seconds since the epoch on the server's clock; None if it says neither."""
    if data is None:
        return None
    for stamp in (data.SourceTimestamp, data.ServerTimestamp):
        if isinstance(stamp, datetime):
            taken = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
            if taken > 0:  # not the "no time" of 1601 or 1970
                return taken
    return None


def _items(result: ua.PublishResult) -> Iterator[ua.MonitoredItemNotification]:
    for notification in result.NotificationMessage.NotificationData or ():
        if isinstance(notification, ua.DataChangeNotification):
            yield from notification.MonitoredItems
