"""Generated protobuf and gRPC modules; never edited by hand (see generate.py)."""
