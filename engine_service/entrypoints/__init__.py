"""Thin entrypoints: the gRPC servicer, the `engine-service` process and `enginectl`."""
