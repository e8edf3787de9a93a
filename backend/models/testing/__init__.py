"""Random-weight parts shared by several families' tests, in the official on-disk layouts.

Nothing here is used when serving: these builders stand in for the hub downloads, so the real
loading code (``from_pretrained`` on a local folder, our checkpoint converters) runs unchanged
on models that cost seconds to build. What remains here is shared: ``clip_tokenizer`` (a
byte-level CLIP tokenizer, used by several families' builders) and Hunyuan3D-Paint's
``hunyuan_paint`` / ``instruct_pix2pix``. A family's own builders live in its ``testing.py``
(``write_tiny_weights``, ``TINY_PARAMETERS``), e.g. backend/models/mvdream/testing.py.
"""
