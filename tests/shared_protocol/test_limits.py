"""shared_protocol.limits: the job options' numbers without the message classes; the package's
framing names still import from ``shared_protocol`` (on first use)."""

from __future__ import annotations

import json
import subprocess
import sys

from shared_protocol import limits, messages
from tests.support.backend_process import REPO

NAMES = (
    "MIN_FACES", "MAX_FACES", "DEFAULT_FACES", "TEXTURE_SIZES", "DEFAULT_TEXTURE_SIZE",
    "DEFAULT_FORMAT", "MAX_MESH_FACES",
)  # fmt: skip


def test_messages_re_exports_the_limits() -> None:
    for name in NAMES:
        assert getattr(messages, name) is getattr(limits, name), name
    submit = messages.SubmitRequest(model="m", task="text")
    assert (submit.target_faces, submit.output_format) == (limits.DEFAULT_FACES, "glb")


CHILD = """
import json, sys
import shared_protocol.errors, shared_protocol.limits
light = "shared_protocol.messages" not in sys.modules
from shared_protocol import PROTOCOL_VERSION, ErrorCode, decode, encode
from shared_protocol import framing
print(json.dumps([light, encode is framing.encode, PROTOCOL_VERSION == framing.PROTOCOL_VERSION,
                  "shared_protocol.messages" in sys.modules, hasattr(shared_protocol, "nope")]))
"""


def test_errors_and_limits_load_no_message_class_and_framing_names_still_import() -> None:
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, True, True, True, False]
