"""gpner on the engines users already run, each behind its extra: ONNX export
(``onnx_export``), Ray Data / Spark / Dask (``batch_inference``), spaCy
(``spacy_component``) and Hugging Face transformers (``hf``, imported as ``gpner.hf``)."""
