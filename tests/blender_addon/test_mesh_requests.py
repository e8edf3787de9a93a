"""mesh_requests.py: requests of the "Your mesh" jobs are checked before anything is sent."""

from __future__ import annotations

import bpy
import pytest

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import MIN_FACES, OPTIMIZE_MODEL, ImageInput, ModelInfo
from tests.blender_addon.mesh_scenes import textured_box


def model(model_id: str, tasks: tuple[str, ...], available: bool = True) -> ModelInfo:
    return ModelInfo(id=model_id, name=model_id.title(), tasks=tasks, parameters=(),
                     vram_mb=0, license="MIT", available=available,
                     unavailable_reason="" if available else "paint weights missing")


@pytest.fixture
def exported(fresh):
    box = textured_box(subdivisions=2)
    return fresh.mesh_export.export_object(box, bpy.context.evaluated_depsgraph_get())


def test_texture_model_prefers_the_panels_painter_and_says_what_to_install(fresh) -> None:
    requests = fresh.mesh_requests
    painters = (model("a", ("image",)), model("b", ("texture",)), model("c", ("texture",)))
    assert requests.texture_model(painters, "c", False) == (painters[2], {})
    assert requests.texture_model(painters, "a", False) == (painters[1], {})
    with pytest.raises(ProtocolError) as none:
        requests.texture_model((model("b", ("texture",), available=False),), "b", False)
    assert none.value.code is ErrorCode.UNSUPPORTED_TASK and "paint weights" in str(none.value)
    with pytest.raises(ProtocolError) as old:
        requests.optimize_model(painters)
    assert old.value.code is ErrorCode.UNKNOWN_MODEL
    assert requests.optimize_model((model(OPTIMIZE_MODEL, ("optimize",)),)).id == OPTIMIZE_MODEL


def test_a_prompt_goes_through_the_bridge_with_the_painter_as_its_image_model(fresh) -> None:
    requests = fresh.mesh_requests
    bridge = model(requests.BRIDGE_MODEL, ("text", "texture"))
    painters = (bridge, model("c", ("texture",)))
    assert requests.texture_model(painters, "c", True) == (bridge, {"image_model": "c"})
    assert requests.texture_model(painters, requests.BRIDGE_MODEL, False)[0].id == "c"
    with pytest.raises(ProtocolError) as no_bridge:
        requests.texture_model(painters[1:], "c", True)
    assert no_bridge.value.code is ErrorCode.UNSUPPORTED_TASK


def test_the_painters_own_parameters_go_with_it_directly_or_through_the_bridge(fresh) -> None:
    requests = fresh.mesh_requests
    bridge = model(requests.BRIDGE_MODEL, ("text", "texture"))
    models = (bridge, model("c", ("texture",)))
    steps = {"paint_steps": 2}
    assert requests.texture_model(models, "c", False, steps) == (models[1], steps)
    assert requests.texture_model(models, "c", True, steps) == (
        bridge, {"image_model": "c", "image_model_parameters": '{"paint_steps": 2}'})
    assert [m.id for m in requests.painters(models)] == ["c"]


def test_a_painter_the_artist_picked_is_not_swapped_for_another(fresh) -> None:
    requests = fresh.mesh_requests
    models = (model("b", ("texture",)), model("c", ("texture",), available=False))
    assert requests.texture_model(models, "c", False)[0].id == "b"  # Automatic falls back
    with pytest.raises(ProtocolError) as picked:
        requests.texture_model(models, "c", False, chosen_only=True)
    assert picked.value.code is ErrorCode.MODEL_UNAVAILABLE and picked.value.field == "painter"


def test_texture_request_keeps_the_geometry_and_needs_a_prompt_or_image(fresh, exported):
    requests = fresh.mesh_requests
    mesh = requests.mesh_input(exported, None)
    painter = model("b", ("texture",))
    request = requests.texture_request(painter, exported, mesh, prompt=" rust ", images=(),
                                       texture_size=512, keep_uvs=True)
    assert request.task == "texture" and request.prompt == "rust" and request.keep_inner
    assert request.target_faces == max(MIN_FACES, exported.faces) and request.keep_uvs
    assert request.mesh.data == exported.glb and request.mesh.name == exported.object_name
    image = ImageInput(data=b"\x89PNG")
    with_image = requests.texture_request(painter, exported, mesh, prompt="rust",
                                          images=(image,), texture_size=512, keep_uvs=False)
    assert with_image.images == (image,) and with_image.prompt == ""
    with pytest.raises(ProtocolError) as missing:
        requests.texture_request(painter, exported, mesh, prompt=" ", images=(),
                                 texture_size=512, keep_uvs=False)
    assert missing.value.code is ErrorCode.MISSING_FIELD


def test_a_mesh_over_the_frame_limit_is_refused_before_sending(fresh, exported) -> None:
    requests = fresh.mesh_requests
    assert requests.mesh_input(exported, len(exported.glb)).data == exported.glb
    with pytest.raises(ProtocolError) as caught:
        requests.mesh_input(exported, len(exported.glb) - 1)
    assert caught.value.code is ErrorCode.FRAME_TOO_LARGE and caught.value.field == "mesh"


def test_optimize_request_carries_the_game_ready_settings(fresh) -> None:
    settings = bpy.context.scene.dreamcad.mesh
    settings.target_faces, settings.texture_size, settings.lods = 3000, "512", 3
    settings.quads, settings.keep_inner = True, True
    request = fresh.mesh_requests.optimize_request(settings, source_job="job1", name="Crate")
    assert (request.model, request.task, request.source_job, request.mesh) == \
        (OPTIMIZE_MODEL, "optimize", "job1", None)
    assert (request.target_faces, request.texture_size, request.lods, request.quads,
            request.keep_inner, request.keep_uvs) == (3000, 512, 3, True, True, False)
