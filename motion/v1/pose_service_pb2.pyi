from motion.v1 import common_pb2 as _common_pb2
from motion.v1 import skeleton_pb2 as _skeleton_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PoseRuntime(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POSE_RUNTIME_UNSPECIFIED: _ClassVar[PoseRuntime]
    POSE_RUNTIME_LITERT: _ClassVar[PoseRuntime]
    POSE_RUNTIME_TORCH: _ClassVar[PoseRuntime]
    POSE_RUNTIME_TENSORRT: _ClassVar[PoseRuntime]
    POSE_RUNTIME_OPENVINO: _ClassVar[PoseRuntime]
POSE_RUNTIME_UNSPECIFIED: PoseRuntime
POSE_RUNTIME_LITERT: PoseRuntime
POSE_RUNTIME_TORCH: PoseRuntime
POSE_RUNTIME_TENSORRT: PoseRuntime
POSE_RUNTIME_OPENVINO: PoseRuntime

class PoseOptions(_message.Message):
    __slots__ = ("runtime", "hands", "face", "smoothing", "track_id", "min_detection_confidence", "min_tracking_confidence", "max_duration_s")
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    HANDS_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_DETECTION_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_TRACKING_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    runtime: PoseRuntime
    hands: bool
    face: bool
    smoothing: bool
    track_id: int
    min_detection_confidence: float
    min_tracking_confidence: float
    max_duration_s: float
    def __init__(self, runtime: _Optional[_Union[PoseRuntime, str]] = ..., hands: _Optional[bool] = ..., face: _Optional[bool] = ..., smoothing: _Optional[bool] = ..., track_id: _Optional[int] = ..., min_detection_confidence: _Optional[float] = ..., min_tracking_confidence: _Optional[float] = ..., max_duration_s: _Optional[float] = ...) -> None: ...

class ExtractVideoRequest(_message.Message):
    __slots__ = ("video", "options")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.ObjectRef
    options: PoseOptions
    def __init__(self, video: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., options: _Optional[_Union[PoseOptions, _Mapping]] = ...) -> None: ...

class ExtractVideoResponse(_message.Message):
    __slots__ = ("skeleton", "cache_hit", "frame_count", "frames_with_person", "progress")
    SKELETON_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITH_PERSON_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    skeleton: _common_pb2.ObjectRef
    cache_hit: bool
    frame_count: int
    frames_with_person: int
    progress: _common_pb2.Progress
    def __init__(self, skeleton: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., cache_hit: _Optional[bool] = ..., frame_count: _Optional[int] = ..., frames_with_person: _Optional[int] = ..., progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ...) -> None: ...

class ExtractImageRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ObjectRef
    options: PoseOptions
    def __init__(self, image: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., options: _Optional[_Union[PoseOptions, _Mapping]] = ...) -> None: ...

class ExtractImageResponse(_message.Message):
    __slots__ = ("frame", "width", "height")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    frame: _skeleton_pb2.SkeletonFrame
    width: int
    height: int
    def __init__(self, frame: _Optional[_Union[_skeleton_pb2.SkeletonFrame, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...
