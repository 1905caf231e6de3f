"""onnxruntime sessions on the CPU, made one way for every model (the emotion classifier,
MTCNN's three nets, evaluation and export checks)."""

from __future__ import annotations

from pathlib import Path


def cpu_session(model: Path | str | bytes, threads: int = 1, *, arena: bool = False,
                spin: bool = True, quiet: bool = False):
    """A session for a model file (or its serialised bytes) on `threads` threads.

    arena=False: plain malloc instead of onnxruntime's arena, which keeps its high-water mark
    for good (input shapes that vary, as batch sizes and pyramid levels do, grow it: 167 ->
    214 MB over a long classroom run, 170 MB more for MTCNN at 1280x720). spin=False: idle
    threads sleep instead of spinning, for a worker that shares its cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if quiet:
        options.log_severity_level = 3
    if not arena:
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
