"""The platform's requests on the open connection, answered as HJ 212-2017 lays out:
a request answer (CN 9011, QnRtn), the data asked for, then the result (CN 9012, ExeRtn).

- 2051, 2061, 2031 with BeginTime/EndTime: that history, from the buffer;
- 1011: the gateway's time; 1012 (set the time) is refused: the clock belongs to
  the system (NTP or the technician), never to one of its platforms;
- 1061/1062: get or set the real-time data interval, kept across restarts;
- 2011 starts real-time data (at the interval set), the notice 2012 stops it.

Anything else, or a request with the wrong PW or an MN that is not ours, is
refused with the standard's code, logged once per cause and counted.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from cloud_sync.hj212 import codes
from cloud_sync.hj212.cp import fields, parse_stamp, stamp
from cloud_sync.hj212.frame import Segment, flag, pack, segment
from cloud_sync.hj212.messages import data_messages
from domain.errors import FrameError

if TYPE_CHECKING:
    from cloud_sync.hj212.uplink import Hj212Uplink

log = logging.getLogger(__name__)

READY, REFUSED = codes.QN_RTN_READY, codes.QN_RTN_REFUSED
HISTORY = (codes.CN_MINUTE, codes.CN_HOUR, codes.CN_DAY)
LIVE_RANGE = (30, 3600)  # seconds: RtdInterval's range (table 4)
MAX_HISTORY = 50_000  # records one history request is sent at most


class Requests:
    """Answers for one uplink's platform."""

    def __init__(self, uplink: Hj212Uplink) -> None:
        self.uplink = uplink
        self._said: set[str] = set()  # causes already logged

    async def handle(self, request: Segment) -> None:
        settings = self.uplink.settings
        if request.cn is None or request.qn is None:
            return self._refused(f"a frame without {'CN' if request.cn is None else 'QN'}")
        if request.cn.startswith("90"):  # an answer (9011-9014) answers nothing of ours here
            return self._refused(f"an unasked-for answer CN={request.cn}")
        if request.pw != settings.pw:
            return await self._refuse(request, codes.QN_RTN_BAD_PW, "a request with another PW")
        if request.mn not in self.uplink.plan.mn.values():
            return await self._refuse(
                request, codes.QN_RTN_BAD_MN, f"a request for MN {request.mn}"
            )
        cn = request.cn
        if cn in HISTORY:
            return await self._history(request)
        if cn == codes.CN_GET_TIME:
            cp = _polid(request) + f"SystemTime={stamp(time.time(), self.uplink.tz)}"
            return await self._run(request, [cp])
        if cn == codes.CN_SET_TIME:
            why = "the gateway's clock belongs to the system (NTP), not to a platform"
            return await self._refuse(request, REFUSED, f"set time (1012) refused: {why}")
        if cn == codes.CN_GET_RTD_INTERVAL:
            return await self._run(request, [f"RtdInterval={self.uplink.live_interval:g}"])
        if cn == codes.CN_SET_RTD_INTERVAL:
            return await self._set_live(request)
        if cn == codes.CN_REALTIME:  # send real-time data (until 2012)
            await self._answer(request, codes.CN_REQUEST_ANSWER, f"QnRtn={READY}")
            return await self.uplink.pause_live(False)
        if cn == codes.CN_STOP_REALTIME:  # a notice: answered with 9013
            await self._answer(request, codes.CN_NOTICE_ANSWER, "")
            return await self.uplink.pause_live(True)
        await self._refuse(request, REFUSED, f"an unknown request CN={cn}")

    async def _history(self, request: Segment) -> None:
        uplink = self.uplink
        length = uplink.plan.length_of(request.cn or "")
        try:
            asked = fields(request.cp)
            begin = parse_stamp(asked["BeginTime"], uplink.tz)
            end = parse_stamp(asked["EndTime"], uplink.tz)
        except (FrameError, KeyError) as exc:
            return await self._failed(request, f"history request without a valid time: {exc}")
        if end < begin:
            return await self._failed(request, "history request ending before it begins")
        if length is None or uplink.store is None:
            return await self._failed(request, f"no {request.cn} data are sent to this platform")
        await self._answer(request, codes.CN_REQUEST_ANSWER, f"QnRtn={READY}")
        devices = uplink.plan.devices_of(request.mn or "")
        bodies = await uplink.store.intervals_between(devices, length, begin, end, MAX_HISTORY)
        messages = [m for m in data_messages(bodies, uplink.plan, uplink.tz) if m.cn == request.cn]
        for message in messages:  # each frame with a QN of its own (Appendix C, C.20)
            for frame, _ in uplink.frames(message, answer=False):
                await uplink.link.send(frame)
        done = codes.EXE_RTN_DONE if messages else codes.EXE_RTN_NO_DATA
        await self._answer(request, codes.CN_RESULT, f"ExeRtn={done}")

    async def _set_live(self, request: Segment) -> None:
        try:
            seconds = float(fields(request.cp)["RtdInterval"])
        except (FrameError, KeyError, ValueError):
            seconds = -1.0
        low, high = LIVE_RANGE
        if not low <= seconds <= high:
            return await self._failed(request, f"real-time interval outside {low}-{high}s")
        await self._answer(request, codes.CN_REQUEST_ANSWER, f"QnRtn={READY}")
        try:
            await self.uplink.set_live(seconds)
        except Exception as exc:  # the buffer refused the write (full, failing)
            self._refused(f"real-time interval not kept: {exc}")
            return await self._answer(request, codes.CN_RESULT, f"ExeRtn={codes.EXE_RTN_FAILED}")
        log.info("%s: the platform set real-time data every %gs", self.uplink.name, seconds)
        await self._answer(request, codes.CN_RESULT, f"ExeRtn={codes.EXE_RTN_DONE}")

    async def _run(self, request: Segment, answers: list[str]) -> None:
        """Ready, the data, done."""
        await self._answer(request, codes.CN_REQUEST_ANSWER, f"QnRtn={READY}")
        for cp in answers:
            await self._answer(request, request.cn or "", cp, st=self.uplink.settings.st)
        await self._answer(request, codes.CN_RESULT, f"ExeRtn={codes.EXE_RTN_DONE}")

    async def _failed(self, request: Segment, why: str) -> None:
        """Taken, but its conditions are wrong."""
        self._refused(why)
        await self._answer(request, codes.CN_REQUEST_ANSWER, f"QnRtn={READY}")
        await self._answer(request, codes.CN_RESULT, f"ExeRtn={codes.EXE_RTN_BAD_CONDITION}")

    async def _refuse(self, request: Segment, code: int, why: str) -> None:
        self._refused(why)
        await self._answer(request, codes.CN_REQUEST_ANSWER, f"QnRtn={code}")

    def _refused(self, why: str) -> None:
        self.uplink.status.refused += 1
        if why not in self._said:
            self._said.add(why)
            log.warning("%s: %s", self.uplink.name, why)

    async def _answer(
        self, request: Segment, cn: str, cp: str, st: str = codes.ST_INTERACTION
    ) -> None:
        uplink = self.uplink
        text = segment(
            qn=request.qn, st=st, cn=cn, pw=uplink.settings.pw,
            mn=request.mn,
            flag=flag(uplink.settings.version, answer=False, split=False), cp=cp,
        )  # fmt: skip
        await uplink.link.send(pack(text))


def _polid(request: Segment) -> str:
    """A get-time request may name the analyser (PolId); its answer names it too."""
    try:
        polid = fields(request.cp).get("PolId")
    except FrameError:
        return ""
    return f"PolId={polid};" if polid else ""
