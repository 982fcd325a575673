"""Datasets, transforms and mixup for classification and detection.

OpenCV runs single-threaded in every process that imports this package: data loading
is parallel across DataLoader worker processes instead, and OpenCV's thread pool is not
fork-safe (a worker forked after the parent used the pool deadlocks on its first
OpenCV call).
"""

import cv2

cv2.setNumThreads(1)
