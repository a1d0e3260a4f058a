"""DL/T 645-2007 electricity meters on RS-485.

`settings` declares the protocol (what `dlt645:` holds), `codec` frames and BCD
values (pure), `driver` the Dlt645Driver the agent polls, `simulator` meters on
a pseudo-terminal for tests and the demo. The port shared by the devices of
one bus lives in `_link`.
"""
