"""Generated from protos/vdsm_agent/v1 by `make protos`; do not edit."""
