"""The gRPC message classes that Azure's proxy worker hands to Microsoft's worker library.

On Azure, the host talks gRPC (``FunctionRpc.proto``) to the Python proxy worker, which injects
its generated protobuf module into ``azure_functions_runtime`` as ``request.properties["protos"]``.
No package on the registries ships that generated module for the v2 library, so this file
declares the few messages that indexing builds, with the field names and enum numbers of
``FunctionRpc.proto``. Like protobuf messages, they refuse a field the schema does not declare,
so a worker code path that would fail against the real classes fails here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class Message:
    """A protobuf-like message: keyword fields only, unknown fields refused, unset fields default."""

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            # protobuf: ValueError: Protocol message X has no "y" field.
            raise ValueError(f'Protocol message {type(self).__name__} has no {sorted(unknown)[0]!r} field.')
        for name in self.FIELDS:
            setattr(self, name, values.get(name))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.FIELDS if getattr(self, k) is not None)
        return f"{type(self).__name__}({shown})"


class BindingInfo(Message):
    FIELDS = ("type", "direction", "data_type", "properties")
    # enum Direction { in = 0; out = 1; inout = 2; }  (``in`` is a keyword: reached by getattr)
    out = 1
    inout = 2
    # enum DataType { undefined = 0; string = 1; binary = 2; stream = 3; }
    undefined = 0
    string = 1
    binary = 2
    stream = 3


setattr(BindingInfo, "in", 0)  # the proto enum value `in` is a Python keyword


class RpcRetryOptions(Message):
    FIELDS = ("max_retry_count", "delay_interval", "minimum_interval", "maximum_interval", "retry_strategy")
    exponential_backoff = 0
    fixed_delay = 1


class RpcFunctionMetadata(Message):
    FIELDS = ("name", "directory", "script_file", "entry_point", "bindings", "is_proxy", "status", "language",
              "raw_bindings", "function_id", "managed_dependency_enabled", "retry_options", "properties")


class RpcException(Message):
    FIELDS = ("source", "stack_trace", "message", "is_user_exception", "type")


class StatusResult(Message):
    FIELDS = ("status", "result", "exception", "logs")
    # enum Status { Failure = 0; Success = 1; Cancelled = 2; }
    Failure = 0
    Success = 1
    Cancelled = 2


class WorkerMetadata(Message):
    FIELDS = ("runtime_name", "runtime_version", "worker_version", "worker_bitness", "custom_properties")


class WorkerInitResponse(Message):
    FIELDS = ("worker_version", "capabilities", "result", "worker_metadata")


class FunctionMetadataResponse(Message):
    FIELDS = ("function_metadata_results", "result", "use_default_metadata_indexing")


class _Protos:
    """The module-like namespace the worker library reads message classes from."""

    BindingInfo = BindingInfo
    RpcRetryOptions = RpcRetryOptions
    RpcFunctionMetadata = RpcFunctionMetadata
    RpcException = RpcException
    StatusResult = StatusResult
    WorkerMetadata = WorkerMetadata
    WorkerInitResponse = WorkerInitResponse
    FunctionMetadataResponse = FunctionMetadataResponse


PROTOS = _Protos()


@dataclass
class WorkerInitRequest:
    function_app_directory: str
    capabilities: dict[str, str] = field(default_factory=dict)
    host_version: str = "4.1040.0"
    worker_directory: str = ""
    log_categories: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Body:
    worker_init_request: WorkerInitRequest | None = None
    functions_metadata_request: Any = None


@dataclass
class HostRequest:
    """What the proxy worker passes to the library's handlers: the message and its properties."""

    request: _Body
    properties: dict[str, Any]

    @classmethod
    def worker_init(cls, function_app_directory: str) -> HostRequest:
        return cls(_Body(worker_init_request=WorkerInitRequest(function_app_directory)),
                   {"host": "127.0.0.1", "protos": PROTOS})

    @classmethod
    def functions_metadata(cls, function_app_directory: str) -> HostRequest:
        return cls(_Body(functions_metadata_request={"function_app_directory": function_app_directory}),
                   {"host": "127.0.0.1", "protos": PROTOS})
