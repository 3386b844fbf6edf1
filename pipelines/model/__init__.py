"""Model side of corpus-nlp: BERT checkpoint -> ONNX "model bundle".

Importing this package (and ``pipelines.model.bundle``) is cheap and never imports
torch; the annotate path only needs ``ModelBundle``.
"""

from .bundle import BundleError, ModelBundle, ModelManifest, write_bundle

__all__ = ["BundleError", "ModelBundle", "ModelManifest", "write_bundle"]
