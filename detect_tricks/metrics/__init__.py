"""The COCO evaluation both training and the tools score detections with."""
