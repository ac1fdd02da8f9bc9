"""Filter pruning with distillation (Appl. Sci. 2024, docs/methods.md §3(c)) on top of torch-pruning's dependency graph.

A prunable layer is a convolution whose output channels are not tied to a residual addition, outside the head:
in inverted-residual blocks these are the expanded (hidden) channels (expand conv, its BatchNorm, the depthwise
conv and the project conv's inputs move together); in plain conv pairs, the first conv's filters. The score of
filter i is how much the *next* layer's output changes when the filter is removed (reconstruction error, on L
training images), or its L1/L2 magnitude, or Taylor importance; the lowest floor(C * ratio) go. The layerwise
schedule prunes from the top layer down, fine-tuning with LOSS + w * loss3 after each layer.

A pruned model is saved as the base architecture plus a channel spec ({conv name: kept channels}) and weights;
loading rebuilds the base model, slims it to the spec, then loads the weights: no pickled modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

__all__ = ["PrunableLayer", "prunable_layers", "reconstruction_scores", "score_layer", "prune_layer",
           "channel_spec", "apply_channel_spec", "count_params"]


@dataclass
class PrunableLayer:
    name: str
    conv: nn.Conv2d  # its output channels are pruned
    consumer: nn.Conv2d  # the next layer: its input channels go with them; its output is what reconstruction scores

    @property
    def channels(self) -> int:
        return self.conv.out_channels


def _graph(model: nn.Module, size: int) -> tp.DependencyGraph:
    def outputs(out):  # every map a head emits, so each layer that reads the head's features is in the graph
        return [out[k] for k in ("heatmaps", "coords", "offsets") if k in out]

    return tp.DependencyGraph().build_dependency(model, example_inputs=torch.rand(1, 3, size, size),
                                                 output_transform=outputs)


def prunable_layers(model: nn.Module, size: int, residual: bool = False
                    ) -> tuple[tp.DependencyGraph, list[PrunableLayer]]:
    """The dependency graph and the prunable layers of a LandmarkNet, bottom to top (module order). ``residual``
    adds the channels tied across blocks by residual additions (each such group pruned as one layer) and the head's
    inner channels: the whole network gets slimmer, as a narrower width multiplier would make it, keeping its
    trained weights; only the layers that emit heatmaps or coordinates keep their width."""
    was_training = model.training
    model.eval()
    graph = _graph(model, size)
    model.train(was_training)
    names = {m: n for n, m in model.named_modules()}
    k = model.info.num_points
    outputs = {m for m in model.head.modules()  # the layers that emit heatmaps or coordinates keep their width
               if getattr(m, "out_channels", getattr(m, "out_features", None)) in (k, 2 * k)}
    frozen = outputs if residual else set(model.head.modules())
    layers = []
    for group in graph.get_all_groups(ignored_layers=list(frozen), root_module_types=[nn.Conv2d]):
        targets = [item.dep.target for item in group]
        if any(t.module in frozen and (not residual or item.dep.handler.__name__ != "prune_in_channels")
               for t, item in zip(targets, group)):
            continue
        if not residual and any(isinstance(t.module, tp.ops._ElementWiseOp) and "Add" in str(t.module._grad_fn)
                                for t in targets):
            continue  # residual-tied channels: pruning them would cut across blocks
        root = group[0].dep.target.module
        consumers = [item.dep.target.module for item in group if item.dep.handler.__name__ == "prune_in_channels"
                     and isinstance(item.dep.target.module, nn.Conv2d) and item.dep.target.module.groups == 1]
        if not isinstance(root, nn.Conv2d) or not consumers or root.out_channels < 2:
            continue
        layers.append(PrunableLayer(names[root], root, consumers[0]))
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return graph, sorted(layers, key=lambda layer: order[layer.name])


def reconstruction_scores(consumer: nn.Conv2d, inputs: torch.Tensor) -> torch.Tensor:
    """Score(i) = mean over images and output elements of the squared change of ``consumer``'s output when input
    channel i is removed, i.e. of the contribution conv(x_i, W[:, i]) (the output is linear in its inputs)."""
    w = consumer.weight
    scores = torch.empty(w.shape[1])
    with torch.no_grad():
        for i in range(w.shape[1]):
            delta = F.conv2d(inputs[:, i:i + 1], w[:, i:i + 1], None, consumer.stride, consumer.padding,
                             consumer.dilation)
            scores[i] = delta.pow(2).mean()
    return scores


def _consumer_inputs(model: nn.Module, consumer: nn.Conv2d, images: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = consumer.register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach()))
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        handle.remove()
    return captured[0]


def score_layer(model: nn.Module, graph: tp.DependencyGraph, layer: PrunableLayer, importance: str,
                images: torch.Tensor, loss_fn=None) -> torch.Tensor:
    """Per-filter scores of ``layer`` (lower = less missed)."""
    if importance == "reconstruction":
        return reconstruction_scores(layer.consumer, _consumer_inputs(model, layer.consumer, images))
    group = graph.get_pruning_group(layer.conv, tp.prune_conv_out_channels, idxs=list(range(layer.channels)))
    if importance in ("l1", "l2"):
        imp = tp.importance.GroupMagnitudeImportance(p=1 if importance == "l1" else 2)
    elif importance == "taylor":
        if loss_fn is None:
            raise ValueError("Taylor importance needs a loss to take gradients of")
        model.zero_grad()
        loss_fn(model).backward()  # Taylor importance reads accumulated gradients (torch-pruning #303)
        imp = tp.importance.GroupTaylorImportance()
    else:
        raise ValueError(f"unknown importance {importance!r}; choose reconstruction, l1, l2 or taylor")
    return imp(group).detach().cpu()


def prune_layer(graph: tp.DependencyGraph, layer: PrunableLayer, ratio: float, scores: torch.Tensor) -> int:
    """Remove the floor(C * ratio) lowest-scoring filters of ``layer`` (and everything tied to them)."""
    n = math.floor(layer.channels * ratio)
    n = min(n, layer.channels - 1)  # a layer keeps at least one channel
    if n <= 0:
        return 0
    idxs = torch.argsort(scores)[:n].tolist()
    graph.get_pruning_group(layer.conv, tp.prune_conv_out_channels, idxs=idxs).prune()
    return n


def channel_spec(model: nn.Module, layers: list[PrunableLayer]) -> dict[str, int]:
    """{prunable conv name: its output channels}, what a checkpoint needs to rebuild the slim architecture."""
    modules = dict(model.named_modules())
    return {layer.name: int(modules[layer.name].out_channels) for layer in layers}


def apply_channel_spec(model: nn.Module, spec: dict[str, int]) -> nn.Module:
    """Slim a freshly built base model to ``spec`` (which channels go does not matter: weights are loaded next)."""
    graph = _graph(model.eval(), model.info.input_size)
    modules = dict(model.named_modules())
    for name, kept in spec.items():
        conv = modules[name]
        if kept < conv.out_channels:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels,
                                    idxs=list(range(kept, conv.out_channels))).prune()
    model.channel_spec = dict(spec)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

