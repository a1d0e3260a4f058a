"""OPC UA: a server's variables as a device's points, read per poll or subscribed to.

Importing this package imports asyncua; `drivers.make_driver` imports it only
when a device speaks OPC UA. See README.md in this folder.
"""

from drivers.opcua.browse import Variable, browse, table
from drivers.opcua.driver import OpcUaDriver

__all__ = ["OpcUaDriver", "Variable", "browse", "table"]
