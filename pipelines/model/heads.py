"""Fine-tuned classifier checkpoints (BERT and DistilBERT with a classification head) as ONNX graphs.

Recognised from ``config.json``: ``architectures[0]`` and ``id2label``. The graph is the encoder of
:mod:`pipelines.model.onnx_bert` (DistilBERT's weights renamed onto BERT's: the two compute the same
post-LayerNorm layers; DistilBERT has no token types) plus the head, written with NumPy/onnx helpers,
no torch. I/O, as Spark NLP's ``*ForTokenClassification`` / ``*ForSequenceClassification`` read it:

* inputs ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` for BERT): int64 ``[batch, seq]``;
* output ``logits``: float32 ``[batch, seq, labels]`` (token classification) or ``[batch, labels]``
  (sequence classification: the ``[CLS]`` position through BERT's tanh pooler, or DistilBERT's ReLU
  ``pre_classifier``, then the classifier), the raw scores before softmax, as Hugging Face returns them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .onnx_bert import (
    INPUT_NAMES,
    BertShape,
    _GraphBuilder,
    _Weights,
    bert_shape_from_config,
    encoder_nodes,
    finish_model,
)

TOKEN_CLASSIFICATION = "token-classification"
SEQUENCE_CLASSIFICATION = "sequence-classification"
LOGITS = "logits"

# architecture -> (model_type, task)
ARCHITECTURES = {
    "BertForTokenClassification": ("bert", TOKEN_CLASSIFICATION),
    "BertForSequenceClassification": ("bert", SEQUENCE_CLASSIFICATION),
    "DistilBertForTokenClassification": ("distilbert", TOKEN_CLASSIFICATION),
    "DistilBertForSequenceClassification": ("distilbert", SEQUENCE_CLASSIFICATION),
}

# DistilBERT config keys -> the BERT keys the encoder builder reads
_DISTILBERT_CONFIG = {
    "vocab_size": "vocab_size",
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size",
}

# DistilBERT layer weight names -> BERT's (same math: post-LN attention and feed-forward blocks)
_DISTILBERT_LAYER = {
    "attention.q_lin": "attention.self.query",
    "attention.k_lin": "attention.self.key",
    "attention.v_lin": "attention.self.value",
    "attention.out_lin": "attention.output.dense",
    "sa_layer_norm": "attention.output.LayerNorm",
    "ffn.lin1": "intermediate.dense",
    "ffn.lin2": "output.dense",
    "output_layer_norm": "output.LayerNorm",
}


@dataclass(frozen=True)
class ClassifierHead:
    architecture: str
    model_type: str  # "bert" | "distilbert"
    task: str  # TOKEN_CLASSIFICATION | SEQUENCE_CLASSIFICATION
    labels: tuple[str, ...]  # index = class id

    @property
    def input_names(self) -> list[str]:
        return list(INPUT_NAMES) if self.model_type == "bert" else list(INPUT_NAMES[:2])


def classifier_head(config: Mapping[str, Any]) -> ClassifierHead | None:
    """The head a ``config.json`` declares, or None for an encoder checkpoint (the embeddings path).

    Raises ``ValueError`` (saying what to do) for heads or labels that cannot be converted.
    """
    architectures = config.get("architectures") or []
    architecture = architectures[0] if isinstance(architectures, list) and architectures else None
    model_type = config.get("model_type", "bert")
    if architecture not in ARCHITECTURES:
        if model_type == "distilbert":
            raise ValueError(
                f"config.json declares a DistilBERT {architecture or 'model without architectures'}; only "
                f"DistilBERT classifiers can be converted ({', '.join(a for a in ARCHITECTURES if 'Distil' in a)}): "
                "use a fine-tuned DistilBERT checkpoint, or a BERT checkpoint for embeddings"
            )
        return None
    expected_type, task = ARCHITECTURES[architecture]
    if model_type != expected_type:
        raise ValueError(f"config.json declares {architecture} but model_type={model_type!r} (expected "
                         f"{expected_type!r}): the config.json is inconsistent, use the one the checkpoint came with")
    problem = config.get("problem_type")
    if problem not in (None, "single_label_classification"):
        raise ValueError(f"config.json has problem_type={problem!r}; only single-label classification (softmax "
                         "over the labels, one label per token or sequence) is supported")
    return ClassifierHead(architecture, model_type, task, _labels(config, architecture))


def _labels(config: Mapping[str, Any], architecture: str) -> tuple[str, ...]:
    id2label = config.get("id2label")
    if not isinstance(id2label, Mapping) or not id2label:
        raise ValueError(f"config.json of the {architecture} checkpoint has no id2label: add the labels of the "
                         'fine-tuning run, e.g. "id2label": {"0": "O", "1": "B-PER", ...}')
    try:
        by_id = {int(k): v for k, v in id2label.items()}
    except (TypeError, ValueError) as e:
        raise ValueError(f"config.json id2label has a key that is not a class id ({e}): keys are "
                         '"0", "1", ... in the order of the classifier\'s outputs') from e
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError(f"config.json id2label has ids {sorted(by_id)}; they must be 0..{len(by_id) - 1} "
                         "without gaps (one per output of the classifier)")
    labels = tuple(by_id[i] for i in range(len(by_id)))
    if not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels):
        raise ValueError(f"config.json id2label must map each id to a distinct non-empty label; got {list(labels)}")
    if len(labels) < 2:
        raise ValueError(f"config.json id2label has {len(labels)} label; a classifier needs at least 2 "
                         "(a 1-output head is a regression model, which is not supported)")
    num_labels = config.get("num_labels")
    if num_labels is not None and int(num_labels) != len(labels):
        raise ValueError(f"config.json has num_labels={num_labels} but {len(labels)} labels in id2label: "
                         "fix the config.json")
    return labels


def encoder_config(config: Mapping[str, Any], head: ClassifierHead | None) -> dict[str, Any]:
    """The BERT-style config the encoder builder reads (DistilBERT's keys renamed)."""
    if head is None or head.model_type == "bert":
        return dict(config)
    missing = [k for k in _DISTILBERT_CONFIG if k not in config]
    if missing:
        raise ValueError(f"config.json lacks {', '.join(missing)}: use the config.json that came with the "
                         "DistilBERT checkpoint")
    out = {bert: config[distil] for distil, bert in _DISTILBERT_CONFIG.items()}
    out.update(model_type="bert", hidden_act=config.get("activation", "gelu"), type_vocab_size=0,
               max_position_embeddings=config.get("max_position_embeddings", 512), layer_norm_eps=1e-12)
    return out


def distilbert_encoder_weights(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """DistilBERT's encoder weights under BertModel's names (heads and buffers dropped)."""
    out: dict[str, np.ndarray] = {}
    for key, value in weights.items():
        name = key[len("distilbert."):] if key.startswith("distilbert.") else key
        if name.startswith("embeddings.") and not name.endswith("position_ids"):
            out[name] = value
        elif name.startswith("transformer.layer."):
            index, rest = name[len("transformer.layer."):].split(".", 1)
            module, param = rest.rsplit(".", 1)
            if module in _DISTILBERT_LAYER:
                out[f"encoder.layer.{index}.{_DISTILBERT_LAYER[module]}.{param}"] = value
    return out


def _head_weight(weights: Mapping[str, np.ndarray], name: str, expected: tuple[int, ...]) -> np.ndarray:
    if name not in weights:
        raise ValueError(f"weight {name!r} of the classification head is missing from the checkpoint: it is "
                         "not the fine-tuned model its config.json declares; use the weights that belong to it")
    arr = np.asarray(weights[name])
    if tuple(arr.shape) != expected:
        raise ValueError(f"weight {name!r} has shape {tuple(arr.shape)}, config.json implies {expected} (labels "
                         "x hidden size): the weights and config.json (id2label) do not belong together")
    return arr.astype(np.float32, copy=False)


def _dense(g: _GraphBuilder, x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
    return g.node("Add", [g.node("MatMul", [x, g.init(name + "_w", w.T)], name=name + "_mm"),
                          g.init(name + "_b", b)], name=name)


def build_classifier_onnx(weights: Mapping[str, np.ndarray], config: Mapping[str, Any], head: ClassifierHead,
                          *, fused: bool = True) -> onnx.ModelProto:
    """Encoder + head -> ``logits`` (see the module docstring). Raises ``ValueError`` on mismatches."""
    shape: BertShape = bert_shape_from_config(encoder_config(config, head))
    encoder = weights if head.model_type == "bert" else distilbert_encoder_weights(weights)
    g = _GraphBuilder()
    x = encoder_nodes(g, _Weights(encoder, shape), shape, fused=fused, token_types=head.model_type == "bert")
    H, n = shape.hidden_size, len(head.labels)
    cls_w = _head_weight(weights, "classifier.weight", (n, H))
    cls_b = _head_weight(weights, "classifier.bias", (n,))
    if head.task == TOKEN_CLASSIFICATION:
        logits = _dense(g, x, cls_w, cls_b, "classifier")
        dims: list[int | str] = ["batch", "sequence", n]
    else:
        # a 0-d index (g.init would make it 1-d), so Gather drops the sequence axis
        g.initializers.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "cls_position"))
        first = g.node("Gather", [x, "cls_position"], name="cls_hidden", axis=1)  # [batch, hidden]
        if head.model_type == "bert":  # BertPooler: tanh(dense([CLS]))
            pooled = g.node("Tanh", [_dense(g, first, _head_weight(weights, "bert.pooler.dense.weight", (H, H)),
                                            _head_weight(weights, "bert.pooler.dense.bias", (H,)), "pooler")],
                            name="pooler_tanh")
        else:  # DistilBertForSequenceClassification: relu(pre_classifier([CLS]))
            pooled = g.node("Relu", [_dense(g, first, _head_weight(weights, "pre_classifier.weight", (H, H)),
                                            _head_weight(weights, "pre_classifier.bias", (H,)), "pre_classifier")],
                            name="pre_classifier_relu")
        logits = _dense(g, pooled, cls_w, cls_b, "classifier")
        dims = ["batch", n]
    g.nodes.append(helper.make_node("Identity", [logits], [LOGITS], name="output"))
    output = helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, dims)
    return finish_model(g, shape, head.input_names, [output], f"{head.model_type}_{head.task.replace('-', '_')}",
                        fused=fused, extra_meta={"task": head.task, "num_labels": n})
