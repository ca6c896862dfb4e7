# Copyright (c) mmprompt contributors. All rights reserved.
"""The frozen CLIP of every mmprompt model, built with open_clip."""
import contextlib
import difflib
import logging
import os.path as osp
from typing import List, Optional, Sequence, Union

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from open_clip.model import (CLIP, CustomTextCLIP,
                             build_model_from_openai_state_dict,
                             convert_to_custom_text_state_dict,
                             convert_weights_to_lp)
from open_clip.transformer import (ResidualAttentionBlock, TextTransformer,
                                   VisionTransformer)

from mmprompt.registry import MODELS
from .weights import PRETRAINED_FORMS, read_clip_weights

__all__ = ['OpenCLIP']

MODEL_CONFIG_DIR = osp.join(osp.dirname(__file__), 'model_configs')
# Tiny CLIPs for tests and the demo, known to open_clip by name.
open_clip.add_model_config(MODEL_CONFIG_DIR)

_PRECISIONS = ('fp32', 'fp16', 'bf16')


def _arch_error(arch: str) -> ValueError:
    names = open_clip.list_models()
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
    hint = f' Did you mean one of {close}?' if close else ''
    return ValueError(f"arch {arch!r} is not an open_clip architecture.{hint}"
                      ' open_clip.list_models() lists all of them, e.g. '
                      "'ViT-B-16', 'ViT-B-32', 'RN50', 'RN101'.")


@contextlib.contextmanager
def no_random_init_warning():
    """open_clip warns on the root logger that a model built without a tag
    is random, also when mmprompt loads a file into it right after."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


@MODELS.register_module()
class OpenCLIP(BaseModule):
    """A frozen CLIP from open_clip with a text tower that encodes prompts.

    The CLIP is built and loaded in ``__init__`` (``Runner.test`` never calls
    ``init_weights``), every weight is frozen and the towers always run in
    eval mode, so RN50's BatchNorm statistics never move, as in CoOp.

    The CLIP is deliberately not a registered submodule: its weights are
    neither in ``parameters()`` (nothing to optimise or all-reduce) nor in
    ``state_dict()`` (an mmprompt checkpoint holds only the learned prompt,
    tens of kilobytes), and ``model.train()`` cannot switch it to training
    mode. Device and dtype moves (``.to()``, ``.cuda()``) still reach it.

    Args:
        arch (str): An open_clip architecture, e.g. ``'ViT-B-16'``, ``'RN50'``
            or ``'mmprompt-tiny-vit'``. Defaults to 'ViT-B-16'.
        pretrained (str, optional): An open_clip tag (``'openai'``,
            ``'laion2b_s34b_b88k'``, ...), a local file in open_clip's
            format, a local file in OpenAI's format (TorchScript archive or
            state dict, as CoOp's ``ViT-B-16.pt``), or None for random
            weights. Defaults to 'openai'.
        precision (str): ``'fp32'``, ``'fp16'`` (the original CoOp's default:
            fp16 weights, LayerNorm in fp32) or ``'bf16'``.
            Defaults to 'fp32'.
        weights_format (str): For a local ``pretrained`` file: ``'auto'``,
            ``'openai'`` or ``'open_clip'``. Defaults to 'auto'.
        truncate_text (bool): Drop every position after the last EOT of a
            batch of prompts before the text transformer. Exact for causal,
            EOT-pooled text towers (all CLIPs); refused for others.
            Defaults to True.
        cache_dir (str, optional): Where open_clip stores downloaded
            weights. Defaults to None.
        init_cfg (dict, optional): Unused; the weights come from
            ``pretrained``. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.models import OpenCLIP
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> clip.encode_image(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 64])
        >>> tokens = clip.tokenize(['a photo of a dog.'])
        >>> clip.encode_text(clip.token_embedding(tokens), tokens).shape
        torch.Size([1, 64])
    """

    def __init__(self,
                 arch: str = 'ViT-B-16',
                 pretrained: Optional[str] = 'openai',
                 precision: str = 'fp32',
                 weights_format: str = 'auto',
                 truncate_text: bool = True,
                 cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if precision not in _PRECISIONS:
            raise ValueError(f'precision must be one of {_PRECISIONS}, '
                             f'got {precision!r}')
        if open_clip.get_model_config(arch) is None:
            raise _arch_error(arch)
        self.arch = arch
        self.pretrained = pretrained
        self.precision = precision
        model = self._build(arch, pretrained, precision, weights_format,
                            cache_dir)
        model.requires_grad_(False)
        model.eval()
        # Not registered as a submodule on purpose: see the class docstring.
        object.__setattr__(self, 'model', model)
        self.tokenizer = open_clip.get_tokenizer(arch)
        object.__setattr__(self, '_text', self._text_tower(model))
        self.truncate_text = truncate_text
        if truncate_text:
            self._check_truncation_is_exact()

    # ------------------------------------------------------------------
    # building
    # ------------------------------------------------------------------
    @staticmethod
    def _build(arch: str, pretrained: Optional[str], precision: str,
               weights_format: str, cache_dir: Optional[str]) -> nn.Module:
        if pretrained is None:
            print_log(
                f'OpenCLIP {arch}: random weights (pretrained=None)',
                logger='current')
            with no_random_init_warning():
                return open_clip.create_model(
                    arch, pretrained=None, precision=precision)
        pretrained = osp.expanduser(str(pretrained))
        if osp.isfile(pretrained):
            return OpenCLIP._build_from_file(arch, pretrained, precision,
                                             weights_format)
        if osp.sep in pretrained or pretrained.endswith(
            ('.pt', '.pth', '.bin', '.safetensors')):
            raise FileNotFoundError(
                f'pretrained={pretrained!r} looks like a path, but no such '
                f'file exists. {PRETRAINED_FORMS}')
        tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            raise ValueError(
                f'pretrained={pretrained!r} is neither a file nor an '
                f'open_clip tag of {arch!r} (its tags: {tags}). '
                f'{PRETRAINED_FORMS}')
        try:
            return open_clip.create_model(
                arch,
                pretrained=pretrained,
                precision=precision,
                force_quick_gelu=bool(tag_cfg.get('quick_gelu', False)),
                cache_dir=cache_dir)
        except Exception as err:  # download and hub errors vary in type
            raise RuntimeError(
                f'could not get the {arch!r} weights of tag {pretrained!r} '
                f'({type(err).__name__}: {err}). Without network access, '
                'point pretrained at a local file instead. '
                f'{PRETRAINED_FORMS}') from err

    @staticmethod
    def _build_from_file(arch: str, path: str, precision: str,
                         weights_format: str) -> nn.Module:
        state_dict, found_format = read_clip_weights(path, weights_format)
        print_log(
            f'OpenCLIP {arch}: loading {found_format} weights from '
            f'{path}',
            logger='current')
        if found_format == 'openai':
            OpenCLIP._check_openai_weights_fit(arch, state_dict, path)
            cast_dtype = open_clip.get_cast_dtype(precision)
            # QuickGELU, and the fp16 rounding OpenAI's own build_model does.
            model = build_model_from_openai_state_dict(
                state_dict, quick_gelu=True, cast_dtype=cast_dtype)
            if precision != 'fp16':
                model.float()
                if precision == 'bf16':
                    convert_weights_to_lp(model, dtype=torch.bfloat16)
            return model
        with no_random_init_warning():
            model = open_clip.create_model(
                arch, pretrained=None, precision=precision)
        if isinstance(model, CustomTextCLIP):
            state_dict = convert_to_custom_text_state_dict(state_dict)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f'the weights in {path!r} do not fit arch {arch!r}: '
                f'{err}') from err
        return model

    @staticmethod
    def _check_openai_weights_fit(arch: str, state_dict: dict,
                                  path: str) -> None:
        cfg = open_clip.get_model_config(arch)
        found = {
            'embed_dim': state_dict['text_projection'].shape[1],
            'text width': state_dict['ln_final.weight'].shape[0],
            'context length': state_dict['positional_embedding'].shape[0],
        }
        expected = {
            'embed_dim': cfg['embed_dim'],
            'text width': cfg['text_cfg'].get('width', 512),
            'context length': cfg['text_cfg'].get('context_length', 77),
        }
        if 'visual.proj' in state_dict:
            found['vision width'] = state_dict['visual.conv1.weight'].shape[0]
            expected['vision width'] = cfg['vision_cfg'].get('width')
            found['patch size'] = state_dict['visual.conv1.weight'].shape[-1]
            expected['patch size'] = cfg['vision_cfg'].get('patch_size')
        else:
            found['vision width'] = state_dict[
                'visual.layer1.0.conv1.weight'].shape[0]
            expected['vision width'] = cfg['vision_cfg'].get('width')
        wrong = {
            k: (found[k], expected[k])
            for k in found if found[k] != expected[k]
        }
        if wrong:
            detail = ', '.join(f'{k} {f} (arch has {e})'
                               for k, (f, e) in wrong.items())
            raise ValueError(
                f'the OpenAI-format weights in {path!r} are not a {arch!r} '
                f'model: {detail}. Set arch to the architecture the file '
                'holds.')

    @staticmethod
    def _text_tower(model: nn.Module) -> nn.Module:
        """The module holding the text transformer's parts."""
        if isinstance(model, CLIP):
            return model
        text = getattr(model, 'text', None)
        if isinstance(text, TextTransformer):
            return text
        raise TypeError(
            f'{type(model).__name__} has a text tower of type '
            f'{type(text).__name__}, which mmprompt cannot feed with prompt '
            'embeddings; use an open_clip architecture whose text tower is '
            "open_clip's own transformer (e.g. ViT-B-16, RN50)")

    @property
    def text_pool_type(self) -> str:
        tower = self._text
        return getattr(tower, 'text_pool_type',
                       getattr(tower, 'pool_type', 'argmax'))

    def _check_truncation_is_exact(self) -> None:
        tower = self._text
        reasons = []
        if getattr(tower, 'attn_mask', None) is None:
            reasons.append('its attention is not causal')
        if self.text_pool_type not in ('argmax', 'eos'):
            reasons.append(f'it pools with {self.text_pool_type!r}, not at '
                           'the EOT token')
        if getattr(tower, 'cls_emb', None) is not None:
            reasons.append('it appends a class token after the text')
        if reasons:
            raise ValueError(
                f'the text tower of {self.arch!r} cannot be truncated after '
                f"the last EOT token without changing its output: "
                f"{'; '.join(reasons)}. Build OpenCLIP with "
                'truncate_text=False to run it on full-length sequences.')

    # ------------------------------------------------------------------
    # module plumbing
    # ------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        self.model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> 'OpenCLIP':
        super().train(mode)
        self.model.eval()  # frozen towers always run in eval mode
        return self

    def init_weights(self) -> None:
        """Nothing to do: the weights were loaded in ``__init__``."""

    # ------------------------------------------------------------------
    # what the heads and prompt learners use
    # ------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The dtype the text transformer computes in."""
        return self._text.transformer.get_cast_dtype()

    @property
    def image_dtype(self) -> torch.dtype:
        """The dtype the image tower takes: that of its first convolution
        (embeddings and norms stay fp32 in the fp16 and bf16 modes)."""
        for module in self.model.visual.modules():
            if isinstance(module, nn.Conv2d):
                return module.weight.dtype
        return next(self.model.visual.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return self._text.positional_embedding.device

    @property
    def token_embedding(self) -> nn.Embedding:
        """The frozen token embedding table, ``(vocab, width)``."""
        return self._text.token_embedding

    @property
    def width(self) -> int:
        """Width of the text transformer, i.e. of a context vector."""
        return self._text.token_embedding.weight.shape[1]

    @property
    def embed_dim(self) -> int:
        """Dimension of the joint image-text feature space."""
        proj = self._text.text_projection
        if proj is None:
            return self.width
        return proj.out_features if isinstance(proj,
                                               nn.Linear) else proj.shape[1]

    @property
    def context_length(self) -> int:
        return self._text.positional_embedding.shape[0]

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's learned temperature, before ``exp()``."""
        return self.model.logit_scale

    def bpe_encode(self, text: str) -> List[int]:
        """BPE token ids of ``text`` without the SOT/EOT tokens."""
        return self.tokenizer.encode(text)

    def tokenize(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        """Tokenize texts, refusing (as CLIP's ``tokenize``) any that overflow.

        open_clip's tokenizer silently cuts long texts, which would drop the
        class name or the EOT of a prompt; here that is an error.

        Args:
            texts (str | Sequence[str]): The texts.

        Returns:
            torch.Tensor: ``(N, context_length)`` token ids on the CPU.
        """
        if isinstance(texts, str):
            texts = [texts]
        for text in texts:
            length = len(self.bpe_encode(text)) + 2  # SOT and EOT
            if length > self.context_length:
                raise ValueError(
                    f'the prompt {text!r} is {length} tokens long, more than '
                    f'the {self.context_length} the text tower of '
                    f'{self.arch!r} takes; shorten the class name or use '
                    'fewer context tokens')
        return self.tokenizer(list(texts))

    def eot_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Index of the token each sequence is pooled at, ``(N,)``."""
        if self.text_pool_type == 'eos':
            eos_id = getattr(self._text, 'eos_id',
                             getattr(self._text, 'text_eos_id', None))
            return (tokens == eos_id).int().argmax(dim=-1)
        return tokens.argmax(dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image features ``(B, embed_dim)``, not normalised.

        Equal to open_clip's ``encode_image``; for a ViT pooled at its class
        token, the last block runs at that token alone
        (:attr:`pools_class_token`).
        """
        images = images.to(self.image_dtype)
        if self.pools_class_token:
            return self._encode_image_at_class_token(images)
        return self.model.encode_image(images)

    @property
    def pools_class_token(self) -> bool:
        """Whether the image tower is a ViT of open_clip's standard blocks
        whose feature is the class token's output (CLIP's ViTs): then the
        last block's queries, attention output and MLP are needed at that
        token only, an exact saving of about 1/14 of the tower."""
        visual = self.model.visual
        return (type(visual) is VisionTransformer and visual.attn_pool is None
                and visual.pool_type == 'tok' and not visual.output_tokens
                and not visual.training and hasattr(visual, '_embeds') and all(
                    type(b) is ResidualAttentionBlock
                    and not hasattr(b, 'ln_1_kv')
                    for b in visual.transformer.resblocks))

    def _encode_image_at_class_token(self,
                                     images: torch.Tensor) -> torch.Tensor:
        """open_clip's ``VisionTransformer.forward`` with the last block's
        query at the class token: the other positions give keys and values
        there, and nothing reads their outputs."""
        visual = self.model.visual
        transformer = visual.transformer
        batch_first = getattr(transformer, 'batch_first', True)
        x = visual._embeds(images)  # (B, T, W)
        if not batch_first:
            x = x.transpose(0, 1)
        *blocks, last = transformer.resblocks
        for block in blocks:
            x = block(x)
        sequence = 1 if batch_first else 0
        normed = last.ln_1(x)
        x = x.narrow(sequence, 0, 1) + last.ls_1(
            last.attention(
                q_x=normed.narrow(sequence, 0, 1), k_x=normed, v_x=normed))
        x = x + last.ls_2(last.mlp(last.ln_2(x)))
        pooled = visual.ln_post(x.select(sequence, 0))
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled

    def encode_text(self, embeddings: torch.Tensor,
                    tokens: torch.Tensor) -> torch.Tensor:
        """Encode prompt embeddings into text features.

        Equal to open_clip's ``encode_text(tokens)`` when ``embeddings`` are
        the token embeddings of ``tokens``; here any embedding (e.g. learned
        context vectors) may stand in for the tokens.

        Args:
            embeddings (torch.Tensor): Prompt embeddings ``(N, L, W)``.
            tokens (torch.Tensor): The token ids ``(N, L)`` the prompts were
                built from; only their EOT positions are used.

        Returns:
            torch.Tensor: Projected features ``(N, embed_dim)``, not
            normalised.
        """
        tower = self._text
        dtype = self.dtype
        eot = self.eot_positions(tokens.to(embeddings.device))
        length = embeddings.shape[1]
        if self.truncate_text:
            # Under the causal mask no position sees a later one, so the
            # positions after the last EOT of the batch cannot change any
            # EOT feature: dropping them is exact and saves their compute.
            length = int(eot.max()) + 1
        x = embeddings[:, :length].to(dtype)
        x = x + tower.positional_embedding[:length].to(dtype)
        mask = tower.attn_mask
        if mask is not None:
            mask = mask[:length, :length]
        x = self._run_transformer(x, mask)
        x = tower.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        return self._project(x)

    def _run_transformer(self, x: torch.Tensor,
                         mask: Optional[torch.Tensor]) -> torch.Tensor:
        transformer = self._text.transformer
        if getattr(transformer, 'batch_first', True):
            return transformer(x, attn_mask=mask)
        return transformer(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        proj = self._text.text_projection
        if proj is None:
            return x
        if isinstance(proj, nn.Linear):
            return proj(x)
        return x @ proj

    def encode_text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text features of token ids ``(N, L)`` -> ``(N, embed_dim)``."""
        tokens = tokens.to(self.device)
        return self.encode_text(self.token_embedding(tokens), tokens)

    # ------------------------------------------------------------------
    # shared-prefix encoding
    # ------------------------------------------------------------------
    @property
    def supports_prefix_cache(self) -> bool:
        """Whether :meth:`encode_prefix` / :meth:`encode_suffix` apply: a
        causal, EOT-pooled tower of open_clip's standard blocks."""
        tower = self._text
        blocks = tower.transformer.resblocks
        return (self.truncate_text and tower.attn_mask is not None
                and self.text_pool_type in ('argmax', 'eos')
                and getattr(tower, 'cls_emb', None) is None and all(
                    type(b) is ResidualAttentionBlock
                    and not hasattr(b, 'ln_1_kv') for b in blocks))

    @staticmethod
    def _in_projection(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Queries, keys and values of ``x`` ``(..., T, W)``, concatenated
        ``(..., T, 3W)``, with the block's own LayerNorm and projection."""
        attn = block.attn
        return F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)

    @classmethod
    def _qkv(cls, block: nn.Module, x: torch.Tensor) -> tuple:
        """Per-head queries, keys and values ``(..., heads, T, head_dim)``
        of ``x`` ``(..., T, W)``."""
        qkv = cls._in_projection(block, x)
        return tuple(
            t.unflatten(-1, (block.attn.num_heads, -1)).transpose(-3, -2)
            for t in qkv.chunk(3, dim=-1))

    @staticmethod
    def _finish_block(block: nn.Module, x: torch.Tensor,
                      out: torch.Tensor) -> torch.Tensor:
        """Output projection, residuals and MLP of a block, from the
        attention output ``out`` ``(..., T, W)`` (heads merged)."""
        out = F.linear(out, block.attn.out_proj.weight,
                       block.attn.out_proj.bias)
        x = x + block.ls_1(out)
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    def encode_prefix(self, prefix: torch.Tensor) -> List[tuple]:
        """Run prompt prefixes through the text tower, keeping keys/values.

        Under the causal mask the hidden states of the first ``P`` positions
        of a prompt depend on nothing after them, so prompts that share
        their first ``P`` embeddings (SOT and the context, for the class
        name at the end) can share this computation.

        Args:
            prefix (Tensor): ``(G, P, W)`` embeddings of positions
                ``0..P-1``, one prefix per group of prompts.

        Returns:
            list[tuple[Tensor, Tensor]]: Keys and values of every layer,
            each ``(G, heads, P, head_dim)``.
        """
        tower = self._text
        length = prefix.shape[1]
        x = prefix.to(self.dtype) + tower.positional_embedding[:length].to(
            self.dtype)
        blocks = tower.transformer.resblocks
        cache = []
        for i, block in enumerate(blocks):
            q, k, v = self._qkv(block, x)
            cache.append((k, v))
            if i + 1 < len(blocks):  # the last layer's outputs are unused
                heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = self._finish_block(block, x,
                                       heads.transpose(-3, -2).flatten(-2))
        return cache

    def encode_suffix(self, cache: List[tuple], suffix: torch.Tensor,
                      lengths: Sequence[int]) -> torch.Tensor:
        """Encode the rest of many prompts against their group's prefix.

        The prompts' remaining positions are packed one after the other, so
        the linear layers (most of the work) run as few large matrix
        products whatever the prompts' lengths; only attention runs per run
        of equal-length prompts. Each prompt ends at its EOT, so no position
        past it is encoded, and the last layer runs at the EOT alone.
        The first layer's projections of the suffix do not depend on the
        group and are computed once for all groups.

        Args:
            cache (list): :meth:`encode_prefix` of the ``G`` groups'
                prefixes of ``P`` positions.
            suffix (Tensor): ``(N, W)`` embeddings of positions ``P`` to the
                EOT of each prompt, the prompts one after the other; the
                same for every group.
            lengths (Sequence[int]): How many positions each prompt has
                (``sum(lengths) == N``). Prompts of equal length should be
                adjacent: each run of them shares one attention call.

        Returns:
            Tensor: Projected features ``(G, len(lengths), embed_dim)``,
            equal to :meth:`encode_text` of the full prompts.
        """
        tower = self._text
        blocks = list(tower.transformer.resblocks)
        groups, heads, start, head_dim = cache[0][0].shape
        width = heads * head_dim
        dtype, device = self.dtype, suffix.device
        runs = []  # [length, number of prompts]
        for length in lengths:
            if runs and runs[-1][0] == length:
                runs[-1][1] += 1
            else:
                runs.append([length, 1])
        position = torch.cat([
            torch.arange(start, start + length, device=device).repeat(count)
            for length, count in runs
        ])
        x = suffix.to(dtype) + tower.positional_embedding[position].to(dtype)
        # A suffix position sees the whole prefix (no mask needed), itself
        # and the earlier positions of its own prompt.
        masks = {
            length:
            torch.full((length, length),
                       float('-inf'),
                       device=device,
                       dtype=dtype).triu_(1)
            for length, _ in runs
        }
        ends = torch.tensor(lengths, device=device).cumsum(0) - 1
        run_sizes = [length * count for length, count in runs]
        scale = head_dim**-0.5
        for i, (block, (prefix_k, prefix_v)) in enumerate(zip(blocks, cache)):
            last = i + 1 == len(blocks)
            # (N, 3W) in the first layer, where x is shared; (G, N, 3W) after
            qkv = self._in_projection(block, x)
            outputs = []
            # split, not slices: its backward is one concatenation
            parts = qkv.split(run_sizes, dim=-2)
            for (length, count), part in zip(runs, parts):
                part = part.unflatten(-1, (3, heads, head_dim)).unflatten(
                    -4, (count, length))  # (..., count, S, 3, heads, hd)
                if part.dim() == 5:
                    part = part.unsqueeze(0)
                # each (G or 1, count, heads, S, head_dim)
                q, k, v = part.movedim(-3, 0).transpose(-3, -2).unbind(0)
                mask = masks[length]
                if last:  # nothing after the last layer reads the others
                    q, mask = q[..., -1:, :], mask[-1:]
                q = q * scale
                scores = torch.cat([
                    torch.einsum('gchsd,ghpd->gchsp',
                                 q.expand(groups, -1, -1, -1, -1), prefix_k),
                    (q @ k.transpose(-1, -2) + mask).expand(
                        groups, -1, -1, -1, -1)
                ],
                                   dim=-1)  # (G, count, heads, S, P + S)
                to_prefix, to_suffix = torch.softmax(
                    scores, dim=-1).split([start, length], dim=-1)
                out = torch.einsum('gchsp,ghpd->gchsd', to_prefix, prefix_v)
                out = out + to_suffix @ v  # (G, count, heads, S, head_dim)
                outputs.append(
                    out.transpose(-3, -2).reshape(groups, -1, width))
            out = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
            if last:
                x = x[..., ends, :]
            x = self._finish_block(block, x, out)
        return self._project(tower.ln_final(x))
