from motion.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Facing(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACING_UNSPECIFIED: _ClassVar[Facing]
    FACING_FRONT: _ClassVar[Facing]
    FACING_LEFT: _ClassVar[Facing]
    FACING_RIGHT: _ClassVar[Facing]
    FACING_BACK: _ClassVar[Facing]
FACING_UNSPECIFIED: Facing
FACING_FRONT: Facing
FACING_LEFT: Facing
FACING_RIGHT: Facing
FACING_BACK: Facing

class RigJoint(_message.Message):
    __slots__ = ("name", "x", "y", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    x: float
    y: float
    source: str
    def __init__(self, name: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class RigBone(_message.Message):
    __slots__ = ("name", "parent_joint", "child_joint", "length_px", "rest_angle_rad")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_JOINT_FIELD_NUMBER: _ClassVar[int]
    CHILD_JOINT_FIELD_NUMBER: _ClassVar[int]
    LENGTH_PX_FIELD_NUMBER: _ClassVar[int]
    REST_ANGLE_RAD_FIELD_NUMBER: _ClassVar[int]
    name: str
    parent_joint: str
    child_joint: str
    length_px: float
    rest_angle_rad: float
    def __init__(self, name: _Optional[str] = ..., parent_joint: _Optional[str] = ..., child_joint: _Optional[str] = ..., length_px: _Optional[float] = ..., rest_angle_rad: _Optional[float] = ...) -> None: ...

class CharacterRig(_message.Message):
    __slots__ = ("image_sha256", "width", "height", "joints", "bones", "mask", "texture", "background", "facing", "height_px", "mask_source", "warnings", "options_digest", "mesh", "missing_parts", "left_hand", "right_hand", "face")
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    JOINTS_FIELD_NUMBER: _ClassVar[int]
    BONES_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    TEXTURE_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    FACING_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_PX_FIELD_NUMBER: _ClassVar[int]
    MASK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MESH_FIELD_NUMBER: _ClassVar[int]
    MISSING_PARTS_FIELD_NUMBER: _ClassVar[int]
    LEFT_HAND_FIELD_NUMBER: _ClassVar[int]
    RIGHT_HAND_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    image_sha256: str
    width: int
    height: int
    joints: _containers.RepeatedCompositeFieldContainer[RigJoint]
    bones: _containers.RepeatedCompositeFieldContainer[RigBone]
    mask: _common_pb2.ObjectRef
    texture: _common_pb2.ObjectRef
    background: _common_pb2.ObjectRef
    facing: Facing
    height_px: float
    mask_source: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    options_digest: str
    mesh: _common_pb2.ObjectRef
    missing_parts: _containers.RepeatedScalarFieldContainer[str]
    left_hand: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    right_hand: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    face: _containers.RepeatedCompositeFieldContainer[_common_pb2.Keypoint]
    def __init__(self, image_sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., joints: _Optional[_Iterable[_Union[RigJoint, _Mapping]]] = ..., bones: _Optional[_Iterable[_Union[RigBone, _Mapping]]] = ..., mask: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., texture: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., background: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., facing: _Optional[_Union[Facing, str]] = ..., height_px: _Optional[float] = ..., mask_source: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., options_digest: _Optional[str] = ..., mesh: _Optional[_Union[_common_pb2.ObjectRef, _Mapping]] = ..., missing_parts: _Optional[_Iterable[str]] = ..., left_hand: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ..., right_hand: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ..., face: _Optional[_Iterable[_Union[_common_pb2.Keypoint, _Mapping]]] = ...) -> None: ...
