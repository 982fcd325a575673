"""YOLOv3's step math: target assignment, the loss, decoding and NMS."""
