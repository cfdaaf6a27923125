"""Vision-language models from transformers: X-CLIP scores a clip as a video; CLIP and
SigLIP score each frame, and a clip's logits are the mean of its frames' logits.

Both put a video and any text into one space, so the labels are whatever the user
names (zero-shot) and the embeddings serve text search. Without labels such a model
has no classes: `LabelledModule` binds it to a set of texts and is then an ordinary
VideoModule for the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from ..errors import VidclassError
from ..label_choice import NEEDS_LABELS
from .spec import InputSpec, ModelEntry

FRAMES_PER_CLIP = 8  # image models: frames a clip is scored on, spread over it


@dataclass(frozen=True)
class Family:
    """How one kind of checkpoint is run."""

    label: str
    prompt: str  # the default template for a label
    padding: str  # how texts are padded: how the model was trained
    bias: bool  # a learned logit bias (sigmoid-trained): its sigmoid is a probability
    threshold: float  # multi-label: the score from which a label is a tag


FAMILIES = {
    "xclip": Family("X-CLIP (video)", "{}", "longest", False, 0.25),
    "clip": Family("CLIP (frames pooled)", "a photo of {}.", "longest", False, 0.25),
    "siglip": Family("SigLIP (frames pooled)", "a photo of {}.", "max_length", True, 0.5),
}
ARCHITECTURES = {"XCLIPModel", "CLIPModel", "SiglipModel"}


def family_of(config) -> str | None:
    kind = getattr(config, "model_type", None)
    return kind if kind in FAMILIES else None


def fill_prompt(template: str, label: str) -> str:
    return template.replace("{}", label) if "{}" in template else f"{template} {label}"


def check_prompt(template: str) -> str:
    if not isinstance(template, str) or not template.strip():
        raise VidclassError("a prompt template must be text, e.g. 'a video of {}.'")
    if len(template) > 200:
        raise VidclassError("a prompt template is at most 200 characters")
    if template.count("{}") > 1:
        raise VidclassError("a prompt template holds at most one {} (where the label goes)")
    return template


def frames_per_clip(config) -> SimpleNamespace:
    """What the processor mapping reads as the model's frames: X-CLIP's own, else
    FRAMES_PER_CLIP spread over the clip."""
    frames = getattr(getattr(config, "vision_config", None), "num_frames", None)
    return SimpleNamespace(num_frames=frames or FRAMES_PER_CLIP)


def read_entry(name: str, config, processor_file: str, spec: InputSpec) -> ModelEntry:
    """The entry of a vision-language checkpoint: no labels of its own."""
    family = family_of(config)
    where = f"folder {name}" if Path(name).is_dir() else f"Hugging Face hub {name}"
    return ModelEntry(
        name=str(name),
        description=f"transformers {FAMILIES[family].label}, zero-shot: give --labels",
        labels=(),
        input=spec,
        weights=None,
        build=None,
        source=f"transformers {where}",
        meta={
            "kind": "vision-language",
            "family": family,
            "processor": processor_file,
            "prompt": FAMILIES[family].prompt,
            "threshold": FAMILIES[family].threshold,
        },
    )


class TextVideoModel(nn.Module):
    """A vision-language checkpoint with its tokenizer: video and text embeddings in one
    space. It has no labels; `LabelledModule` gives it some."""

    channels_last = False  # attention-bound
    any_frames = False
    temporal_map = None

    def __init__(self, model: nn.Module, tokenizer, family: str):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.family = FAMILIES[family]
        self.kind = family

    # -- text ------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Projected text embeddings (L, D), not normalised (X-CLIP adds to them)."""
        if self.family.padding == "max_length":
            tokens = self.tokenizer(
                texts,
                padding="max_length",
                max_length=self._text_length(),
                truncation=True,
                return_tensors="pt",
            )
        else:
            tokens = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self._text_length(),
                return_tensors="pt",
            )
        device = next(self.model.parameters()).device
        keep = ("input_ids", "attention_mask")
        tokens = {k: v.to(device) for k, v in tokens.items() if k in keep}
        if self.kind == "siglip":  # trained without an attention mask: padding is seen
            tokens.pop("attention_mask", None)
        return _pooled(self.model.get_text_features(**tokens)).float()

    def _text_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    # -- video -----------------------------------------------------------------------
    def _frame_embeddings(self, clips: torch.Tensor) -> torch.Tensor:
        """Image models: each frame's normalised embedding, (N, T, D)."""
        n, c, t, h, w = clips.shape
        frames = clips.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        emb = _pooled(self.model.get_image_features(pixel_values=frames))
        return nn.functional.normalize(emb, dim=-1).view(n, t, -1)

    def _xclip_parts(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """X-CLIP's video embedding (N, D) and the frame tokens its prompt generator
        reads (N, P, D), as XCLIPModel.forward makes them."""
        m = self.model
        n, c, t, h, w = clips.shape
        frames = clips.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        vision = m.vision_model(pixel_values=frames)
        cls = m.visual_projection(vision[1]).view(n, t, -1)
        video = m.mit(cls)[1]
        tokens = m.prompts_visual_layernorm(vision[0][:, 1:, :]) @ m.prompts_visual_projection
        return video, tokens.view(n, t, -1, video.shape[-1]).mean(dim=1)

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """A clip's embedding in the text-video space (N, D): X-CLIP's normalised video
        embedding; for image models the mean of the normalised frame embeddings, so its
        dot product with a normalised text is the mean of the frames' similarities."""
        if self.kind == "xclip":
            return nn.functional.normalize(self._xclip_parts(clips)[0], dim=-1)
        return self._frame_embeddings(clips).mean(dim=1)

    def _scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    def logits_from_embedding(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Logits (N, L) of `embed`'s output against text embeddings. Exact for CLIP and
        SigLIP; for X-CLIP without its video-conditioned prompts (see `label_logits`)."""
        text = nn.functional.normalize(text, dim=-1)
        logits = self._scale() * video @ text.T
        return logits + self.model.logit_bias if self.family.bias else logits

    def label_logits(self, clips: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Logits (N, L) of clips against text embeddings, as the model's own forward
        computes them (X-CLIP: texts shifted by its prompt generator for each clip)."""
        if self.kind != "xclip":
            return self.logits_from_embedding(self.embed(clips), text)
        video, tokens = self._xclip_parts(clips)
        texts = text.unsqueeze(0).expand(video.shape[0], -1, -1)
        texts = texts + self.model.prompts_generator(texts, tokens)
        video = nn.functional.normalize(video, dim=-1)
        texts = nn.functional.normalize(texts, dim=-1)
        return torch.einsum("nd,nld->nl", video, self._scale() * texts)

    # -- as a VideoModule without labels --------------------------------------------
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        raise VidclassError(NEEDS_LABELS)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        raise VidclassError(NEEDS_LABELS)

    def fold_batchnorm(self) -> TextVideoModel:
        return self

    def embed_source(self) -> nn.Module:
        return self


class LabelledModule(nn.Module):
    """A vision-language model bound to texts: a VideoModule whose classes they are."""

    channels_last = False
    any_frames = False
    temporal_map = None

    def __init__(self, base: TextVideoModel, texts: list[str], cosine: bool = False):
        """`cosine`: logits are the plain cosine similarities, not scaled (the scores of
        a multi-label model that has no sigmoid calibration: CLIP, X-CLIP)."""
        super().__init__()
        self.base = base
        self.cosine = cosine
        self.register_buffer("text", base.encode_text(texts), persistent=False)

    def _unscaled(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.base._scale() if self.cosine else logits

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self._unscaled(self.base.label_logits(clips, self.text))

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        return self.base.embed(clips)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self._unscaled(self.base.logits_from_embedding(features, self.text))

    def fold_batchnorm(self) -> LabelledModule:
        return self

    def embed_source(self) -> nn.Module:
        return self.base


def _pooled(output) -> torch.Tensor:
    """`get_*_features` return a tensor in some transformers versions, an output with
    the projected `pooler_output` in others."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def load_module(entry: ModelEntry, transformers, load) -> TextVideoModel:
    """`load(fn)` runs `fn(local_files_only=...)` cache-first (see hf._cache_first)."""
    model = load(
        lambda **kw: transformers.AutoModel.from_pretrained(entry.name, dtype=torch.float32, **kw)
    )
    try:
        tokenizer = load(lambda **kw: transformers.AutoTokenizer.from_pretrained(entry.name, **kw))
    except ImportError as exc:  # SigLIP's tokenizer needs sentencepiece
        raise VidclassError(f"{entry.name}: its tokenizer needs {exc}") from None
    return TextVideoModel(model.eval(), tokenizer, entry.meta["family"])
