"""SGD, SGD with momentum (optionally Nesterov), Adam and AdamW, updating parameters in place.

``step(parameters)`` takes ``Model.parameters()``: (name, param, grad) triples. Weight decay is
the L2 penalty added to the gradient (as ``torch.optim``'s ``weight_decay``), on every parameter;
AdamW's is decoupled from the gradient (``DECOUPLED``). ``clip_norm`` first scales the gradients
of all parameters together down to that L2 norm where theirs is larger (as
``torch.nn.utils.clip_grad_norm_`` before a step), so that one bad batch cannot throw the
weights far.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError, as_float, is_number

Params = Iterable[tuple[str, Any, Any]]


def _numbers(**settings: Any) -> None:
    """ConfigError naming the first setting that is not a number (a string from a file, say),
    before a comparison with it fails with a TypeError."""
    for key, value in settings.items():
        if not is_number(value):
            raise ConfigError(f"{key} must be a number, got {value!r}", key)


class Optimizer:
    #: The per-parameter state each parameter has once a step was taken (shaped like it).
    SLOTS: tuple[str, ...] = ()
    #: Whether weight decay shrinks the parameters directly (AdamW) instead of adding its L2
    #: penalty's gradient to theirs.
    DECOUPLED = False

    def __init__(
        self, lr: float, weight_decay: float = 0.0, clip_norm: float | None = None
    ) -> None:
        _numbers(lr=lr, weight_decay=weight_decay)
        if not 0 < lr < math.inf:
            raise ConfigError(f"lr must be a finite number > 0, got {lr!r}", "lr")
        if not 0 <= weight_decay < math.inf:
            raise ConfigError(
                f"weight_decay must be a finite number >= 0, got {weight_decay!r}", "weight_decay"
            )
        if clip_norm is not None and not (is_number(clip_norm) and 0 < clip_norm < math.inf):
            raise ConfigError(
                f"clip_norm must be a finite number > 0 (1 is usual), or None for no clipping, "
                f"got {clip_norm!r}",
                "clip_norm",
            )
        self.lr = as_float(lr)
        self.weight_decay = as_float(weight_decay)
        self.clip_norm = None if clip_norm is None else as_float(clip_norm)
        self.steps = 0
        self.state: dict[str, dict[str, Any]] = {}
        self._model: weakref.ref | None = None  # the model it updates, once bound

    def bind(self, model: Any) -> None:
        """Remember ``model`` as the one this optimiser updates (the training steps call this).
        ConfigError for another model once this one has taken steps with state: its moments
        and step count would carry over silently (one Adam made outside a loop over models)."""
        if self._model is not None and self._model() is not model and self.SLOTS and self.steps:
            name, steps = type(self).__name__, f"{self.steps} step{'s' * (self.steps != 1)}"
            raise ConfigError(
                f"this {name} already trained another model ({steps}), and its state "
                f"({', '.join(self.SLOTS)}) would carry over into this one's training: make a "
                f"new optimiser for each model ({name}(...) inside the loop)"
            )
        self._model = weakref.ref(model)

    def step(self, parameters: Params) -> None:
        """Apply one update to every (name, param, grad)."""
        if callable(parameters) or hasattr(parameters, "parameters"):
            given = "model.parameters" if callable(parameters) else "the model"
            raise ConfigError(
                f"step takes the (name, param, grad) triples of model.parameters(), got "
                f"{given}: pass model.parameters()"
            )
        self.steps += 1
        parameters = list(parameters)
        if self.clip_norm is not None:
            self._clip([g for _, _, g in parameters])
        for name, p, g in parameters:
            if self.weight_decay and not self.DECOUPLED:
                g = g + self.weight_decay * p
            self._update(name, p, g)

    def _clip(self, grads: list[Any]) -> None:
        """Scale ``grads`` in place by min(1, clip_norm / (norm + 1e-6)), norm being the L2
        norm of all of them together, as torch.nn.utils.clip_grad_norm_ does; computed on the
        device (the GPU is not waited for)."""
        from .backend import xp

        norm = sum((g * g).sum() for g in grads) ** 0.5
        scale = xp().minimum(1.0, self.clip_norm / (norm + 1e-6))
        for g in grads:
            g *= scale

    def state_dict(self) -> dict[str, Any]:
        """Host copies of the step count and every per-parameter slot, keyed "name/slot"."""
        from .backend import to_host

        slots = {f"{n}/{k}": to_host(a).copy() for n, s in self.state.items() for k, a in s.items()}
        return {"steps": self.steps, "slots": slots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict returned (slots are copied to the active backend)."""
        from .backend import to_device

        self.steps = int(state["steps"])
        self.state = {}
        self._model = None  # the state is for whichever model it is used with next
        for key, value in state["slots"].items():
            name, slot = key.rsplit("/", 1)
            self.state.setdefault(name, {})[slot] = to_device(value)

    def slot(self, name: str, key: str, like: Any) -> Any:
        """Per-parameter state (a zero array shaped like ``like`` on first use). ConfigError if
        the state held under ``name`` has another shape: it was another model's."""
        slots = self.state.setdefault(name, {})
        if key not in slots:
            slots[key] = like * 0
        elif slots[key].shape != like.shape:
            raise ConfigError(
                f"this {type(self).__name__} holds state for {name} of shape "
                f"{tuple(slots[key].shape)} but the parameter is {tuple(like.shape)}: it trained "
                "another model; make a new optimiser for each model"
            )
        return slots[key]

    def _update(self, name: str, p: Any, g: Any) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * g"""

    def _update(self, name: str, p: Any, g: Any) -> None:
        p -= self.lr * g


class Momentum(Optimizer):
    """v = momentum * v + g; p -= lr * v (Nesterov: p -= lr * (g + momentum * v))."""

    SLOTS = ("v",)

    def __init__(
        self,
        lr: float,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, clip_norm)
        _numbers(momentum=momentum)
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}", "momentum")
        self.momentum = as_float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, name: str, p: Any, g: Any) -> None:
        v = self.slot(name, "v", p)
        v *= self.momentum
        v += g
        p -= self.lr * (g + self.momentum * v if self.nesterov else v)


class Adam(Optimizer):
    """Adam with bias correction (Kingma and Ba, 2015)."""

    SLOTS = ("m", "v")

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, clip_norm)
        _numbers(beta1=beta1, beta2=beta2, eps=eps)
        for key, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ConfigError(f"{key} must be in [0, 1), got {beta!r}", key)
        if not 0 < eps < math.inf:
            raise ConfigError(f"eps must be a finite number > 0, got {eps!r}", "eps")
        self.beta1, self.beta2, self.eps = as_float(beta1), as_float(beta2), as_float(eps)

    def _update(self, name: str, p: Any, g: Any) -> None:
        m, v = self.slot(name, "m", p), self.slot(name, "v", p)
        if self.DECOUPLED:
            p *= 1 - self.lr * self.weight_decay
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        step_size = self.lr / (1 - self.beta1**self.steps)
        v_hat_scale = 1 / (1 - self.beta2**self.steps)
        p -= step_size * m / ((v * v_hat_scale) ** 0.5 + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as torch.optim.AdamW:
    each step first shrinks every parameter by lr * weight_decay of itself. Adam would divide
    an L2 penalty's gradient by the same running scale as the loss's, so parameters with large
    gradients would hardly be decayed; decoupled, all are decayed alike."""

    DECOUPLED = True

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.01, **adam: float) -> None:
        """``adam``: Adam's beta1, beta2, eps and clip_norm, by name."""
        super().__init__(lr, weight_decay=weight_decay, **adam)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam, "adamw": AdamW}
