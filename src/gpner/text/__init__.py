"""Stage 2, text to arrays: tokenizers with exact character offsets (``tokenization``),
character <-> token spans (``alignment``), windows over long texts and the rules that place,
cut and merge spans across them (``windows``), and the featurizers that turn a window into
model inputs (``features``). NumPy only: prediction with ONNX Runtime runs it without torch."""
