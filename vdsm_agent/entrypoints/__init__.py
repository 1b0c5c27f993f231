"""Thin entrypoints: the gRPC servicer, the `vdsm-agent` process and the health probe."""
