"""Random-weight models written in the official on-disk layouts, for tests and benchmarks.

Nothing here is used when serving: these builders stand in for the hub downloads, so the real
loading code (``from_pretrained`` on a local folder, our checkpoint converters) runs unchanged
on models that cost seconds to build: tiny configurations for the test suite, the official
configurations with random weights for the GPU benchmarks.
"""
