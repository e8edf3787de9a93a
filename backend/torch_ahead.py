"""Compiled torch functions kept on disk, so that a fresh process skips dynamo's tracing.

``torch.compile`` traces a function anew in every process, even when inductor's disk cache
holds its kernels: on an H200 a restarted server's first job spent ~15 s there, in the
decimator's six regions. torch's ahead-of-time compile (``aot_compile``) saves the traced,
guarded and compiled function whole; a later process loads it in ~0.03 s (the first load
~3 s: torch's compiler modules). Measured on 2 CPU cores: a fresh process's first decimation
went from 16.3 s to 3.4 s, the same GLB byte for byte.

An artefact is named by the sources of the function's package, the torch, Triton and Python
versions and the device (CUDA capability, or the CPU's vector ISA), so changed code or another
machine never runs stale kernels. Compiled functions must therefore depend on code in their own
package only (geometry's kernels do). A missing or unreadable artefact means a compile; inputs
that no kept build's guards accept (another dtype, a size traced as 0 or 1) get a build of
their own, kept too (at most ``MAX_BUILDS``, then a normal ``torch.compile``); a function that
cannot be compiled whole (a graph break) is compiled per process as before: never a failed
job. ``DREAMCAD_COMPILE_AHEAD=0`` turns it off. Artefacts live beside inductor's cache
(``TORCHINDUCTOR_CACHE_DIR``) in ``dreamcad-ahead/``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.torch_compile import OFF

log = logging.getLogger(__name__)

AHEAD_ENV = "DREAMCAD_COMPILE_AHEAD"
GUARDS_REFUSED = "GuardManager check failed"  # how an artefact's guard check says no
MAX_BUILDS = 6  # per function: the specialisations its calls need (a size traced as 0 or 1...)


def enabled() -> bool:
    return os.environ.get(AHEAD_ENV, "1").strip().lower() not in OFF


def artefact_dir() -> Path:
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / "dreamcad-ahead"


def device_signature(device: Any) -> str:
    """What compiled code depends on besides the source: the device's instruction set."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        import triton

        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda sm{major}{minor} triton {triton.__version__}"
    return f"{device.type} {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def artefact_stem(function: Callable[..., Any], device: Any, config: dict[str, Any]) -> Path:
    """The path of ``function``'s builds less their number: ``<stem>-<n>.aot``."""
    import torch

    digest = hashlib.sha256(_package_digest(Path(inspect.getfile(function)).parent))
    for part in (function.__module__, function.__qualname__, torch.__version__, sys.version,
                 device_signature(device), sorted(config.items())):  # fmt: skip
        digest.update(repr(part).encode() + b"\0")
    name = f"{function.__module__}.{function.__qualname__}"
    return artefact_dir() / f"{name}-{digest.hexdigest()[:20]}"


@functools.cache
def _package_digest(package: Path) -> bytes:
    """The package's sources, read once per process (its kernels all ask at start-up)."""
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.digest()


def compiled_ahead(
    function: Callable[..., Any], device: Any, config: dict[str, Any] | None = None
) -> Callable[..., Any]:
    """``torch.compile(function, dynamic=True)`` under the dynamo ``config``, built once per
    install and loaded by later processes (see the module's docstring)."""
    import torch

    config = dict(config or {})
    jit = torch._dynamo.config.patch(**config)(torch.compile(function, dynamic=True))
    if not enabled():
        return jit
    kept = _KeptBuilds(function, device, config)

    def call(*args: Any, **kwargs: Any) -> Any:
        found, result = kept.run(args, kwargs)
        return result if found else jit(*args, **kwargs)

    return call


class _KeptBuilds:
    """A function's builds on disk, loaded on first use; a new one for inputs none accepts.

    Like dynamo's own recompiles, each build guards what it was traced for; the one that
    accepted the last call is tried first, so a refusal costs only when inputs change."""

    def __init__(self, function: Callable[..., Any], device: Any, config: dict[str, Any]):
        self.function, self.device, self.config = function, device, config
        self.builds: list[Any] | None = None  # loaded on the first call
        self.stem: Path | None = None
        self.next_number = 0
        self.can_build = True

    def run(self, args: Any, kwargs: Any) -> tuple[bool, Any]:
        if self.builds is None:
            try:
                self._load()
            except Exception as error:  # no place for builds here: compile per process
                log.warning("%s: kept builds unavailable (%s: %s); each process compiles it",
                            self.function.__qualname__, type(error).__name__, error)  # fmt: skip
                self.builds, self.can_build = [], False
        assert self.builds is not None
        for index, build in enumerate(self.builds):
            accepts = getattr(build, "guard_check", None)  # a bool, without the refusal's text
            if accepts is not None and not accepts(*args, **kwargs):
                continue
            try:
                result = build(*args, **kwargs)
            except RuntimeError as error:
                if str(error).startswith(GUARDS_REFUSED):
                    continue
                raise
            if index:
                self.builds.insert(0, self.builds.pop(index))
            return True, result
        if not self.can_build or self.next_number >= MAX_BUILDS:
            return False, None
        build = self._build(args, kwargs)
        if build is None:
            return False, None
        self.builds.insert(0, build)
        return True, build(*args, **kwargs)

    def _load(self) -> None:
        import torch

        self.builds = []
        self.stem = artefact_stem(self.function, self.device, self.config)
        name = self.function.__qualname__
        _remove_stale(self.stem)
        for path in sorted(self.stem.parent.glob(f"{self.stem.name}-*.aot")):
            try:
                with path.open("rb") as stream:
                    self.builds.append(torch.compiler.load_compiled_function(stream))
            except Exception as error:  # cut short (a full disk...): built again when needed
                log.warning("%s: cannot load %s (%s: %s); it will be compiled again",
                            name, path, type(error).__name__, error)  # fmt: skip
                path.unlink(missing_ok=True)
                continue
            number = int(path.stem.rsplit("-", 1)[1])
            self.next_number = max(self.next_number, number + 1)
        if self.builds:
            log.debug("%s: %d kept builds loaded", name, len(self.builds))

    def _build(self, args: Any, kwargs: Any) -> Any:
        import torch

        name = self.function.__qualname__
        try:
            with torch._dynamo.config.patch(**self.config):
                compiled = torch.compile(self.function, dynamic=True, fullgraph=True)
                build = compiled.aot_compile((args, kwargs))
        except Exception as error:  # a graph break, an unsupported input: compile per process
            self.can_build = False
            first_line = (str(error).splitlines() or [""])[0]
            log.info("%s cannot be compiled ahead (%s: %s); each process compiles it",
                     name, type(error).__name__, first_line)  # fmt: skip
            return None
        assert self.stem is not None
        _save(build, Path(f"{self.stem}-{self.next_number}.aot"))
        self.next_number += 1
        return build


def _remove_stale(stem: Path) -> None:
    """Builds of the same function from other sources or versions: never loaded again."""
    prefix = stem.name.rsplit("-", 1)[0]
    for old in stem.parent.glob(f"{prefix}-*.aot"):
        if not old.name.startswith(stem.name + "-"):
            old.unlink(missing_ok=True)


def _save(build: Any, path: Path) -> None:
    """Write whole or not at all: a temp file renamed into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        os.close(handle)
        try:
            build.save_compiled_function(temp)
            os.replace(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
    except Exception as error:  # a full disk, a build this torch cannot write: this process
        # has the build all the same (an error here must not send the caller to eager code)
        log.warning("compiled code not kept at %s: %s: %s", path, type(error).__name__, error)
