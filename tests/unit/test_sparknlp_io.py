"""The bundle's Spark NLP export, without Spark: the folder layout loadSavedModel reads, and the id clamp."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pipelines.model.bundle import BundleError
from pipelines.model.java_serialized import SerializedDataError, read_java_object, sequence_file_values
from pipelines.model.sparknlp_io import SPARKNLP_WARMUP_MAX_ID, _architecture, export_for_sparknlp


def _run(path, ids):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.asarray([ids], dtype=np.int64)
    return session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                               "token_type_ids": np.zeros_like(ids)})[0]


def test_export_holds_the_graph_and_the_vocabulary_in_id_order(demo_bundle, tmp_path):
    folder = export_for_sparknlp(demo_bundle, tmp_path / "export")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == \
        ["assets", "assets/vocab.txt", "model.onnx"]
    lines = (folder / "assets" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    vocab = demo_bundle.load_tokenizer().get_vocab(with_added_tokens=True)
    assert len(lines) == len(vocab) == demo_bundle.manifest.vocab_size
    assert all(vocab[token] == i for i, token in enumerate(lines))


def test_a_small_vocabulary_is_clamped_so_spark_nlps_warm_up_ids_do_not_fail(demo_bundle, tmp_path):
    assert demo_bundle.manifest.vocab_size <= SPARKNLP_WARMUP_MAX_ID
    folder = export_for_sparknlp(demo_bundle, tmp_path / "export")
    warm_up = [101, 2292, 1005, 1055, 4010, 6279, 1996, 5219, 2005, 1996, 2034, SPARKNLP_WARMUP_MAX_ID, 1012, 102]
    with pytest.raises(Exception, match="out of"):  # the bundle's own graph cannot look these up
        _run(demo_bundle.onnx_path, warm_up)
    assert np.isfinite(_run(folder / "model.onnx", warm_up)).all()
    ids = demo_bundle.load_tokenizer().encode("Größere Straßen führen über die Brücke nach Köln.").ids
    assert np.array_equal(_run(folder / "model.onnx", ids), _run(demo_bundle.onnx_path, ids))


def test_the_clamped_graph_still_tells_its_shape_and_is_not_clamped_twice(demo_bundle, tmp_path):
    from pipelines.model.sparknlp_io import clamp_input_ids

    model = onnx.load(str(export_for_sparknlp(demo_bundle, tmp_path / "export") / "model.onnx"))
    nodes = len(model.graph.node)
    clamp_input_ids(model, 10)
    assert len(model.graph.node) == nodes
    m = demo_bundle.manifest
    assert _architecture(model) == dict(vocab_size=m.vocab_size, dimension=m.dimension, num_layers=m.num_layers,
                                        num_heads=m.num_heads, intermediate_size=m.intermediate_size,
                                        max_position_embeddings=m.max_position_embeddings, precision=m.precision)


def test_export_refuses_a_folder_inside_the_bundle(demo_bundle):
    with pytest.raises(BundleError, match="inside the bundle"):
        export_for_sparknlp(demo_bundle, demo_bundle.path / "sparknlp")


def test_only_sequence_files_and_java_streams_are_read(tmp_path):
    bogus = tmp_path / "part-00000"
    bogus.write_bytes(b"PAR1 not a sequence file")
    with pytest.raises(SerializedDataError, match="not a Hadoop SequenceFile"):
        list(sequence_file_values(bogus))
    with pytest.raises(SerializedDataError, match="not a Java serialization stream"):
        read_java_object(b"\x80\x04K\x01.")  # a pickle
