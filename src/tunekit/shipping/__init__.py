"""Shipping a trained model: push to the Hub (or a folder) with a model card, export to ONNX."""
