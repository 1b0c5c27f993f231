from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_INIT: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_FINISHED: _ClassVar[TaskState]
    TASK_STATE_ABORTING: _ClassVar[TaskState]
    TASK_STATE_CLEANING: _ClassVar[TaskState]

class TaskResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_RESULT_UNSPECIFIED: _ClassVar[TaskResult]
    TASK_RESULT_SUCCESS: _ClassVar[TaskResult]
    TASK_RESULT_FAILURE: _ClassVar[TaskResult]
    TASK_RESULT_CLEAN_SUCCESS: _ClassVar[TaskResult]
    TASK_RESULT_CLEAN_FAILURE: _ClassVar[TaskResult]

class ClearOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLEAR_OUTCOME_UNSPECIFIED: _ClassVar[ClearOutcome]
    CLEAR_OUTCOME_CLEARED: _ClassVar[ClearOutcome]
    CLEAR_OUTCOME_NOT_FOUND: _ClassVar[ClearOutcome]
    CLEAR_OUTCOME_NOT_FINISHED: _ClassVar[ClearOutcome]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_INIT: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_FINISHED: TaskState
TASK_STATE_ABORTING: TaskState
TASK_STATE_CLEANING: TaskState
TASK_RESULT_UNSPECIFIED: TaskResult
TASK_RESULT_SUCCESS: TaskResult
TASK_RESULT_FAILURE: TaskResult
TASK_RESULT_CLEAN_SUCCESS: TaskResult
TASK_RESULT_CLEAN_FAILURE: TaskResult
CLEAR_OUTCOME_UNSPECIFIED: ClearOutcome
CLEAR_OUTCOME_CLEARED: ClearOutcome
CLEAR_OUTCOME_NOT_FOUND: ClearOutcome
CLEAR_OUTCOME_NOT_FINISHED: ClearOutcome

class TaskStatus(_message.Message):
    __slots__ = ("task_id", "state", "result", "progress_percent", "message", "code")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    state: TaskState
    result: TaskResult
    progress_percent: int
    message: str
    code: int
    def __init__(self, task_id: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., result: _Optional[_Union[TaskResult, str]] = ..., progress_percent: _Optional[int] = ..., message: _Optional[str] = ..., code: _Optional[int] = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("task_id", "request_id", "verb", "storage_domain_id", "image_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERB_FIELD_NUMBER: _ClassVar[int]
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    request_id: str
    verb: str
    storage_domain_id: str
    image_id: str
    def __init__(self, task_id: _Optional[str] = ..., request_id: _Optional[str] = ..., verb: _Optional[str] = ..., storage_domain_id: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class CreateStorageDomainRequest(_message.Message):
    __slots__ = ("storage_domain_id",)
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    storage_domain_id: str
    def __init__(self, storage_domain_id: _Optional[str] = ...) -> None: ...

class CreateStorageDomainResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateVolumeRequest(_message.Message):
    __slots__ = ("request_id", "storage_domain_id", "image_id", "size_bytes", "fill_pattern")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILL_PATTERN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    storage_domain_id: str
    image_id: str
    size_bytes: int
    fill_pattern: bytes
    def __init__(self, request_id: _Optional[str] = ..., storage_domain_id: _Optional[str] = ..., image_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., fill_pattern: _Optional[bytes] = ...) -> None: ...

class CreateVolumeResponse(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class CopyImageRequest(_message.Message):
    __slots__ = ("request_id", "src_storage_domain_id", "src_image_id", "dst_storage_domain_id", "dst_image_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SRC_STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SRC_IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DST_STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    DST_IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    src_storage_domain_id: str
    src_image_id: str
    dst_storage_domain_id: str
    dst_image_id: str
    def __init__(self, request_id: _Optional[str] = ..., src_storage_domain_id: _Optional[str] = ..., src_image_id: _Optional[str] = ..., dst_storage_domain_id: _Optional[str] = ..., dst_image_id: _Optional[str] = ...) -> None: ...

class CopyImageResponse(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class RemoveImageRequest(_message.Message):
    __slots__ = ("request_id", "storage_domain_id", "image_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    storage_domain_id: str
    image_id: str
    def __init__(self, request_id: _Optional[str] = ..., storage_domain_id: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class RemoveImageResponse(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class DeleteImageRequest(_message.Message):
    __slots__ = ("storage_domain_id", "image_id")
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    storage_domain_id: str
    image_id: str
    def __init__(self, storage_domain_id: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class DeleteImageResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllTasksStatusesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllTasksStatusesResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[TaskStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[TaskStatus, _Mapping]]] = ...) -> None: ...

class GetAllTasksInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllTasksInfoResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ...) -> None: ...

class GetTaskStatusRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetTaskStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: TaskStatus
    def __init__(self, status: _Optional[_Union[TaskStatus, _Mapping]] = ...) -> None: ...

class StopTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class StopTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClearTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class ClearTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClearTasksRequest(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ClearTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ClearTaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ClearTaskResult, _Mapping]]] = ...) -> None: ...

class ClearTaskResult(_message.Message):
    __slots__ = ("task_id", "outcome")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    outcome: ClearOutcome
    def __init__(self, task_id: _Optional[str] = ..., outcome: _Optional[_Union[ClearOutcome, str]] = ...) -> None: ...

class TaskStart(_message.Message):
    __slots__ = ("create_volume", "copy_image", "remove_image")
    CREATE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    COPY_IMAGE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    create_volume: CreateVolumeRequest
    copy_image: CopyImageRequest
    remove_image: RemoveImageRequest
    def __init__(self, create_volume: _Optional[_Union[CreateVolumeRequest, _Mapping]] = ..., copy_image: _Optional[_Union[CopyImageRequest, _Mapping]] = ..., remove_image: _Optional[_Union[RemoveImageRequest, _Mapping]] = ...) -> None: ...

class StartTasksRequest(_message.Message):
    __slots__ = ("starts",)
    STARTS_FIELD_NUMBER: _ClassVar[int]
    starts: _containers.RepeatedCompositeFieldContainer[TaskStart]
    def __init__(self, starts: _Optional[_Iterable[_Union[TaskStart, _Mapping]]] = ...) -> None: ...

class StartTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskStartResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskStartResult, _Mapping]]] = ...) -> None: ...

class TaskStartResult(_message.Message):
    __slots__ = ("task_id", "code", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    code: int
    message: str
    def __init__(self, task_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
