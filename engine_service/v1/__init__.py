"""Generated from protos/engine_service/v1 by `make protos`; do not edit."""
