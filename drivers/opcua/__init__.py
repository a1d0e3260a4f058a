"""OPC UA: a server's variables as a device's points, read per poll or subscribed to.

`settings` declares the protocol without asyncua; `driver` (OpcUaDriver) and
`browse` import asyncua, and are loaded only when a device speaks OPC UA. See
README.md in this folder.
"""
