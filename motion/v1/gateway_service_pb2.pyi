import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from motion.v1 import common_pb2 as _common_pb2
from motion.v1 import render_service_pb2 as _render_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class JobOptions(_message.Message):
    __slots__ = ("orientation", "resolution", "background", "keep_original_sound", "loop", "prompt", "negative_prompt", "cfg_scale", "track_id", "export_skeleton", "preview")
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    KEEP_ORIGINAL_SOUND_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CFG_SCALE_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORT_SKELETON_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    orientation: _common_pb2.Orientation
    resolution: _common_pb2.Resolution
    background: _render_service_pb2.Background
    keep_original_sound: bool
    loop: bool
    prompt: str
    negative_prompt: str
    cfg_scale: float
    track_id: int
    export_skeleton: bool
    preview: bool
    def __init__(self, orientation: _Optional[_Union[_common_pb2.Orientation, str]] = ..., resolution: _Optional[_Union[_common_pb2.Resolution, str]] = ..., background: _Optional[_Union[_render_service_pb2.Background, _Mapping]] = ..., keep_original_sound: _Optional[bool] = ..., loop: _Optional[bool] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., cfg_scale: _Optional[float] = ..., track_id: _Optional[int] = ..., export_skeleton: _Optional[bool] = ..., preview: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "request_id", "tenant", "state", "options", "image", "video", "result", "download_url", "download_url_expires", "progress", "error_code", "error_message", "create_time", "update_time", "trimmed_s", "warnings", "ignored_options", "skeleton_export", "preview", "skeleton_export_url", "preview_url", "report", "report_url", "joints_override")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URL_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_S_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    IGNORED_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SKELETON_EXPORT_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    SKELETON_EXPORT_URL_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_URL_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    REPORT_URL_FIELD_NUMBER: _ClassVar[int]
    JOINTS_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    tenant: str
    state: JobState
    options: JobOptions
    image: _common_pb2.ObjectRef
    video: _common_pb2.ObjectRef
    result: _common_pb2.ObjectRef
    download_url: str
    download_url_expires: _timestamp_pb2.Timestamp
    progress: _common_pb2.Progress
    error_code: str
    error_message: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    trimmed_s: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    ignored_options: _containers.RepeatedScalarFieldContainer[str]
    skeleton_export: _common_pb2.ObjectRef
    preview: _common_pb2.ObjectRef
    skeleton_export_url: str
    preview_url: str
    report: _common_pb2.ObjectRef
    report_url: str
    joints_override: _common_pb2.ObjectRef
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ..., tenant: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ..., image: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., video: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., result: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., download_url: _Optional[str] = ..., download_url_expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trimmed_s: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ..., ignored_options: _Optional[_Iterable[str]] = ..., skeleton_export: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., preview: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., skeleton_export_url: _Optional[str] = ..., preview_url: _Optional[str] = ..., report: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., report_url: _Optional[str] = ..., joints_override: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("request_id", "image", "video", "image_data", "image_filename", "video_data", "video_filename", "options", "joints_override", "joints_data")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DATA_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FILENAME_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DATA_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FILENAME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    JOINTS_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    JOINTS_DATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    image: _common_pb2.ObjectRef
    video: _common_pb2.ObjectRef
    image_data: bytes
    image_filename: str
    video_data: bytes
    video_filename: str
    options: JobOptions
    joints_override: _common_pb2.ObjectRef
    joints_data: bytes
    def __init__(self, request_id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., video: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., image_data: _Optional[bytes] = ..., image_filename: _Optional[str] = ..., video_data: _Optional[bytes] = ..., video_filename: _Optional[str] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ..., joints_override: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., joints_data: _Optional[bytes] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
