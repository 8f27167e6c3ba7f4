"""The model zoo: a strict registry of classic models built from blockzoo blocks.

Every model follows :class:`ZooModel`'s contract (``forward_features``,
``forward_head``, ``reset_classifier``, ``num_classes``, ``num_features``);
torchvision's architectures load torchvision's weights with
:func:`load_torchvision_weights`.
"""

from blockzoo.models import (  # register the families
    _alexnet_squeezenet,
    _convnext,
    _densenet,
    _efficientnet,
    _googlenet_inception,
    _maxvit,
    _mnasnet,
    _mobilenet_v3,
    _regnet,
    _resnet,
    _shufflenet,
    _simple,
    _swin,
    _vgg_mobilenet,
    _vit,
)
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import ModelInfo, create_model, list_models, model_info, register_model
from blockzoo.models._torchvision import load_torchvision_weights, torchvision_to_blockzoo
from blockzoo.models._weights import load_weights, save_weights

del (
    _alexnet_squeezenet,
    _convnext,
    _densenet,
    _efficientnet,
    _googlenet_inception,
    _maxvit,
    _mnasnet,
    _mobilenet_v3,
    _regnet,
    _resnet,
    _shufflenet,
    _simple,
    _swin,
    _vgg_mobilenet,
    _vit,
)

__all__ = [
    "ModelInfo",
    "ZooModel",
    "create_model",
    "list_models",
    "load_torchvision_weights",
    "load_weights",
    "model_info",
    "register_model",
    "save_weights",
    "torchvision_to_blockzoo",
]
