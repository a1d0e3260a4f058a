"""Drivers: one folder per protocol, each known through one line in drivers.registry.

`base` is the interface a driver implements and the optional abilities it may
declare; `spec` what the rest of the agent knows about a protocol. Nothing is
imported here: a driver module is loaded only when a device uses it, so an
agent without OPC UA devices never loads asyncua.
"""
