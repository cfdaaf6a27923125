"""Tiny random X-CLIP, CLIP and SigLIP checkpoints with word-level tokenizers, built
offline and saved as a user would get them from the hub (no weights can be downloaded
here)."""

from __future__ import annotations

from pathlib import Path

import torch

FAMILIES = ("xclip", "clip", "siglip")
SIZE = 32  # image size of the tiny checkpoints
FRAMES = 8
TEXT_LENGTH = 16
CLIP_MEAN = [0.4815, 0.4578, 0.4082]
CLIP_STD = [0.2686, 0.2613, 0.2758]
WORDS = str.split(
    "a photo video of person people dog cat beach party birthday surfing walking the "
    "arm wrestling eating spaghetti cooking dancing archery squat push up on in with "
    "catching frisbee playing music car sea"
)


def make_tokenizer(folder: Path):
    """A word-level tokenizer: ids 0-2 pad/unk/bos, the end token last (CLIP-style text
    towers pool at it, X-CLIP at the highest id)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    vocab["[EOS]"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", vocab["[EOS]"])]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=TEXT_LENGTH,
    )
    wrapped.save_pretrained(folder)
    return wrapped, len(vocab)


def _config(family: str, vocab: int):
    import transformers

    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    # Larger than the default 0.02 so similarities spread and move with the input.
    text = dict(
        tower,
        vocab_size=vocab,
        max_position_embeddings=TEXT_LENGTH,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=vocab - 1,
    )
    vision = dict(tower, image_size=SIZE, patch_size=8)
    if family == "xclip":
        vision.update(
            num_frames=FRAMES,
            mit_hidden_size=16,
            mit_intermediate_size=32,
            mit_num_hidden_layers=1,
            mit_num_attention_heads=2,
        )
        return transformers.XCLIPConfig(
            text_config=text,
            vision_config=vision,
            projection_dim=16,
            prompt_layers=1,
            prompt_num_attention_heads=2,
        )
    if family == "clip":
        return transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    return transformers.SiglipConfig(text_config=text, vision_config=vision)


def _image_processor(family: str):
    import transformers

    crop = {"height": SIZE, "width": SIZE}
    if family == "xclip":  # X-CLIP checkpoints ship VideoMAE's processor, CLIP's numbers
        return transformers.VideoMAEImageProcessor(
            size={"shortest_edge": SIZE}, crop_size=crop, image_mean=CLIP_MEAN, image_std=CLIP_STD
        )
    if family == "clip":
        return transformers.CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size=crop)
    return transformers.SiglipImageProcessor(size=crop)


def make_checkpoint(folder: Path, family: str):
    """Saves a tiny random checkpoint of `family` into `folder`; returns (model,
    tokenizer, image processor)."""
    import transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab = make_tokenizer(folder)
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(_config(family, vocab)).eval()
    with torch.no_grad():  # random towers: spread the similarities out
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(3.0)
    model.save_pretrained(folder)
    processor = _image_processor(family)
    processor.save_pretrained(folder)
    return model, tokenizer, processor
