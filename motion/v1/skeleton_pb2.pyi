from motion.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Handedness(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HANDEDNESS_UNSPECIFIED: _ClassVar[Handedness]
    HANDEDNESS_LEFT: _ClassVar[Handedness]
    HANDEDNESS_RIGHT: _ClassVar[Handedness]

class CoordinateSpace(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COORDINATE_SPACE_UNSPECIFIED: _ClassVar[CoordinateSpace]
    COORDINATE_SPACE_VIDEO_PIXELS: _ClassVar[CoordinateSpace]
    COORDINATE_SPACE_CHARACTER_PIXELS: _ClassVar[CoordinateSpace]
HANDEDNESS_UNSPECIFIED: Handedness
HANDEDNESS_LEFT: Handedness
HANDEDNESS_RIGHT: Handedness
COORDINATE_SPACE_UNSPECIFIED: CoordinateSpace
COORDINATE_SPACE_VIDEO_PIXELS: CoordinateSpace
COORDINATE_SPACE_CHARACTER_PIXELS: CoordinateSpace

class Hand(_message.Message):
    __slots__ = ("present", "handedness", "score", "landmarks", "world_landmarks")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    HANDEDNESS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    WORLD_LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    present: bool
    handedness: Handedness
    score: float
    landmarks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    world_landmarks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    def __init__(self, present: _Optional[bool] = ..., handedness: _Optional[_Union[Handedness, str]] = ..., score: _Optional[float] = ..., landmarks: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ..., world_landmarks: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ...) -> None: ...

class FaceExpression(_message.Message):
    __slots__ = ("jaw_open", "left_eye_open", "right_eye_open", "head_yaw_deg", "head_pitch_deg", "head_roll_deg")
    JAW_OPEN_FIELD_NUMBER: _ClassVar[int]
    LEFT_EYE_OPEN_FIELD_NUMBER: _ClassVar[int]
    RIGHT_EYE_OPEN_FIELD_NUMBER: _ClassVar[int]
    HEAD_YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    HEAD_PITCH_DEG_FIELD_NUMBER: _ClassVar[int]
    HEAD_ROLL_DEG_FIELD_NUMBER: _ClassVar[int]
    jaw_open: float
    left_eye_open: float
    right_eye_open: float
    head_yaw_deg: float
    head_pitch_deg: float
    head_roll_deg: float
    def __init__(self, jaw_open: _Optional[float] = ..., left_eye_open: _Optional[float] = ..., right_eye_open: _Optional[float] = ..., head_yaw_deg: _Optional[float] = ..., head_pitch_deg: _Optional[float] = ..., head_roll_deg: _Optional[float] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("present", "score", "landmarks", "expression")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    present: bool
    score: float
    landmarks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    expression: FaceExpression
    def __init__(self, present: _Optional[bool] = ..., score: _Optional[float] = ..., landmarks: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ..., expression: _Optional[_Union[FaceExpression, _Mapping]] = ...) -> None: ...

class SkeletonFrame(_message.Message):
    __slots__ = ("index", "timestamp_s", "present", "body", "world", "left_hand", "right_hand", "face", "score", "track_id", "left_foot_contact", "right_foot_contact", "body_yaw_deg", "mirrored")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_S_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    WORLD_FIELD_NUMBER: _ClassVar[int]
    LEFT_HAND_FIELD_NUMBER: _ClassVar[int]
    RIGHT_HAND_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    LEFT_FOOT_CONTACT_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FOOT_CONTACT_FIELD_NUMBER: _ClassVar[int]
    BODY_YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    MIRRORED_FIELD_NUMBER: _ClassVar[int]
    index: int
    timestamp_s: float
    present: bool
    body: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    world: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    left_hand: Hand
    right_hand: Hand
    face: Face
    score: float
    track_id: int
    left_foot_contact: bool
    right_foot_contact: bool
    body_yaw_deg: float
    mirrored: bool
    def __init__(self, index: _Optional[int] = ..., timestamp_s: _Optional[float] = ..., present: _Optional[bool] = ..., body: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ..., world: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ..., left_hand: _Optional[_Union[Hand, _Mapping]] = ..., right_hand: _Optional[_Union[Hand, _Mapping]] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., score: _Optional[float] = ..., track_id: _Optional[int] = ..., left_foot_contact: _Optional[bool] = ..., right_foot_contact: _Optional[bool] = ..., body_yaw_deg: _Optional[float] = ..., mirrored: _Optional[bool] = ...) -> None: ...

class SkeletonSequence(_message.Message):
    __slots__ = ("fps", "width", "height", "source_sha256", "space", "frames", "options_digest", "trimmed_s", "source_duration_s", "warnings")
    FPS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_S_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    fps: float
    width: int
    height: int
    source_sha256: str
    space: CoordinateSpace
    frames: _containers.RepeatedCompositeFieldContainer[SkeletonFrame]
    options_digest: str
    trimmed_s: float
    source_duration_s: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fps: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., source_sha256: _Optional[str] = ..., space: _Optional[_Union[CoordinateSpace, str]] = ..., frames: _Optional[_Iterable[_Union[SkeletonFrame, _Mapping]]] = ..., options_digest: _Optional[str] = ..., trimmed_s: _Optional[float] = ..., source_duration_s: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
