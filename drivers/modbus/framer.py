"""An RTU framer that hunts for the reply instead of throwing the line's bytes away.

pymodbus's RTU framer drops everything it holds when a CRC does not match, so
one noise byte before a reply (an RS-485 driver switching direction often
emits a 0x00 or 0xFF) costs the whole reply. Here a failed CRC moves the scan
on by one byte, so the real frame behind the noise is still found.
"""

from __future__ import annotations

from pymodbus.framer import FramerRTU


class ResyncingRtuFramer(FramerRTU):
    def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
        start = 0
        while len(data) - start >= self.MIN_SIZE:
            used, dev_id, tid, frame = super().decode(data[start:])
            if frame or not used:  # a frame, or not enough bytes yet
                return (start + used if used else 0), dev_id, tid, frame
            start += 1  # the CRC failed where the scan began: try one byte later
        return 0, 0, 0, self.EMPTY
