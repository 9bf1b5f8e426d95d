"""Model zoo (registry by name): ConvNet-3, ResNet-10-AP, NF-WRN-16-2, the UNet simplifier."""

from .registry import ModelInfo, create_model, list_models, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "register_model"]
