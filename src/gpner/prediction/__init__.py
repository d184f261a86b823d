"""Stage 5, prediction: the staged ``Predictor`` (``predictor``), the runtimes behind it
(``backends``: PyTorch, ONNX Runtime), ``load`` (``loading``) and files of any size streamed in
and out (``stream``)."""
