"""DL/T 645-2007 electricity meters on RS-485.

`codec` frames and BCD values (pure), `driver` the Dlt645Driver the agent
polls, `simulator` meters on a pseudo-terminal for tests and the demo. The
port shared by the devices of one bus lives in `_link`.
"""

from drivers.dlt645.codec import DecodeError, Frame, FrameError, parse
from drivers.dlt645.driver import Dlt645Driver

__all__ = ["DecodeError", "Dlt645Driver", "Frame", "FrameError", "parse"]
