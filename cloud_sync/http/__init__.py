"""The central platform's HTTP batch endpoint (PRODUCT.md, "The contract with the central
platform"): gzip JSON batches, a bearer token, an Idempotency-Key per batch.
"""
