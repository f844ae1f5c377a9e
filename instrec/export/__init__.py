"""ONNX export: the fp32 graph (onnx_graph), int8 (int8) and the `instrec export` command."""
