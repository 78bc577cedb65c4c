"""Light-weight foundations shared by every stage: records, errors, hashing and plugins.

Nothing in this package imports torch, onnxruntime or transformers.
"""
