from motion.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackgroundMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKGROUND_MODE_UNSPECIFIED: _ClassVar[BackgroundMode]
    BACKGROUND_MODE_KEEP: _ClassVar[BackgroundMode]
    BACKGROUND_MODE_SOLID: _ClassVar[BackgroundMode]
    BACKGROUND_MODE_IMAGE: _ClassVar[BackgroundMode]
    BACKGROUND_MODE_TRANSPARENT: _ClassVar[BackgroundMode]
BACKGROUND_MODE_UNSPECIFIED: BackgroundMode
BACKGROUND_MODE_KEEP: BackgroundMode
BACKGROUND_MODE_SOLID: BackgroundMode
BACKGROUND_MODE_IMAGE: BackgroundMode
BACKGROUND_MODE_TRANSPARENT: BackgroundMode

class Background(_message.Message):
    __slots__ = ("mode", "color", "image")
    MODE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    mode: BackgroundMode
    color: str
    image: _common_pb2.ObjectRef
    def __init__(self, mode: _Optional[_Union[BackgroundMode, str]] = ..., color: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class RenderOptions(_message.Message):
    __slots__ = ("resolution", "background", "width", "height")
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    resolution: _common_pb2.Resolution
    background: Background
    width: int
    height: int
    def __init__(self, resolution: _Optional[_Union[_common_pb2.Resolution, str]] = ..., background: _Optional[_Union[Background, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class BuildRigRequest(_message.Message):
    __slots__ = ("image", "joints_override")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    JOINTS_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ObjectRef
    joints_override: _common_pb2.ObjectRef
    def __init__(self, image: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., joints_override: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ...) -> None: ...

class BuildRigResponse(_message.Message):
    __slots__ = ("rig", "cache_hit", "warnings")
    RIG_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    rig: _common_pb2.ObjectRef
    cache_hit: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rig: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., cache_hit: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class RenderRangeRequest(_message.Message):
    __slots__ = ("rig", "skeleton", "options", "start_frame", "end_frame")
    RIG_FIELD_NUMBER: _ClassVar[int]
    SKELETON_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FRAME_FIELD_NUMBER: _ClassVar[int]
    rig: _common_pb2.ObjectRef
    skeleton: _common_pb2.ObjectRef
    options: RenderOptions
    start_frame: int
    end_frame: int
    def __init__(self, rig: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., skeleton: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., options: _Optional[_Union[RenderOptions, _Mapping]] = ..., start_frame: _Optional[int] = ..., end_frame: _Optional[int] = ...) -> None: ...

class RenderRangeResponse(_message.Message):
    __slots__ = ("segment", "progress", "frame_count")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    segment: _common_pb2.ObjectRef
    progress: _common_pb2.Progress
    frame_count: int
    def __init__(self, segment: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., frame_count: _Optional[int] = ...) -> None: ...
