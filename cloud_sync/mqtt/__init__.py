"""The `mqtt` destination: the buffer's batches published to a broker at QoS 1."""
