"""Character analysis: mask, joints and rig of a character image (see ``analyse_character``)."""

from services.render.character.analyse import CharacterOptions, analyse_character
from services.render.character.joints import load_joints_file
from services.render.character.mask import MaskOptions, MaskSource, compute_mask

__all__ = ["CharacterOptions", "MaskOptions", "MaskSource", "analyse_character", "compute_mask",
           "load_joints_file"]
