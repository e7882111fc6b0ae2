"""The Docker Engine API, served by palletd beside its gRPC API (`gateway`), one module of
endpoints per object kind, each handler calling the gRPC servicers (`calls`)."""
