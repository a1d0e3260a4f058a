"""The uplinks: each destination delivers what is pending for it in the buffer.

`base` is the interface every destination implements, `spec` what a kind of
destination declares (its settings model, its checks, how it is made) and
`registry` lists the kinds, one line each. A kind is one folder: `http/` sends
gzip JSON batches to the central platform. docs/add-an-uplink.md says how to
add one.
"""
