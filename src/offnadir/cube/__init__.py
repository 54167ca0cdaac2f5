"""The co-registered cube: DSM tiles back-projected into every image, with occlusion."""
