"""The images a request sends, read from files or from images in the .blend.

Reading files and encoding Blender images is I/O, so it happens in the generate operators, not
in the panel or the PropertyGroup. Returns the protocol's ImageInput records plus a small dict
of where each image came from, stored on the imported object so "regenerate" can read them
again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ImageInput

MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp"}
_VIEWS = (("view_left_path", "left"), ("view_back_path", "back"), ("view_right_path", "right"))


def collect_images(settings) -> tuple[tuple[ImageInput, ...], dict[str, str]]:
    """(images, their sources) for the panel's settings; no images for a text task."""
    if settings.task == "text":
        return (), {}
    if settings.image_source == "BLEND":
        if settings.image is None:
            raise ProtocolError(ErrorCode.MISSING_FIELD, "no image chosen from this file",
                                field="image", hint="Pick an image in the Image field.")
        front = ImageInput(data=blend_image_png(settings.image), media_type="image/png")
        sources = {"image_name": settings.image.name}
    else:
        front = file_image(settings.image_path, "front")
        sources = {"image": bpy.path.abspath(settings.image_path)}
    images = [front]
    if settings.task == "multi_image":
        for prop, view in _VIEWS:
            path = getattr(settings, prop)
            if path:
                images.append(file_image(path, view))
                sources[view] = bpy.path.abspath(path)
    return tuple(images), sources


def images_from_sources(sources: dict[str, str]) -> tuple[ImageInput, ...]:
    """Read the images again from what ``collect_images`` recorded (for regenerate)."""
    images: list[ImageInput] = []
    if "image_name" in sources:
        image = bpy.data.images.get(sources["image_name"])
        if image is None:
            raise ProtocolError(ErrorCode.MISSING_FIELD,
                                f"image {sources['image_name']!r} is no longer in this file",
                                field="image")
        images.append(ImageInput(data=blend_image_png(image), media_type="image/png"))
    elif "image" in sources:
        images.append(file_image(sources["image"], "front"))
    for _prop, view in _VIEWS:
        if view in sources:
            images.append(file_image(sources[view], view))
    return tuple(images)


def file_image(path_text: str, view: str) -> ImageInput:
    path = Path(bpy.path.abspath(path_text)) if path_text else None
    if path is None or not path.is_file():
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"image file {path_text!r} not found",
                            field="image", hint="Choose an existing PNG, JPEG or WebP file.")
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    if media_type is None:
        raise ProtocolError(ErrorCode.INVALID_IMAGE, f"{path.name} is not PNG, JPEG or WebP",
                            field="image")
    return ImageInput(data=path.read_bytes(), media_type=media_type, view=view)


def blend_image_png(image: bpy.types.Image) -> bytes:
    """An image of the .blend as PNG bytes (packed, on disk, or rendered from its pixels)."""
    if image.packed_file is not None and image.file_format == "PNG":
        return bytes(image.packed_file.data)
    on_disk = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
    if on_disk is not None and on_disk.suffix.lower() == ".png" and on_disk.is_file():
        return on_disk.read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "image.png"
        copy = image.copy()  # saving a copy leaves the user's image and its path untouched
        try:
            copy.filepath_raw = str(target)
            copy.file_format = "PNG"
            copy.save()
        finally:
            bpy.data.images.remove(copy)
        return target.read_bytes()
