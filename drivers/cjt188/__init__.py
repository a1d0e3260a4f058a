"""CJ/T 188 water, heat and gas meters on RS-485 or M-Bus (through a converter).

`settings` declares the protocol (what `cjt188:` holds), `units` the standard's
unit codes, `codec` frames and the fields of a data identifier (pure), `driver`
the Cjt188Driver the agent polls. The port shared by the devices of one bus
lives in `_link`.
"""
