"""The models and the schemes that set their initial weights (the grid factors ``model`` and
``init``). Each implementation module builds one family as an ``nn.Module`` sized to the
dataset: :mod:`~evalgrid.models.lenet`, :mod:`~evalgrid.models.convnet`,
:mod:`~evalgrid.models.resnet` and torchvision's architectures in :mod:`~evalgrid.models.zoo`;
:mod:`~evalgrid.models.init` sets their weights. Their options are in
:mod:`evalgrid.models.options` and their catalogue entries in :mod:`evalgrid.models.entries`;
look one up with ``evalgrid.catalogue.MODELS[name]`` or ``INITS[name]``.

A model's parameters are drawn from torch's global RNG, which the cell seeds; a model that
cannot take the dataset's resolution raises a UserError naming its minimum, and every build
also works under ``with torch.device("meta"):``. Importing this package imports no torch.
"""
