"""Character analysis on real drawings and photos from ../shared/data: masks, joints, rig, bad input."""

from __future__ import annotations

import json
import pathlib

import cv2
import numpy as np
import pytest
import yaml

from motion.errors import InputError
from motion.rig import CharacterRig
from motion.storage import LocalStore
from services.render.character import MaskSource, analyse_character, compute_mask, load_joints_file

DRAWINGS = ("char1", "char2", "char3", "char4")


def _rgb(path: pathlib.Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _gray(path: pathlib.Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return np.asarray(img)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _write_joints(path: pathlib.Path, joints: dict[str, list[float]], width: int, height: int) -> pathlib.Path:
    path.write_text(json.dumps({"format": "motion-control/character-joints", "version": 1, "width": width,
                                "height": height, "joints": joints}))
    return path


def _ad_joints(shared_data: pathlib.Path, name: str) -> dict[str, list[float]]:
    """The AnimatedDrawings joints of a drawing, renamed to ours (for building JSON override files)."""
    from services.render.character.joints import AD_TO_BLAZEPOSE

    doc = yaml.safe_load((shared_data / "drawings" / f"{name}_char_cfg.yaml").read_text())
    return {AD_TO_BLAZEPOSE[e["name"]]: list(e["loc"]) for e in doc["skeleton"] if e["name"] in AD_TO_BLAZEPOSE}


@pytest.mark.parametrize("name", DRAWINGS)
def test_threshold_mask_matches_reference_with_drawing(shared_data: pathlib.Path, name: str) -> None:
    texture = _rgb(shared_data / "drawings" / f"{name}_texture.png")
    assert texture.shape[2] == 4 and texture[..., 3].min() == 255  # opaque alpha: must count as "no alpha"
    ref = _gray(shared_data / "drawings" / f"{name}_mask.png") > 0
    result = compute_mask(texture)
    assert result.source == MaskSource.THRESHOLD
    iou = _iou(result.mask > 0, ref)
    assert iou >= 0.9, f"{name}: IoU {iou:.3f} against the reference mask"


def test_analyse_uses_alpha_with_transparent_png(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    rgba = _rgb(shared_data / "drawings" / "char2_texture.png")
    ref = _gray(shared_data / "drawings" / "char2_mask.png")
    rgba[..., 3] = ref
    path = tmp_path / "char2_alpha.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    rig = analyse_character(path, shared_data / "drawings" / "char2_char_cfg.yaml")
    assert rig.mask_source == "alpha"
    assert _iou(rig.mask > 0, ref > 0) > 0.99
    # Straight alpha from the file: fully transparent outside, opaque inside.
    assert (rig.texture_rgba[..., 3][ref == 0] == 0).all()
    assert (rig.texture_rgba[..., 3][cv2.erode(ref, np.ones((5, 5), np.uint8)) > 0] == 255).all()


def test_analyse_maps_animated_drawings_joints_with_char_cfg(shared_data: pathlib.Path) -> None:
    cfg = shared_data / "drawings" / "char1_char_cfg.yaml"
    rig = analyse_character(shared_data / "drawings" / "char1_texture.png", cfg)
    doc = yaml.safe_load(cfg.read_text())
    loc = {e["name"]: e["loc"] for e in doc["skeleton"]}
    assert rig.joints["left_wrist"] == pytest.approx(tuple(loc["left_hand"]))
    assert rig.joints["right_ankle"] == pytest.approx(tuple(loc["right_foot"]))
    assert rig.joint_sources["left_wrist"] == "override" and rig.joint_sources["nose"] == "derived"
    names = {b.name for b in rig.bones}
    assert {"spine", "neck", "head", "left_upper_arm", "left_forearm", "right_upper_arm", "right_forearm",
            "left_thigh", "left_shin", "right_thigh", "right_shin"} <= names
    upper = rig.bone("left_upper_arm")
    assert upper is not None
    expected = np.hypot(loc["left_elbow"][0] - loc["left_shoulder"][0], loc["left_elbow"][1] - loc["left_shoulder"][1])
    assert upper.length_px == pytest.approx(expected, abs=1e-3)
    assert rig.facing == "front" and rig.missing_parts == [] and rig.mask_source == "threshold"
    # The head top is found on the mask above the nose.
    assert rig.joints["head_top"][1] < rig.joints["nose"][1] < rig.joints["shoulder_center"][1]
    assert rig.height_px > 0.9 * rig.height


def test_load_joints_scales_our_json_with_other_declared_size(tmp_path: pathlib.Path) -> None:
    path = _write_joints(tmp_path / "j.json", {"nose": [50, 20], "left_wrist": [80, 100]}, 100, 200)
    joints = load_joints_file(path, 200, 400)
    assert joints["nose"] == (100.0, 40.0) and joints["left_wrist"] == (160.0, 200.0)


def test_load_joints_rejects_unknown_name_with_typo(tmp_path: pathlib.Path) -> None:
    path = _write_joints(tmp_path / "j.json", {"left_sholder": [1, 2]}, 10, 10)
    with pytest.raises(InputError) as exc:
        load_joints_file(path, 10, 10)
    assert exc.value.rule == "character.joints_file" and exc.value.actual == "left_sholder"


def test_analyse_raises_missing_joints_with_no_shoulders(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    joints = _ad_joints(shared_data, "char1")
    del joints["left_shoulder"], joints["right_elbow"]
    path = _write_joints(tmp_path / "j.json", joints, 508, 602)
    with pytest.raises(InputError) as exc:
        analyse_character(shared_data / "drawings" / "char1_texture.png", path)
    assert exc.value.rule == "character.missing_joints"
    assert exc.value.actual == ["left_shoulder", "right_elbow"]
    assert "left_shoulder" in exc.value.message and "right_elbow" in exc.value.message


def test_analyse_raises_joints_outside_mask_with_misplaced_wrist(shared_data: pathlib.Path,
                                                                  tmp_path: pathlib.Path) -> None:
    joints = _ad_joints(shared_data, "char4")
    joints["left_wrist"] = [5.0, 470.0]  # bottom-left corner: paper, far from the drawing
    path = _write_joints(tmp_path / "j.json", joints, 216, 475)
    with pytest.raises(InputError) as exc:
        analyse_character(shared_data / "drawings" / "char4_texture.png", path)
    assert exc.value.rule == "character.joints_outside_mask"
    assert list(exc.value.actual) == ["left_wrist"] and exc.value.actual["left_wrist"] > exc.value.limit


def test_analyse_warns_missing_parts_with_cropped_character(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    joints = _ad_joints(shared_data, "char3")
    for k in ("left_knee", "left_ankle", "right_knee", "right_ankle"):
        del joints[k]
    path = _write_joints(tmp_path / "j.json", joints, 564, 547)
    rig = analyse_character(shared_data / "drawings" / "char3_texture.png", path)
    assert rig.missing_parts == ["left_leg", "right_leg"]
    assert any(w.startswith("character.cropped") for w in rig.warnings)
    assert rig.bone("left_thigh") is None and rig.bone("spine") is not None


def test_analyse_raises_no_person_with_blank_page(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(3)
    page = np.clip(rng.normal(200, 2, (400, 320, 3)), 0, 255).astype(np.uint8)
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), page)
    with pytest.raises(InputError) as exc:
        analyse_character(path, tmp_path / "unused.json")
    assert exc.value.rule == "character.no_person"


def test_texture_and_background_are_clean_with_drawing(shared_data: pathlib.Path) -> None:
    rig = analyse_character(shared_data / "drawings" / "char3_texture.png",
                            shared_data / "drawings" / "char3_char_cfg.yaml")
    rgb = _rgb(shared_data / "drawings" / "char3_texture.png")[..., :3]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    paper = np.median(lab[rig.mask == 0], axis=0)
    # The outer 2 px band of the cut-out: in the raw image it is largely paper; in the texture it must not be.
    band = (rig.mask > 0) & (cv2.erode(rig.mask, np.ones((5, 5), np.uint8)) == 0)
    tex_lab = cv2.cvtColor(np.ascontiguousarray(rig.texture_rgba[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    raw_paper = float((np.linalg.norm(lab[band] - paper, axis=1) < 8).mean())
    tex_paper = float((np.linalg.norm(tex_lab[band] - paper, axis=1) < 8).mean())
    assert raw_paper > 0.3 and tex_paper < 0.1, (raw_paper, tex_paper)
    # The hole behind the character is filled with something like the paper, not the drawing.
    bg_lab = cv2.cvtColor(rig.background_rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = cv2.erode(rig.mask, np.ones((9, 9), np.uint8)) > 0
    assert float(np.median(np.linalg.norm(bg_lab[inside] - paper, axis=1))) < 12.0
    assert (rig.background_rgb[rig.mask == 0] != 0).any()


def test_rig_round_trips_with_bytes_and_local_store(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    rig = analyse_character(shared_data / "drawings" / "char2_texture.png",
                            shared_data / "drawings" / "char2_char_cfg.yaml")
    back = CharacterRig.from_bytes(rig.to_bytes())
    store = LocalStore(tmp_path / "store")
    ref = rig.save(store)
    loaded = CharacterRig.load(store, ref)
    for other in (back, loaded):
        assert other.joints.keys() == rig.joints.keys()
        assert other.joints["left_elbow"] == pytest.approx(rig.joints["left_elbow"], abs=1e-3)
        assert [b.name for b in other.bones] == [b.name for b in rig.bones]
        assert np.array_equal(other.mask, rig.mask)
        assert np.array_equal(other.texture_rgba, rig.texture_rgba)
        assert np.array_equal(other.background_rgb, rig.background_rgb)
        assert (other.facing, other.mask_source, other.image_sha256) == (rig.facing, rig.mask_source, rig.image_sha256)
    # Content-addressed: saving again writes the same keys.
    assert rig.save(store).key == ref.key and ref.key.startswith("rigs/")
    proto = loaded.to_proto()
    assert proto.width == rig.width and len(proto.joints) == len(rig.joints)
    stored = CharacterRig.load(store, ref)
    assert stored.mask.shape == (rig.height, rig.width)
    with pytest.raises(InputError) as exc:
        CharacterRig.from_bytes(b"not a rig")
    assert exc.value.rule == "rig.format"


def test_segmentation_mask_covers_person_with_photo_on_scenery(shared_data: pathlib.Path) -> None:
    img = _rgb(shared_data / "characters" / "controlnext__svd2_ref_01.jpeg")
    result = compute_mask(img)
    assert result.source == MaskSource.SEGMENTATION
    m = result.mask > 0
    h, w = m.shape
    assert 0.15 < m.mean() < 0.7
    # The woman stands in the middle: the mask's centre of mass is central, the corners are background.
    ys, xs = np.nonzero(m)
    assert 0.3 * w < xs.mean() < 0.8 * w and 0.3 * h < ys.mean() < 0.8 * h
    assert not m[:50, :50].any() and not m[:50, -50:].any()


def _pose_available() -> bool:
    try:
        from services.pose.models import ensure_models
        from services.pose.pipeline import PoseExtractor  # noqa: F401

        ensure_models()
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False
    return True


@pytest.mark.skipif(not _pose_available(), reason="pose pipeline or models not available")
def test_analyse_detects_joints_with_pose_pipeline_on_photo(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from services.pose.pipeline import PoseExtractor, PoseOptions

    with PoseExtractor(PoseOptions(hands=True, face=True, smoothing=False)) as ex:
        rig = analyse_character(shared_data / "characters" / "musev__man.jpg", pose_extractor=ex)
        assert rig.joint_sources["left_shoulder"] == "pose"
        assert rig.facing == "front" and rig.mask_source == "threshold"
        ls, rs = rig.joints["left_shoulder"], rig.joints["right_shoulder"]
        assert ls[0] > rs[0]  # anatomical left on the image's right for a front-facing person
        assert rig.bone("left_shin") is not None and rig.missing_parts == []
        # White-outlined anime figure: a foot cut off from the body by light skin must stay in the mask.
        anime = analyse_character(shared_data / "characters" / "moore_aa__anyone-5.png", pose_extractor=ex)
        assert anime.mask_source == "threshold" and anime.missing_parts == []
        x, y = anime.joints["left_ankle"]
        assert anime.mask[int(y), int(x)] == 255
        # A shape with no person: a mask is found, but the detector sees nobody.
        blank = np.full((480, 360, 3), 235, np.uint8)
        cv2.rectangle(blank, (100, 80), (260, 400), (60, 90, 160), -1)
        path = tmp_path / "box.png"
        cv2.imwrite(str(path), blank)
        with pytest.raises(InputError) as exc:
            analyse_character(path, pose_extractor=ex)
        assert exc.value.rule == "character.no_person"


def test_cli_character_writes_rig_files_with_drawing(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from motion.cli import main

    out = tmp_path / "rig"
    rc = main(["character", str(shared_data / "drawings" / "char4_texture.png"), "--joints",
               str(shared_data / "drawings" / "char4_char_cfg.yaml"), "-o", str(out), "--quiet"])
    assert rc == 0
    for name in ("mask.png", "texture.png", "background.png", "joints.png", "rig.json", "rig.bin"):
        assert (out / name).stat().st_size > 0
    doc = json.loads((out / "rig.json").read_text())
    assert doc["mask_source"] == "threshold" and "left_wrist" in doc["joints"]
    assert CharacterRig.from_bytes((out / "rig.bin").read_bytes()).width == 216
    rc = main(["character", str(shared_data / "drawings" / "char4_texture.png"), "--joints",
               str(tmp_path / "missing.json"), "-o", str(out), "--quiet"])
    assert rc == 2


def test_border_background_fraction_equals_full_image_lab_with_noise_and_wall() -> None:
    # Only the border strips are converted to Lab: the fraction must be what the whole image's Lab gives.
    from services.render.character.mask import MaskOptions, border_background_fraction

    rng = np.random.default_rng(3)
    for wall in (False, True):
        rgb = rng.integers(0, 256, (240, 170, 3), dtype=np.uint8)
        if wall:
            rgb[:, :] = (236, 232, 225)
            rgb[60:200, 40:130] = rng.integers(0, 256, (140, 90, 3), dtype=np.uint8)
            rgb[:3, :20] = (20, 20, 20)  # a few dark border pixels
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        b = max(2, 170 // 100)
        border = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3),
                                 lab[:, -b:].reshape(-1, 3)])
        want = float((np.linalg.norm(border - np.median(border, axis=0), axis=1)
                      < MaskOptions().border_uniform_max).mean())
        got = border_background_fraction(rgb, MaskOptions())
        assert got == want and (0.9 < got < 1.0 if wall else got < 0.2)
