"""The engine's API under its contract name, `engine_service.v1`.

The code generated from protos/engine_service/v1 lives in the client distribution
(durable-virt-tasks-client, package `durable_virt_tasks_client.v1`), so that a gRPC user can have
the stubs without the server; this server depends on it. Both `from engine_service.v1 import
engine_service_pb2` and `import engine_service.v1.engine_service_pb2` give those same modules
(one descriptor pool entry, one set of message classes).
"""

import sys

from durable_virt_tasks_client.v1 import engine_service_pb2 as engine_service_pb2
from durable_virt_tasks_client.v1 import engine_service_pb2_grpc as engine_service_pb2_grpc

sys.modules[f"{__name__}.engine_service_pb2"] = engine_service_pb2
sys.modules[f"{__name__}.engine_service_pb2_grpc"] = engine_service_pb2_grpc

__all__ = ["engine_service_pb2", "engine_service_pb2_grpc"]
