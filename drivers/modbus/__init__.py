"""Modbus TCP and RTU: `settings` declares both protocols, `codec` plans requests and
decodes registers (pure), `driver` reads and writes, `tcp` and `rtu` reach the meter.
"""
