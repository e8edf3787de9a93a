"""conditioners.py / dinov2.py: TRELLIS's framing, our DINOv2 against transformers' on the same
files, and the CLIP text condition against transformers' own loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.nn import functional as nnf

from backend.models.trellis import testing
from backend.models.trellis.conditioners import (
    frame_subject,
    load_image_conditioner,
    load_text_conditioner,
)
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.trellis.conftest import cutout


def test_framing_crops_a_square_1_2_times_the_subject_around_its_centre() -> None:
    rgba = cutout()  # subject: columns 20..43, rows 16..47
    rgba[10, 5] = (255, 255, 255, 150)  # soft alpha (< 0.8 * 255): not part of the box
    # side int(31 * 1.2) = 37, centre (31.5, 31.5): box (13.5, 13.5, 49.5, 49.5), which PIL
    # rounds half to even: columns and rows 14..49 -> 36 px, so size 36 is a pure crop.
    framed = frame_subject(rgba, 36)
    expected = rgba[14:50, 14:50].astype(np.float32) / 255
    expected = (expected[:, :, :3] * expected[:, :, 3:4] * 255).astype(np.uint8)
    assert framed.shape == (36, 36, 3) and framed.dtype == np.uint8
    assert np.array_equal(framed, expected)


def test_framing_pads_with_black_and_resizes_with_lanczos() -> None:
    rgba = cutout(box=(0, 0, 30, 64))  # touches the border: the crop reaches outside
    framed = frame_subject(rgba, 518)
    assert framed.shape == (518, 518, 3)
    assert framed[:, :20].max() == 0  # padded transparent black, premultiplied to black
    side = int(63 * 1.2)
    box = (14.5 - side // 2, 31.5 - side // 2, 14.5 + side // 2, 31.5 + side // 2)
    resized = (
        np.asarray(
            Image.fromarray(rgba).crop(box).resize((518, 518), Image.Resampling.LANCZOS)
        ).astype(np.float32)
        / 255
    )
    expected = (resized[:, :, :3] * resized[:, :, 3:4] * 255).astype(np.uint8)
    assert np.array_equal(framed, expected)


def test_an_image_without_an_opaque_subject_names_the_image() -> None:
    rgba = cutout()
    rgba[:, :, 3] = np.minimum(rgba[:, :, 3], 200)
    with pytest.raises(ProtocolError) as caught:
        frame_subject(rgba, 56, "images[2]")
    assert caught.value.code == ErrorCode.INVALID_IMAGE
    assert caught.value.info.field == "images[2]"


def test_dinov2_features_equal_transformers_on_the_same_files(tmp_path: Path) -> None:
    """Our ViT reads the hub's transformers-format files; transformers reads them too (no key
    left over either way) and its last hidden state before the final norm is our x_prenorm."""
    from transformers import Dinov2WithRegistersModel

    folder = testing.write_dinov2(tmp_path / "dinov2")
    conditioner = load_image_conditioner(folder, "cpu")
    reference, info = Dinov2WithRegistersModel.from_pretrained(folder, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    images = [cutout(), cutout(box=(4, 10, 60, 30))]
    framed = [frame_subject(image, conditioner.size) for image in images]
    pixels = conditioner.pixels(framed)
    with torch.no_grad():
        hidden = reference.eval()(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        expected = nnf.layer_norm(hidden, hidden.shape[-1:])
        ours = conditioner.encode(images)
    assert ours.shape == (2, 1 + 4 + 16, testing.TINY_DINO.hidden_size)
    assert torch.allclose(ours, expected, atol=1e-5)
    assert torch.all(conditioner.negative(ours) == 0) and conditioner.negative(ours).shape[0] == 1


def test_the_pixels_are_imagenet_normalised() -> None:
    class Stub:
        class config:  # noqa: N801 - mimics the encoder's config attribute
            image_size = 2

    from backend.models.trellis.conditioners import ImageConditioner

    conditioner = ImageConditioner(Stub(), "cpu")  # type: ignore[arg-type]
    framed = np.full((2, 2, 3), (255, 0, 128), np.uint8)
    pixels = conditioner.pixels([framed])
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor([0.485, 0.456, 0.406])) / (
        torch.tensor([0.229, 0.224, 0.225])
    )
    assert torch.allclose(pixels[0, :, 1, 1], expected)


def test_clip_text_condition_matches_transformers_and_negative_is_the_empty_prompt(
    tmp_path: Path,
) -> None:
    from transformers import AutoTokenizer, CLIPTextModel

    folder = testing.write_clip(tmp_path / "clip")
    conditioner = load_text_conditioner(folder, "cpu")
    reference = CLIPTextModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = ["a wooden chair", ""]
    tokens = tokenizer(prompts, max_length=77, padding="max_length", truncation=True,
                       return_tensors="pt")["input_ids"]  # fmt: skip
    with torch.no_grad():
        expected = reference(input_ids=tokens).last_hidden_state
    cond = conditioner.encode(prompts)
    assert cond.shape == (2, 77, testing.TINY_COND_CHANNELS)
    assert torch.allclose(cond, expected, atol=1e-5)
    negative = conditioner.negative(cond[:1])
    assert torch.allclose(negative, expected[1:], atol=1e-5)
    assert negative.abs().sum() > 0  # not zeros: the text models' negative is CLIP("")


def test_the_clip_text_tower_loads_strictly(tmp_path: Path) -> None:
    folder = testing.write_clip(tmp_path / "clip")
    path = folder / "model.safetensors"
    state = load_file(str(path))
    del state["text_model.final_layer_norm.bias"]
    state.pop("vision_model.post_layernorm.weight")  # the vision tower is never read
    save_file(state, str(path))
    with pytest.raises(ProtocolError) as caught:
        load_text_conditioner(folder, "cpu")
    assert caught.value.code == ErrorCode.MODEL_FAILED
    assert "final_layer_norm.bias" in caught.value.info.message
