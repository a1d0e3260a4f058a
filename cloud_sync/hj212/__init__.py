"""An HJ 212 uplink: the agent as the field unit (现场机) of HJ 212-2017, a TCP client that
sends its intervals to a provincial platform (上位机) as `##`-framed ASCII and answers what
the platform asks. `frame` holds the wire (framing, CRC, the data segment, a stream
reader), `cp` the data area (items, numbers, time stamps, packets), `codes` the standard's
tables; all three are pure, without I/O. docs/hj212.md says which clause each rests on.
"""
