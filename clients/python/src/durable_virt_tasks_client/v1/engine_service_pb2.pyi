import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HostStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOST_STATUS_UNSPECIFIED: _ClassVar[HostStatus]
    HOST_STATUS_UP: _ClassVar[HostStatus]
    HOST_STATUS_NON_RESPONSIVE: _ClassVar[HostStatus]
    HOST_STATUS_MAINTENANCE: _ClassVar[HostStatus]

class DiskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISK_STATUS_UNSPECIFIED: _ClassVar[DiskStatus]
    DISK_STATUS_OK: _ClassVar[DiskStatus]
    DISK_STATUS_LOCKED: _ClassVar[DiskStatus]
    DISK_STATUS_ILLEGAL: _ClassVar[DiskStatus]

class TemplateStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEMPLATE_STATUS_UNSPECIFIED: _ClassVar[TemplateStatus]
    TEMPLATE_STATUS_OK: _ClassVar[TemplateStatus]
    TEMPLATE_STATUS_LOCKED: _ClassVar[TemplateStatus]
    TEMPLATE_STATUS_ILLEGAL: _ClassVar[TemplateStatus]

class CommandStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_STATUS_UNSPECIFIED: _ClassVar[CommandStatus]
    COMMAND_STATUS_ACTIVE: _ClassVar[CommandStatus]
    COMMAND_STATUS_SUCCEEDED: _ClassVar[CommandStatus]
    COMMAND_STATUS_FAILED: _ClassVar[CommandStatus]
    COMMAND_STATUS_CANCELLED: _ClassVar[CommandStatus]

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
HOST_STATUS_UNSPECIFIED: HostStatus
HOST_STATUS_UP: HostStatus
HOST_STATUS_NON_RESPONSIVE: HostStatus
HOST_STATUS_MAINTENANCE: HostStatus
DISK_STATUS_UNSPECIFIED: DiskStatus
DISK_STATUS_OK: DiskStatus
DISK_STATUS_LOCKED: DiskStatus
DISK_STATUS_ILLEGAL: DiskStatus
TEMPLATE_STATUS_UNSPECIFIED: TemplateStatus
TEMPLATE_STATUS_OK: TemplateStatus
TEMPLATE_STATUS_LOCKED: TemplateStatus
TEMPLATE_STATUS_ILLEGAL: TemplateStatus
COMMAND_STATUS_UNSPECIFIED: CommandStatus
COMMAND_STATUS_ACTIVE: CommandStatus
COMMAND_STATUS_SUCCEEDED: CommandStatus
COMMAND_STATUS_FAILED: CommandStatus
COMMAND_STATUS_CANCELLED: CommandStatus
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

class Host(_message.Message):
    __slots__ = ("host_id", "name", "address", "status", "tasks_in_flight", "last_seen_at", "unreachable_since", "confirmed_rebooted_at", "confirmed_rebooted_by", "confirmed_rebooted_reason")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASKS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_SINCE_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_REBOOTED_AT_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_REBOOTED_BY_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_REBOOTED_REASON_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    name: str
    address: str
    status: HostStatus
    tasks_in_flight: int
    last_seen_at: _timestamp_pb2.Timestamp
    unreachable_since: _timestamp_pb2.Timestamp
    confirmed_rebooted_at: _timestamp_pb2.Timestamp
    confirmed_rebooted_by: str
    confirmed_rebooted_reason: str
    def __init__(self, host_id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., status: _Optional[_Union[HostStatus, str]] = ..., tasks_in_flight: _Optional[int] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., unreachable_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confirmed_rebooted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confirmed_rebooted_by: _Optional[str] = ..., confirmed_rebooted_reason: _Optional[str] = ...) -> None: ...

class StorageDomain(_message.Message):
    __slots__ = ("storage_domain_id", "name")
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    storage_domain_id: str
    name: str
    def __init__(self, storage_domain_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Disk(_message.Message):
    __slots__ = ("disk_id", "name", "storage_domain_id", "image_id", "size_bytes", "status")
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    disk_id: str
    name: str
    storage_domain_id: str
    image_id: str
    size_bytes: int
    status: DiskStatus
    def __init__(self, disk_id: _Optional[str] = ..., name: _Optional[str] = ..., storage_domain_id: _Optional[str] = ..., image_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., status: _Optional[_Union[DiskStatus, str]] = ...) -> None: ...

class Vm(_message.Message):
    __slots__ = ("vm_id", "name", "disk_ids")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISK_IDS_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    name: str
    disk_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, vm_id: _Optional[str] = ..., name: _Optional[str] = ..., disk_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class VmTemplate(_message.Message):
    __slots__ = ("template_id", "name", "vm_id", "disk_ids", "status")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    name: str
    vm_id: str
    disk_ids: _containers.RepeatedScalarFieldContainer[str]
    status: TemplateStatus
    def __init__(self, template_id: _Optional[str] = ..., name: _Optional[str] = ..., vm_id: _Optional[str] = ..., disk_ids: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[TemplateStatus, str]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "vdsm_task_id", "host_id", "state", "progress_percent", "result", "verb", "command_id", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    VDSM_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    VERB_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    vdsm_task_id: str
    host_id: str
    state: TaskState
    progress_percent: int
    result: TaskResult
    verb: str
    command_id: str
    message: str
    def __init__(self, task_id: _Optional[str] = ..., vdsm_task_id: _Optional[str] = ..., host_id: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., progress_percent: _Optional[int] = ..., result: _Optional[_Union[TaskResult, str]] = ..., verb: _Optional[str] = ..., command_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("command_id", "action_type", "status", "progress_percent", "failure_reason", "child_commands", "tasks", "parent_command_id", "target_id", "created_at", "ended_at")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CHILD_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PARENT_COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    action_type: str
    status: CommandStatus
    progress_percent: int
    failure_reason: str
    child_commands: _containers.RepeatedCompositeFieldContainer[Command]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    parent_command_id: str
    target_id: str
    created_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    def __init__(self, command_id: _Optional[str] = ..., action_type: _Optional[str] = ..., status: _Optional[_Union[CommandStatus, str]] = ..., progress_percent: _Optional[int] = ..., failure_reason: _Optional[str] = ..., child_commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., parent_command_id: _Optional[str] = ..., target_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReconcileReport(_message.Message):
    __slots__ = ("failed_command_ids", "removed_placeholders", "adopted_tasks", "cleared_zombies", "failed_commands", "failed_at")
    FAILED_COMMAND_IDS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PLACEHOLDERS_FIELD_NUMBER: _ClassVar[int]
    ADOPTED_TASKS_FIELD_NUMBER: _ClassVar[int]
    CLEARED_ZOMBIES_FIELD_NUMBER: _ClassVar[int]
    FAILED_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    failed_command_ids: _containers.RepeatedScalarFieldContainer[str]
    removed_placeholders: int
    adopted_tasks: int
    cleared_zombies: int
    failed_commands: int
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, failed_command_ids: _Optional[_Iterable[str]] = ..., removed_placeholders: _Optional[int] = ..., adopted_tasks: _Optional[int] = ..., cleared_zombies: _Optional[int] = ..., failed_commands: _Optional[int] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddHostRequest(_message.Message):
    __slots__ = ("name", "address", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddHostResponse(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: Host
    def __init__(self, host: _Optional[_Union[Host, _Mapping]] = ...) -> None: ...

class ListHostsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListHostsResponse(_message.Message):
    __slots__ = ("hosts", "next_page_token")
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    next_page_token: str
    def __init__(self, hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetHostMaintenanceRequest(_message.Message):
    __slots__ = ("host_id", "maintenance")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    maintenance: bool
    def __init__(self, host_id: _Optional[str] = ..., maintenance: _Optional[bool] = ...) -> None: ...

class SetHostMaintenanceResponse(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: Host
    def __init__(self, host: _Optional[_Union[Host, _Mapping]] = ...) -> None: ...

class RemoveHostRequest(_message.Message):
    __slots__ = ("host_id",)
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    def __init__(self, host_id: _Optional[str] = ...) -> None: ...

class RemoveHostResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConfirmHostRebootedRequest(_message.Message):
    __slots__ = ("host_id", "reason")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    reason: str
    def __init__(self, host_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ConfirmHostRebootedResponse(_message.Message):
    __slots__ = ("host", "failed_commands", "written_off_tasks")
    HOST_FIELD_NUMBER: _ClassVar[int]
    FAILED_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_TASKS_FIELD_NUMBER: _ClassVar[int]
    host: Host
    failed_commands: int
    written_off_tasks: int
    def __init__(self, host: _Optional[_Union[Host, _Mapping]] = ..., failed_commands: _Optional[int] = ..., written_off_tasks: _Optional[int] = ...) -> None: ...

class AddStorageDomainRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddStorageDomainResponse(_message.Message):
    __slots__ = ("storage_domain",)
    STORAGE_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    storage_domain: StorageDomain
    def __init__(self, storage_domain: _Optional[_Union[StorageDomain, _Mapping]] = ...) -> None: ...

class ListStorageDomainsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStorageDomainsResponse(_message.Message):
    __slots__ = ("storage_domains", "next_page_token")
    STORAGE_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    storage_domains: _containers.RepeatedCompositeFieldContainer[StorageDomain]
    next_page_token: str
    def __init__(self, storage_domains: _Optional[_Iterable[_Union[StorageDomain, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AddDiskRequest(_message.Message):
    __slots__ = ("name", "storage_domain_id", "size_bytes", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    storage_domain_id: str
    size_bytes: int
    request_id: str
    def __init__(self, name: _Optional[str] = ..., storage_domain_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddDiskResponse(_message.Message):
    __slots__ = ("disk", "command")
    DISK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    disk: Disk
    command: Command
    def __init__(self, disk: _Optional[_Union[Disk, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class RemoveDiskRequest(_message.Message):
    __slots__ = ("disk_id", "request_id")
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    disk_id: str
    request_id: str
    def __init__(self, disk_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RemoveDiskResponse(_message.Message):
    __slots__ = ("disk", "command")
    DISK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    disk: Disk
    command: Command
    def __init__(self, disk: _Optional[_Union[Disk, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class MoveDiskRequest(_message.Message):
    __slots__ = ("disk_id", "destination_storage_domain_id", "request_id")
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    disk_id: str
    destination_storage_domain_id: str
    request_id: str
    def __init__(self, disk_id: _Optional[str] = ..., destination_storage_domain_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class MoveDiskResponse(_message.Message):
    __slots__ = ("disk", "command")
    DISK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    disk: Disk
    command: Command
    def __init__(self, disk: _Optional[_Union[Disk, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class GetDiskRequest(_message.Message):
    __slots__ = ("disk_id",)
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    disk_id: str
    def __init__(self, disk_id: _Optional[str] = ...) -> None: ...

class GetDiskResponse(_message.Message):
    __slots__ = ("disk",)
    DISK_FIELD_NUMBER: _ClassVar[int]
    disk: Disk
    def __init__(self, disk: _Optional[_Union[Disk, _Mapping]] = ...) -> None: ...

class ListDisksRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDisksResponse(_message.Message):
    __slots__ = ("disks", "next_page_token")
    DISKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    disks: _containers.RepeatedCompositeFieldContainer[Disk]
    next_page_token: str
    def __init__(self, disks: _Optional[_Iterable[_Union[Disk, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AddVmRequest(_message.Message):
    __slots__ = ("name", "disk_ids", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISK_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    disk_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, name: _Optional[str] = ..., disk_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddVmResponse(_message.Message):
    __slots__ = ("vm",)
    VM_FIELD_NUMBER: _ClassVar[int]
    vm: Vm
    def __init__(self, vm: _Optional[_Union[Vm, _Mapping]] = ...) -> None: ...

class GetVmRequest(_message.Message):
    __slots__ = ("vm_id",)
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    def __init__(self, vm_id: _Optional[str] = ...) -> None: ...

class GetVmResponse(_message.Message):
    __slots__ = ("vm",)
    VM_FIELD_NUMBER: _ClassVar[int]
    vm: Vm
    def __init__(self, vm: _Optional[_Union[Vm, _Mapping]] = ...) -> None: ...

class AddVmTemplateRequest(_message.Message):
    __slots__ = ("vm_id", "name", "destination_storage_domain_id", "request_id")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    name: str
    destination_storage_domain_id: str
    request_id: str
    def __init__(self, vm_id: _Optional[str] = ..., name: _Optional[str] = ..., destination_storage_domain_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddVmTemplateResponse(_message.Message):
    __slots__ = ("template", "command")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    template: VmTemplate
    command: Command
    def __init__(self, template: _Optional[_Union[VmTemplate, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class RemoveVmTemplateRequest(_message.Message):
    __slots__ = ("template_id", "request_id")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    request_id: str
    def __init__(self, template_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RemoveVmTemplateResponse(_message.Message):
    __slots__ = ("template", "command")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    template: VmTemplate
    command: Command
    def __init__(self, template: _Optional[_Union[VmTemplate, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class AddVmFromTemplateRequest(_message.Message):
    __slots__ = ("template_id", "name", "destination_storage_domain_id", "request_id")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_STORAGE_DOMAIN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    name: str
    destination_storage_domain_id: str
    request_id: str
    def __init__(self, template_id: _Optional[str] = ..., name: _Optional[str] = ..., destination_storage_domain_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddVmFromTemplateResponse(_message.Message):
    __slots__ = ("vm", "command")
    VM_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    vm: Vm
    command: Command
    def __init__(self, vm: _Optional[_Union[Vm, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class GetVmTemplateRequest(_message.Message):
    __slots__ = ("template_id",)
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    def __init__(self, template_id: _Optional[str] = ...) -> None: ...

class GetVmTemplateResponse(_message.Message):
    __slots__ = ("template",)
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    template: VmTemplate
    def __init__(self, template: _Optional[_Union[VmTemplate, _Mapping]] = ...) -> None: ...

class ListVmTemplatesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVmTemplatesResponse(_message.Message):
    __slots__ = ("templates", "next_page_token")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[VmTemplate]
    next_page_token: str
    def __init__(self, templates: _Optional[_Iterable[_Union[VmTemplate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCommandRequest(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class GetCommandResponse(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: Command
    def __init__(self, command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class ListCommandsRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token", "ended_after", "ended_before", "failure_reason_contains", "action_type", "target_id", "created_after", "created_before", "host_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ENDED_AFTER_FIELD_NUMBER: _ClassVar[int]
    ENDED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    status: CommandStatus
    page_size: int
    page_token: str
    ended_after: _timestamp_pb2.Timestamp
    ended_before: _timestamp_pb2.Timestamp
    failure_reason_contains: str
    action_type: str
    target_id: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    host_id: str
    def __init__(self, status: _Optional[_Union[CommandStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., ended_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failure_reason_contains: _Optional[str] = ..., action_type: _Optional[str] = ..., target_id: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., host_id: _Optional[str] = ...) -> None: ...

class ListCommandsResponse(_message.Message):
    __slots__ = ("commands", "next_page_token")
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[Command]
    next_page_token: str
    def __init__(self, commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchCommandRequest(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class WatchCommandResponse(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: Command
    def __init__(self, command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class CancelCommandRequest(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class CancelCommandResponse(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: Command
    def __init__(self, command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class ReconcileOrphansRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReconcileOrphansResponse(_message.Message):
    __slots__ = ("failed_command_ids", "removed_placeholders", "adopted_tasks", "cleared_zombies", "startup_report", "failed_commands", "failed_at")
    FAILED_COMMAND_IDS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PLACEHOLDERS_FIELD_NUMBER: _ClassVar[int]
    ADOPTED_TASKS_FIELD_NUMBER: _ClassVar[int]
    CLEARED_ZOMBIES_FIELD_NUMBER: _ClassVar[int]
    STARTUP_REPORT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    failed_command_ids: _containers.RepeatedScalarFieldContainer[str]
    removed_placeholders: int
    adopted_tasks: int
    cleared_zombies: int
    startup_report: ReconcileReport
    failed_commands: int
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, failed_command_ids: _Optional[_Iterable[str]] = ..., removed_placeholders: _Optional[int] = ..., adopted_tasks: _Optional[int] = ..., cleared_zombies: _Optional[int] = ..., startup_report: _Optional[_Union[ReconcileReport, _Mapping]] = ..., failed_commands: _Optional[int] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CommandEvent(_message.Message):
    __slots__ = ("event_id", "command_id", "time", "kind", "task_id", "host_id", "message")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    command_id: str
    time: _timestamp_pb2.Timestamp
    kind: str
    task_id: str
    host_id: str
    message: str
    def __init__(self, event_id: _Optional[int] = ..., command_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., task_id: _Optional[str] = ..., host_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ListCommandEventsRequest(_message.Message):
    __slots__ = ("command_id", "page_size", "page_token")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    page_size: int
    page_token: str
    def __init__(self, command_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCommandEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[CommandEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[CommandEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RetryCommandRequest(_message.Message):
    __slots__ = ("command_id", "request_id")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    request_id: str
    def __init__(self, command_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetryCommandResponse(_message.Message):
    __slots__ = ("command",)
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: Command
    def __init__(self, command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...
