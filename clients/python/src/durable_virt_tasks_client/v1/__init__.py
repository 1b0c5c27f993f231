"""The engine's API, generated from protos/engine_service/v1 by `make protos`; do not edit.

The messages and the stub are those of the proto package `engine_service.v1`; the server
re-exports these modules as `engine_service.v1.*` too.
"""
