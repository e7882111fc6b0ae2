"""Generated protobuf and gRPC code for the pallet.v1 API (see the .proto files beside it).

`errors.py` is hand-written: the one error tree that the daemon, the shim and clients share.
Regenerate the rest with `python -m grpc_tools.protoc` as `tests/unit/test_protos_fresh.py` does;
never edit the *_pb2*.py files by hand.
"""
