"""The robot models (KAPAO, SCONet), torchvision wrappers, their pre/post-processing and checkpoint loaders."""
