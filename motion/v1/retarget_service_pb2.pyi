from motion.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetargetOptions(_message.Message):
    __slots__ = ("orientation", "loop", "loop_blend_s", "pin_feet")
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    LOOP_BLEND_S_FIELD_NUMBER: _ClassVar[int]
    PIN_FEET_FIELD_NUMBER: _ClassVar[int]
    orientation: _common_pb2.Orientation
    loop: bool
    loop_blend_s: float
    pin_feet: bool
    def __init__(self, orientation: _Optional[_Union[_common_pb2.Orientation, str]] = ..., loop: _Optional[bool] = ..., loop_blend_s: _Optional[float] = ..., pin_feet: _Optional[bool] = ...) -> None: ...

class RetargetRequest(_message.Message):
    __slots__ = ("skeleton", "rig", "options")
    SKELETON_FIELD_NUMBER: _ClassVar[int]
    RIG_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    skeleton: _common_pb2.ObjectRef
    rig: _common_pb2.ObjectRef
    options: RetargetOptions
    def __init__(self, skeleton: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., rig: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., options: _Optional[_Union[RetargetOptions, _Mapping]] = ...) -> None: ...

class RetargetResponse(_message.Message):
    __slots__ = ("skeleton", "trimmed_s", "frame_count", "warnings", "cache_hit")
    SKELETON_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_S_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    skeleton: _common_pb2.ObjectRef
    trimmed_s: float
    frame_count: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    cache_hit: bool
    def __init__(self, skeleton: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., trimmed_s: _Optional[float] = ..., frame_count: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., cache_hit: _Optional[bool] = ...) -> None: ...
