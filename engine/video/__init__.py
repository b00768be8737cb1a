"""The video half's engine code: decoding and sampling (PyAV), frame access for the video models."""
