"""The central platform's HTTP batch endpoint (PRODUCT.md, "The contract with the central
platform"): gzip JSON batches, a bearer token, an Idempotency-Key per batch.
"""

import sys

# httpx's __init__ tries to import its command line (httpx/_main.py: click, pygments,
# rich) and carries on without it when that fails. The daemon never runs it, and the
# attempt costs 1.0 MiB of RSS (an idle agent 55.3 -> 54.3 MiB). A None in sys.modules
# makes exactly that import fail; this package is imported before anything imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
