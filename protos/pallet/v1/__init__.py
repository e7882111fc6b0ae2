"""Generated protobuf and gRPC code for the pallet.v1 API (see the .proto files beside it).

Regenerate with `python -m grpc_tools.protoc` as `tests/unit/test_protos_fresh.py` does;
never edit the *_pb2*.py files by hand.
"""
