"""The bottom floor: what every package may import and what imports none of them.

`errors` is the one exception tree, `reading` the value a driver produces,
`records` what the pipeline commits to the buffer (intervals, events, counter
state). Nothing here knows a protocol, a file format or a destination.
"""
