"""Convert the P-Net, R-Net and O-Net weights that the mtcnn package ships into ONNX.

    python -m moodstream.models.mtcnn_to_onnx [--out models/mtcnn] [--no-verify]

Rerunnable; writes pnet.onnx, rnet.onnx and onet.onnx (2 MB together), and pnet_mosaic.onnx:
P-Net with a second input, a mask that makes one call on a mosaic of pyramid levels give
exactly what one call per level gives (see its doc string).

The graphs are written node by node with onnx.helper from the package's weight files
(mtcnn/assets/weights/*.lz4, read with joblib, no TensorFlow needed), rather than through
tf2onnx, so that each PReLU takes the form that runs fastest. P-Net keeps ONNX's PRelu
operator. R-Net and O-Net write it as slope * x + (1 - slope) * Relu(x), the same to 1e-6:
onnxruntime's PRelu kernel is slow on these small maps and keeps the blocked-layout
convolutions around it apart, while the products become per-channel convolutions of that
layout (O-Net on 25 faces: 17 ms of CPU in this form, 29 ms with PRelu). Two things are
folded into the first convolution, exactly (its padding is "valid", so no padded pixel ever
meets a weight):

- the package's input normalisation (pixel - 127.5) / 128, so the networks take raw pixels;
- the RGB -> BGR channel swap, so the networks take OpenCV's BGR images as they come.

Inputs: float32, NHWC, BGR, 0..255. P-Net has dynamic batch, height and width; R-Net
(24x24) and O-Net (48x48) a dynamic batch. Outputs are NCHW for P-Net (``reg`` N,4,h,w and
``prob`` N,2,h,w) and N,k for the others (``reg``, O-Net's ``landmarks``, ``prob``).

With TensorFlow installed the script checks each ONNX network against the package's own Keras
network on random inputs (unless --no-verify) and fails if they differ.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "mtcnn"
OPSET = 13
# (name, input size or None for P-Net) in the order of the package's weight files
NETS = {"pnet": None, "rnet": 24, "onet": 48}


def package_weights(name: str) -> list[np.ndarray]:
    """The list of arrays in mtcnn/assets/weights/<name>.lz4 (Keras get_weights() order),
    located without importing the mtcnn package (whose __init__ imports TensorFlow)."""
    import joblib

    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the mtcnn package is not installed (pip install mtcnn)")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights" / f"{name}.lz4"
    return [np.asarray(w, np.float32) for w in joblib.load(path)]


class GraphBuilder:
    """Tiny helper around onnx.helper: NCHW nodes with initialisers."""

    def __init__(self, name: str, split_prelu: bool = False):
        self.name, self.nodes, self.inits, self.count = name, [], [], 0
        self.split_prelu = split_prelu

    def const(self, array: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        self.count += 1
        name = f"{hint}_{self.count}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs):
        from onnx import helper

        self.count += 1
        outputs = outputs or [f"{op.lower()}_{self.count}"]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{self.count}",
                                           **attrs))
        return outputs[0]

    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray, out: str | None = None) -> str:
        """Keras kernel (kh, kw, cin, cout) -> ONNX (cout, cin, kh, kw), valid padding."""
        w = self.const(kernel.transpose(3, 2, 0, 1), "W")
        b = self.const(bias, "B")
        return self.node("Conv", [x, w, b], [out] if out else None,
                         kernel_shape=list(kernel.shape[:2]), strides=[1, 1])

    def prelu(self, x: str, alpha: np.ndarray) -> str:
        """Keras PReLU alpha (1, 1, C) shared over H and W -> ONNX slope (C, 1, 1)."""
        slope = alpha.reshape(-1, 1, 1) if alpha.ndim == 3 else alpha.reshape(-1)
        if not self.split_prelu:
            return self.node("PRelu", [x, self.const(slope, "slope")])
        # slope * x + (1 - slope) * Relu(x): the same for any slope, negative or above 1
        scaled = self.node("Mul", [x, self.const(slope, "slope")])
        rest = self.node("Mul", [self.node("Relu", [x]), self.const(1 - slope, "rest")])
        return self.node("Add", [scaled, rest])

    def maxpool(self, x: str, size: int, same: bool) -> str:
        kw = {"auto_pad": "SAME_UPPER"} if same else {}
        return self.node("MaxPool", [x], kernel_shape=[size, size], strides=[2, 2], **kw)

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray, out: str | None = None) -> str:
        return self.node("Gemm", [x, self.const(kernel, "W"), self.const(bias, "B")],
                         [out] if out else None)

    def flatten_like_keras(self, x: str) -> str:
        """Keras Permute((2, 1, 3)) + Flatten on NHWC == NCHW -> (N, W, H, C) -> flatten."""
        t = self.node("Transpose", [x], perm=[0, 3, 2, 1])
        return self.node("Flatten", [t], axis=1)

    def model(self, input_shape: list, outputs: dict[str, list], doc: str,
              extra_inputs: list | None = None):
        from onnx import TensorProto, helper

        inputs = [("input", input_shape), *(extra_inputs or [])]
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in inputs],
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in outputs.items()],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="moodstream models/mtcnn_to_onnx.py")
        model.ir_version = 8  # readable by onnxruntime >= 1.14
        model.doc_string = doc
        for key, value in {"input_layout": "NHWC", "channels": "BGR", "pixel_range": "0..255",
                           "source": "mtcnn package weights (ipazc/mtcnn, MIT)"}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        return model


def fold_input(kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First conv on normalised RGB -> the same conv on raw BGR pixels."""
    folded_bias = bias - (127.5 / 128.0) * kernel.sum(axis=(0, 1, 2))
    folded_kernel = kernel[:, :, ::-1, :] / 128.0
    return folded_kernel.astype(np.float32), folded_bias.astype(np.float32)


def build_pnet(w: list[np.ndarray], masked: bool = False):
    g = GraphBuilder("mtcnn_pnet_mosaic" if masked else "mtcnn_pnet")
    x = g.node("Transpose", ["input"], perm=[0, 3, 1, 2])
    x = g.prelu(g.conv(x, *fold_input(w[0], w[1])), w[2])
    if masked:  # a large negative number where a first-layer window leaves its level
        x = g.node("Add", [x, "mask"])
    x = g.maxpool(x, 2, same=True)
    x = g.prelu(g.conv(x, w[3], w[4]), w[5])
    x = g.prelu(g.conv(x, w[6], w[7]), w[8])
    g.conv(x, w[9], w[10], out="reg")
    logits = g.conv(x, w[11], w[12])
    g.node("Softmax", [logits], ["prob"], axis=1)
    doc = "MTCNN P-Net: 12x12 windows, stride 2; prob[:, 1] is the face probability"
    extra = []
    if masked:
        doc += (". For a mosaic of pyramid levels: `mask` (1, 1, H - 2, W - 2) is 0 where the "
                "first convolution's window lies inside a level and -1e4 elsewhere, so that the "
                "max pool ignores those positions as it ignores padding on a level of its own")
        extra = [("mask", [1, 1, "H2", "W2"])]
    return g.model(["N", "H", "W", 3], {"reg": ["N", 4, "h", "w"], "prob": ["N", 2, "h", "w"]},
                   doc, extra)


def refine_trunk(g: GraphBuilder, w: list[np.ndarray]) -> str:
    """The first three convolutions that R-Net and O-Net share in shape (weights w[0:9])."""
    x = g.node("Transpose", ["input"], perm=[0, 3, 1, 2])
    x = g.prelu(g.conv(x, *fold_input(w[0], w[1])), w[2])
    x = g.maxpool(x, 3, same=True)
    x = g.prelu(g.conv(x, w[3], w[4]), w[5])
    x = g.maxpool(x, 3, same=False)
    return g.prelu(g.conv(x, w[6], w[7]), w[8])


def build_rnet(w: list[np.ndarray]):
    g = GraphBuilder("mtcnn_rnet", split_prelu=True)
    x = refine_trunk(g, w)
    x = g.prelu(g.dense(g.flatten_like_keras(x), w[9], w[10]), w[11])
    g.dense(x, w[12], w[13], out="reg")
    g.node("Softmax", [g.dense(x, w[14], w[15])], ["prob"], axis=1)
    return g.model(["N", 24, 24, 3], {"reg": ["N", 4], "prob": ["N", 2]},
                   "MTCNN R-Net on 24x24 patches")


def build_onet(w: list[np.ndarray]):
    g = GraphBuilder("mtcnn_onet", split_prelu=True)
    x = g.maxpool(refine_trunk(g, w), 2, same=True)
    x = g.prelu(g.conv(x, w[9], w[10]), w[11])
    x = g.prelu(g.dense(g.flatten_like_keras(x), w[12], w[13]), w[14])
    g.dense(x, w[15], w[16], out="reg")
    g.dense(x, w[17], w[18], out="landmarks")
    g.node("Softmax", [g.dense(x, w[19], w[20])], ["prob"], axis=1)
    return g.model(["N", 48, 48, 3], {"reg": ["N", 4], "landmarks": ["N", 10], "prob": ["N", 2]},
                   "MTCNN O-Net on 48x48 patches; landmarks x1..x5, y1..y5 relative to the box")


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet,
            "pnet_mosaic": lambda w: build_pnet(w, masked=True)}


def verify(name: str, onnx_path: Path, tol: float = 1e-4) -> float:
    """Largest absolute difference between ONNX (raw BGR) and the package's Keras network
    (normalised RGB) on random inputs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import onnxruntime as ort
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    keras_net = {"pnet": StagePNet, "rnet": StageRNet, "onet": StageONet}[name]().model
    size = NETS[name]
    rng = np.random.default_rng(0)
    shape = (3, 37, 53, 3) if size is None else (5, size, size, 3)
    bgr = rng.uniform(0, 255, shape).astype(np.float32)
    expected = [np.asarray(t) for t in keras_net((bgr[..., ::-1] - 127.5) / 128.0)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"input": bgr}), strict=True))
    if size is None:  # NCHW -> NHWC
        got = {k: v.transpose(0, 2, 3, 1) for k, v in got.items()}
    order = ["reg", "landmarks", "prob"] if name == "onet" else ["reg", "prob"]
    worst = max(float(np.abs(e - got[k]).max()) for e, k in zip(expected, order, strict=True))
    if worst > tol:
        raise SystemExit(f"{name}: ONNX differs from the Keras network by {worst:.2e}")
    return worst


def convert(out: Path = DEFAULT_OUT, check: bool = True) -> dict[str, Path]:
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [*NETS, "pnet_mosaic"]:
        model = BUILDERS[name](package_weights(name.split("_")[0]))
        onnx.checker.check_model(model)
        path = out / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        written[name] = path
        note = ""
        if check and name in NETS:
            note = f", max |ONNX - Keras| = {verify(name, path):.1e}"
        print(f"wrote {path} ({path.stat().st_size:,} bytes{note})")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the comparison with the package's Keras networks")
    args = parser.parse_args(argv)
    check = not args.no_verify and importlib.util.find_spec("tensorflow") is not None
    convert(args.out, check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
