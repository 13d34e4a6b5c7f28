"""Importers (and the ONNX exporter): file formats in, framework-neutral Networks out.

Shipped as ``streamlstm.converters``. Only this package imports onnx, torch, keras or h5py.
"""
