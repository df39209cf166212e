"""Keras -> ONNX through tf2onnx, holding a few copies of the weights instead of dozens.

``model.export(format="onnx")`` (tf2onnx's ``from_function``) needs about 45 times the
weights' size: tf2onnx's graph optimizers run about 25 passes, and each pass rewrites every
node's attributes into the node's protobuf, which (with protobuf's arena-based ``upb``
backend) keeps the replaced attributes -- the weights -- alive until the message is freed.
Here the same tf2onnx steps run one at a time: the frozen graph keeps its large constants
outside the protobuf (tf2onnx's large-model mode), each node gets a fresh protobuf after
each optimizer pass, and the model is written with its weights embedded, one tensor at a
time.
Large matrix-multiply weights (the Flatten head's Dense kernel is most of the seed model) do
not go through tf2onnx at all: each becomes a graph input while converting (tf2onnx copies a
constant five or six times on its way to an ONNX node) and an initializer when writing.
"""

from __future__ import annotations

import gc
from pathlib import Path


def _fresh_protos(graph) -> None:
    """Give every node a new protobuf without attributes (the next ``update_proto`` writes
    them), so the attributes the last pass replaced are freed with the old one."""
    from onnx import NodeProto

    for node in graph.get_nodes():
        old = node.op
        node._op = NodeProto(name=old.name, op_type=old.op_type, domain=old.domain,
                             input=old.input, output=old.output, doc_string=old.doc_string)
        for body in (node.get_body_graphs() or {}).values():
            _fresh_protos(body)


def _optimize(graph):
    """tf2onnx's ``optimize_graph`` without ``catch_errors`` (which deep-copies the graph
    before every pass), renewing the node protobufs after each pass."""
    from tf2onnx import optimizer

    iteration, changed = 0, True
    while changed:
        changed = False
        for factory in optimizer._get_optimizers().values():
            opt = factory()
            graph = opt.optimize(graph, iteration) or graph
            changed = changed or opt.graph_been_opt
            _fresh_protos(graph)
            gc.collect()
        iteration += 1
    graph.topological_sort(graph.get_nodes())
    return graph


# A constant this large that only feeds a MatMul bypasses tf2onnx (see the module docstring).
HELD_BYTES = 16 * 2**20


def _base(tensor: str) -> str:
    """The node name of a GraphDef input (``name:1`` or ``^name``)."""
    return tensor.split(":")[0].lstrip("^")


def _passes_through(node) -> bool:
    """An Identity, or a Cast to the same type (Keras 3 puts one before every MatMul)."""
    return node.op == "Identity" or (node.op == "Cast"
                                     and node.attr["SrcT"].type == node.attr["DstT"].type)


def _matmul_weights(graph_def, constants: dict) -> list[str]:
    """Names of the large constants whose only consumers are MatMuls (through Identities
    and same-type Casts):
    as graph inputs they need no transposing or folding, so leaving them out changes
    nothing in the converted graph."""
    consumers: dict[str, list] = {}
    for node in graph_def.node:
        for name in node.input:
            if not name.startswith("^"):  # control dependencies read no value
                consumers.setdefault(_base(name), []).append(node)

    def only_matmul(name: str) -> bool:
        users = consumers.get(name, [])
        return bool(users) and all(
            only_matmul(u.name) if _passes_through(u) else
            u.op == "MatMul" and [_base(i) for i in u.input] == [_base(u.input[0]), name]
            and _base(u.input[0]) != name
            for u in users)

    return [n for n, b in constants.items() if len(b) >= HELD_BYTES and only_matmul(n)]


def _hold_out(graph_def, constants: dict) -> dict:
    """Turn the large MatMul weights into Placeholders: name -> (bytes, TF dtype enum)."""
    held = {}
    names = set(_matmul_weights(graph_def, constants))
    for node in graph_def.node:
        if node.name in names:
            value = node.attr["value"].tensor
            node.op = "Placeholder"
            node.attr["shape"].shape.CopyFrom(value.tensor_shape)
            held[node.name] = (constants.pop(node.name), value.dtype)
            del node.attr["value"]
    return held


def _frozen_graph(model):
    """The model's forward pass as a frozen GraphDef whose large constants are kept apart
    (name -> bytes), plus its input and output names."""
    import tensorflow as tf
    from keras.src import tree
    from keras.src.export.export_utils import get_input_signature, make_tf_tensor_spec
    from keras.src.export.onnx import get_concrete_fn
    from tf2onnx import tf_loader
    from tf2onnx.tf_utils import compress_graph_def

    signature = tree.map_structure(make_tf_tensor_spec, get_input_signature(model))
    function = get_concrete_fn(model, signature)
    if hasattr(function, "get_concrete_function"):
        function = function.get_concrete_function(*signature)
    inputs = [t.name for t in function.inputs if t.dtype != tf.dtypes.resource]
    outputs = [t.name for t in function.outputs if t.dtype != tf.dtypes.resource]
    graph_def = tf_loader.convert_variables_to_constants_large_model(function)
    constants = compress_graph_def(graph_def)
    small = type(graph_def)()
    small.ParseFromString(graph_def.SerializeToString())  # a copy without the dropped bytes
    return small, constants, inputs, outputs


def _write_embedded(model_proto, storage, path: Path, held: dict) -> None:
    """Write ``model_proto`` with the external tensors in ``storage`` and the held-out
    weights (graph inputs until now) embedded, so the result is one ordinary .onnx file."""
    import onnx
    from tf2onnx.tf_utils import map_tf_dtype

    graph = model_proto.graph
    for inp in list(graph.input):
        name = inp.name.split(":")[0]
        if name in held:
            data, dtype = held.pop(name)
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            graph.initializer.append(onnx.TensorProto(
                name=inp.name, dims=dims, data_type=map_tf_dtype(dtype), raw_data=data))
            graph.input.remove(inp)
            del data

    for tensor in model_proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in tensor.external_data}["location"]
            tensor.raw_data = storage.name_to_tensor_data.pop(location)
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
    path.write_bytes(model_proto.SerializeToString())


def convert_to_onnx(box: list, path: str | Path, opset: int | None = None) -> None:
    """Write the Keras (TensorFlow backend) model, the one item in ``box``, to ``path`` as
    ONNX.  The model is taken out of the box and let go once its graph is frozen, so the
    caller must hold no other reference to it for the memory to be freed."""
    import tensorflow as tf
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    from tf2onnx.graph import ExternalTensorStorage
    from tf2onnx.tfonnx import process_tf_graph

    patch_tf2onnx()  # what Keras' own ONNX export does for NumPy 2
    graph_def, constants, inputs, outputs = _frozen_graph(box.pop())
    held = _hold_out(graph_def, constants)
    gc.collect()
    with tf.device("/cpu:0"), tf.Graph().as_default() as tf_graph:
        tf.import_graph_def(graph_def, name="")
        del graph_def
        graph = process_tf_graph(tf_graph, const_node_values=constants, opset=opset,
                                 input_names=inputs + [f"{n}:0" for n in held],
                                 output_names=outputs)
    del constants
    _fresh_protos(graph)
    gc.collect()
    graph = _optimize(graph)
    storage = ExternalTensorStorage()
    model_proto = graph.make_model("converted from Keras", external_tensor_storage=storage)
    del graph
    gc.collect()
    _write_embedded(model_proto, storage, Path(path), held)
