"""DL/T 645 electricity meters on RS-485, editions 2007 and 1997.

`settings` declares the protocol (what `dlt645:` holds, the edition included),
`codec` frames and BCD values of both editions (pure), `driver` the
Dlt645Driver the agent polls, `scan` finds the meters on a port for
`edge-agent scan`, `simulator` 2007 meters on a pseudo-terminal for tests and
the demo. The port shared by the devices of one bus lives in `_link`.
"""
