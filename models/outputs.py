"""What every avepipe network returns, so training, evaluation and localisation share one shape contract."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from torch import Tensor


@dataclass
class ModelOutput:
    """Forward-pass results; a field is None when the model does not define it.

    Shapes: B videos, T segments, C event classes (C+1 with background).
    """

    logits: Tensor | None = None            # [B,T,C+1] per-segment class scores (weakly: the weighted score)
    video_prob: Tensor | None = None        # weakly: PSP [B,C+1] softmax(mean_t score); CPSP [B,C]
    event_logits: Tensor | None = None      # [B,T] CPSP: event-vs-background logit
    category_logits: Tensor | None = None   # [B,C] CPSP: video category logits
    similarity: Tensor | None = None        # [B,T] cos(v_f, a_f) (fully/CPSP)
    fusion: Tensor | None = None            # [B,T,256] (v_f + a_f) / 2
    audio_feat: Tensor | None = None        # [B,T,256] a_f
    visual_feat: Tensor | None = None       # [B,T,256] v_f
    gamma_va: Tensor | None = None          # [B,T,T] pruned visual->audio connections
    gamma_av: Tensor | None = None          # [B,T,T] pruned audio->visual connections
    attention: Tensor | None = None         # [B,T,7,7] AVGA attention map
    extras: dict[str, Tensor] = field(default_factory=dict)   # a model's own outputs (its explain() names them)

    def detach(self) -> "ModelOutput":
        """A copy with every tensor detached (for logging or plotting without holding the graph)."""
        plain = {f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).detach())
                 for f in fields(self) if f.name != "extras"}
        return ModelOutput(**plain, extras={name: value.detach() for name, value in self.extras.items()})
