"""The trained detector for users: prediction, ONNX export, pictures of the boxes."""
