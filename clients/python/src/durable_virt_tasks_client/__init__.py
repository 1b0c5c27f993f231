"""The engine's gRPC API for Python users, without the server: the generated stubs
(`durable_virt_tasks_client.v1`) and a small typed client (`EngineClient`)."""

from durable_virt_tasks_client.client import TERMINAL, EngineClient, is_terminal
from durable_virt_tasks_client.errors import CallError, FieldViolation, PreconditionViolation
from durable_virt_tasks_client.retry import NO_RETRY, RetryPolicy
from durable_virt_tasks_client.v1 import engine_service_pb2 as pb
from durable_virt_tasks_client.v1 import engine_service_pb2_grpc as pb_grpc

__all__ = [
    "NO_RETRY",
    "TERMINAL",
    "CallError",
    "EngineClient",
    "FieldViolation",
    "PreconditionViolation",
    "RetryPolicy",
    "is_terminal",
    "pb",
    "pb_grpc",
]
