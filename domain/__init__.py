"""The bottom floor: what every package may import and what imports none of them.

`errors` is the one exception tree, `reading` the value a driver produces,
`records` what the pipeline commits to the buffer (the interval record, events,
counter state), `batch` the schema of a batch: the contract between the agent's
uplink and a receiver, which imports nothing else of the agent. Nothing here
knows a protocol, a file format or a destination.
"""
