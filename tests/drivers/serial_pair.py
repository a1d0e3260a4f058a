"""A null-modem cable in-process: two pseudo-terminals whose masters are joined.

What a program writes to end `a` is read at end `b` and back, as through an
RS-485 adapter pair, so a real serial client and a real serial server (each
opening a device path) can talk. Parity stays N: this kernel's ptys refuse E.
"""

from __future__ import annotations

import asyncio
import os
import tty
from collections import Counter


class NullModem:
    def __init__(self) -> None:
        self._m1, self._s1 = os.openpty()
        self._m2, self._s2 = os.openpty()
        for fd in (self._s1, self._s2):
            tty.setraw(fd)
        self.a = os.ttyname(self._s1)
        self.b = os.ttyname(self._s2)
        self.mute_b = False  # drop what end b sends: a line that only one way works
        self.silent_units: set[int] = set()  # RTU replies of these units never arrive
        self.requests: Counter[int] = Counter()  # RTU requests seen, per unit
        self.corrupt_units: set[int] = set()  # RTU replies of these units arrive with a bad CRC
        self.noise = b""  # bytes the line adds before every reply (a transceiver turning round)
        self.repeat_units: set[int] = set()  # RTU replies of these units arrive twice

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._m1, self._copy, self._m1, self._m2, False)
        loop.add_reader(self._m2, self._copy, self._m2, self._m1, True)

    def _copy(self, source: int, target: int, from_b: bool) -> None:
        try:
            data = os.read(source, 4096)
        except OSError:
            return
        if data and not from_b:
            self.requests[data[0]] += 1
        if from_b and (self.mute_b or (data and data[0] in self.silent_units)):
            return
        if from_b and data and data[0] in self.corrupt_units:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if from_b and data and data[0] in self.repeat_units:
            asyncio.get_running_loop().call_later(0.005, os.write, target, data)
        if from_b and data:
            data = self.noise + data
        os.write(target, data)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self._m1, self._m2):
            loop.remove_reader(fd)
        for fd in (self._m1, self._s1, self._m2, self._s2):
            os.close(fd)
