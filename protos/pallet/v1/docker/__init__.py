"""Docker Engine API JSON shapes of pallet's API messages, hand-written beside the
generated code: what the CLI prints (`inspect`, `events --format`) and what palletd's
Docker API gateway answers are made by the same functions, so they cannot drift apart.

Each module takes `pallet.v1` messages and returns plain dicts (JSON-ready); none imports
the daemon or the client.
"""
