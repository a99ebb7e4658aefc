"""gRPC servicers: translate requests to commands and queries, and back."""
