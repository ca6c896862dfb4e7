# Copyright (c) mmprompt contributors. All rights reserved.
"""The frozen CLIP of every mmprompt model, built with open_clip."""
import contextlib
import difflib
import logging
import os
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Tuple, Union

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
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import (ResidualAttentionBlock, TextTransformer,
                                   VisionTransformer)

from mmprompt.registry import MODELS
from .weights import PRETRAINED_FORMS, not_fp16_exact, read_clip_weights

__all__ = ['OpenCLIP']

MODEL_CONFIG_DIR = osp.join(osp.dirname(__file__), 'model_configs')
# Tiny CLIPs for tests and the demo, known to open_clip by name.
open_clip.add_model_config(MODEL_CONFIG_DIR)

_PRECISIONS = ('fp32', 'fp16', 'bf16')


def _activation_name(model: nn.Module) -> str:
    """The activation of the transformer blocks' MLPs (open_clip's
    ``mlp.gelu``): 'QuickGELU' or 'GELU'."""
    for name, module in model.named_modules():
        if name.endswith('mlp.gelu'):
            return type(module).__name__
    return 'its activation'


_WEIGHT_SUFFIXES = ('.pt', '.pth', '.bin', '.safetensors', '.tar', '.ckpt')


def _directory_message(folder: str) -> str:
    """Why a folder is not a ``pretrained``, and the files it could be."""
    try:
        names = sorted(
            name for name in os.listdir(folder)
            if name.endswith(_WEIGHT_SUFFIXES)
            and osp.isfile(osp.join(folder, name)))
    except OSError:
        names = []
    if names:
        shown = ', '.join(repr(osp.join(folder, n)) for n in names[:5])
        more = f' ({len(names)} in all)' if len(names) > 5 else ''
        found = f'Weight files in it: {shown}{more}.'
    else:
        found = ('It holds no weight file (' + ', '.join(_WEIGHT_SUFFIXES) +
                 ').')
    return (f'pretrained={folder!r} is a directory, but pretrained takes one '
            f'weight file: point it at the file itself. {found} '
            f'{PRETRAINED_FORMS}')


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
        >>> clip.encode_text(clip.token_embedding(tokens),
        ...                  clip.eot_positions(tokens)).shape
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
        if osp.isdir(pretrained) and not open_clip.get_pretrained_cfg(
                arch, pretrained):
            raise IsADirectoryError(_directory_message(pretrained))
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
        state_dict, found_format, reason, guess = read_clip_weights(
            path, weights_format)
        model = None
        if found_format == 'openai' and guess:
            wrong = OpenCLIP._openai_mismatch(arch, state_dict)
            if wrong:
                # OpenAI's builder cannot make this arch of the file. If
                # open_clip's can, the file is an open_clip model of it that
                # merely holds fp16 values; if not, the error below is
                # OpenAI's (the more likely format).
                try:
                    model = OpenCLIP._build_open_clip(arch, path, state_dict,
                                                      precision)
                except ValueError:
                    model = None
                else:
                    found_format, guess = 'open_clip', False
                    reason = (f"{reason}, but OpenAI's builder cannot make "
                              f'{arch!r} of it ({wrong})')
        if found_format == 'openai':
            model = OpenCLIP._build_openai(arch, path, state_dict, precision,
                                           weights_format,
                                           reason if guess else '')
            how = 'as OpenAI trained it'
        else:
            if model is None:
                model = OpenCLIP._build_open_clip(arch, path, state_dict,
                                                  precision)
            how = f'as arch {arch!r} defines'
        activation = _activation_name(model)
        name = "OpenAI's" if found_format == 'openai' else "open_clip's"
        message = (f'OpenCLIP {arch}: {path} read as {name} format '
                   f'({reason}); built with {activation} {how}')
        arch_activation = ('QuickGELU' if open_clip.get_model_config(arch).get(
            'quick_gelu', False) else 'GELU')
        if guess and arch_activation != activation:
            print_log(
                f"{message}. This is a guess from the numbers alone: an "
                'open_clip model rounded to fp16 looks the same, and would '
                f'run {arch_activation} as arch {arch!r} defines. If the '
                "file is open_clip's, set weights_format='open_clip' "
                '(model.clip.weights_format in a config); '
                "weights_format='openai' confirms this reading.",
                logger='current',
                level=logging.WARNING)
        else:
            if guess:
                message += (f" (open_clip's reading would run "
                            f'{arch_activation} too)')
            print_log(message, logger='current')
        return model

    @staticmethod
    def _build_openai(arch: str,
                      path: str,
                      state_dict: dict,
                      precision: str,
                      weights_format: str,
                      guessed_because: str = '') -> nn.Module:
        wrong = OpenCLIP._openai_mismatch(arch, state_dict)
        if wrong:
            how = (f" (taken for OpenAI's format because {guessed_because}; "
                   "nor does open_clip's format of it fit the arch)"
                   if guessed_because else '')
            raise ValueError(
                f'the OpenAI-format weights in {path!r} are not a {arch!r} '
                f'model{how}: {wrong}. Set arch to the architecture the '
                'file holds.')
        if weights_format == 'openai':
            inexact = not_fp16_exact(state_dict)
            if inexact:
                print_log(
                    f"weights_format='openai' rounds the weights of {path} "
                    'to fp16, as OpenAI\'s build_model does: '
                    f'{len(inexact)} tensors hold values fp16 cannot '
                    f'represent (e.g. {inexact[0]!r}) and change. Use '
                    "weights_format='open_clip' (or 'auto') to keep them.",
                    logger='current',
                    level=logging.WARNING)
        cast_dtype = open_clip.get_cast_dtype(precision)
        # QuickGELU, and the fp16 rounding OpenAI's own build_model does.
        model = build_model_from_openai_state_dict(
            dict(state_dict), quick_gelu=True, cast_dtype=cast_dtype)
        if precision != 'fp16':
            model.float()
            if precision == 'bf16':
                convert_weights_to_lp(model, dtype=torch.bfloat16)
        return model

    @staticmethod
    def _build_open_clip(arch: str, path: str, state_dict: dict,
                         precision: str) -> nn.Module:
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
    def _openai_mismatch(arch: str, state_dict: dict) -> str:
        """How the model OpenAI's builder makes of ``state_dict`` differs
        from ``arch``, or '' where it is ``arch``."""
        cfg = open_clip.get_model_config(arch)
        text_cfg, vision_cfg = cfg['text_cfg'], cfg['vision_cfg']
        try:
            text_width = state_dict['ln_final.weight'].shape[0]
            found = {
                'embed_dim': state_dict['text_projection'].shape[1],
                'text width': text_width,
                # OpenAI's builder gives every head 64 channels.
                'text heads': text_width // 64,
                'context length': state_dict['positional_embedding'].shape[0],
            }
            if 'visual.proj' in state_dict:
                found['vision width'] = state_dict[
                    'visual.conv1.weight'].shape[0]
                found['patch size'] = state_dict['visual.conv1.weight'].shape[
                    -1]
            else:
                found['vision width'] = state_dict[
                    'visual.layer1.0.conv1.weight'].shape[0]
        except KeyError as err:
            return f'it has no {err.args[0]!r}'
        expected = {
            'embed_dim': cfg['embed_dim'],
            'text width': text_cfg.get('width', 512),
            'text heads': text_cfg.get('heads', 8),
            'context length': text_cfg.get('context_length', 77),
            'vision width': vision_cfg.get('width'),
        }
        if 'patch size' in found:
            expected['patch size'] = vision_cfg.get('patch_size')
        if vision_cfg.get('head_width', 64) != 64:
            found['vision head width'] = 64
            expected['vision head width'] = vision_cfg['head_width']
        return ', '.join(f'{k} {found[k]} (arch has {expected[k]})'
                         for k in found if found[k] != expected[k])

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
    def activation(self) -> str:
        """The activation of the transformer blocks: ``'QuickGELU'`` (OpenAI's
        weights, ``-quickgelu`` archs) or ``'GELU'``. Two readings of one
        weight file can differ in it alone (see ``weights_format``).

        Examples:
            >>> from mmprompt.models import OpenCLIP
            >>> OpenCLIP('mmprompt-tiny-vit', pretrained=None).activation
            'QuickGELU'
        """
        return _activation_name(self.model)

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
    # properties
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
    def vision_width(self) -> Optional[int]:
        """Width of the image transformer (of a vision token), or None for
        an image tower that is not a transformer (ResNet)."""
        visual = self.model.visual
        if isinstance(visual, VisionTransformer):
            return visual.class_embedding.shape[-1]
        return None

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

    # ------------------------------------------------------------------
    # text
    # ------------------------------------------------------------------
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
        pool = self.text_pool_type
        if pool in ('first', 'last'):  # towers built with truncate_text=False
            position = 0 if pool == 'first' else tokens.shape[1] - 1
            return torch.full((tokens.shape[0], ),
                              position,
                              dtype=torch.long,
                              device=tokens.device)
        if pool == 'eos':
            eos_id = getattr(self._text, 'eos_id',
                             getattr(self._text, 'text_eos_id', None))
            return (tokens == eos_id).int().argmax(dim=-1)
        return tokens.argmax(dim=-1)

    @property
    def text_blocks(self) -> nn.ModuleList:
        """The text transformer's blocks, for code that runs them itself
        (the prefix-cached text encoder)."""
        return self._text.transformer.resblocks

    @property
    def text_positional_embedding(self) -> torch.Tensor:
        """``(context_length, width)``, added to the token embeddings."""
        return self._text.positional_embedding

    def text_head(self, x: torch.Tensor) -> torch.Tensor:
        """The text tower after its blocks, at the pooled positions:
        ``ln_final`` then the projection, ``(..., width) -> (...,
        embed_dim)``. (The LayerNorm works per position, so applying it at
        the pooled positions only equals applying it everywhere first.)"""
        x = self._text.ln_final(x)
        proj = self._text.text_projection
        if proj is None:
            return x
        if isinstance(proj, nn.Linear):
            return proj(x)
        return x @ proj

    def encode_text(self,
                    embeddings: torch.Tensor,
                    eot: torch.Tensor,
                    overwrite: Optional[Mapping[int,
                                                Tuple[int,
                                                      torch.Tensor]]] = None,
                    truncate: Optional[bool] = None,
                    rows_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Encode token embeddings into text features.

        Equal to open_clip's ``encode_text(tokens)`` when ``embeddings`` are
        the token embeddings of ``tokens`` and ``eot`` their EOT positions;
        here any embedding (e.g. learned vectors) may stand in for a token,
        and rows of the hidden state may be replaced before given blocks.

        Args:
            embeddings (Tensor): Token embeddings ``(N, L, W)``, before the
                positional embedding.
            eot (Tensor): ``(N,)`` the position each sequence is pooled at
                (:meth:`eot_positions` of the tokens).
            overwrite (Mapping[int, tuple[int, Tensor]], optional):
                ``{i: (start, rows)}``: before block ``i`` (0-based), rows
                ``start .. start + n - 1`` of the hidden state become
                ``rows``, ``(n, W)`` for every sequence or ``(N, n, W)`` one
                set per sequence. Nothing is added to them (no positional
                embedding). Defaults to None.
            truncate (bool, optional): Drop the positions after the last
                EOT (exact, see ``truncate_text``); None follows
                ``truncate_text``, False runs every position (the
                original's computation, for comparisons). Defaults to None.
            rows_dtype (torch.dtype, optional): Each sequence's copy of
                the ``overwrite`` rows passes through this dtype after the
                rows are expanded to the batch (``rows.expand(N, n,
                W).to(rows_dtype)``): its value and its own gradient are
                rounded there, as the deep-prompt originals'
                ``p.expand(...).half()`` does in their fp32 path. None keeps
                the rows as they are. Defaults to None.

        Returns:
            Tensor: Projected features ``(N, embed_dim)``, not normalised.
        """
        eot = eot.to(embeddings.device)
        length = embeddings.shape[1]
        if truncate and not self.truncate_text:
            raise ValueError(
                'truncate=True, but this CLIP was built with '
                'truncate_text=False: cutting after the EOT is exact only '
                'for causal, EOT-pooled text towers')
        if self.truncate_text if truncate is None else truncate:
            # Under the causal mask no position sees a later one, so the
            # positions after the last EOT of the batch cannot change any
            # EOT feature: dropping them is exact and saves their compute.
            length = int(eot.max()) + 1
        dtype = self.dtype
        x = embeddings[:, :length].to(dtype)
        x = x + self.text_positional_embedding[:length].to(dtype)
        mask = self._text.attn_mask
        if mask is not None:
            mask = mask[:length, :length]
        overwrite = self._check_overwrite(overwrite, len(self.text_blocks),
                                          embeddings.shape[1], 'text')
        x = self._run_blocks(self._text.transformer, x, overwrite, mask,
                             rows_dtype)
        return self.text_head(x[torch.arange(x.shape[0], device=x.device),
                                eot])

    def encode_text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The plain text tower: features of token ids ``(N, L)`` ->
        ``(N, embed_dim)``."""
        tokens = tokens.to(self.device)
        return self.encode_text(
            self.token_embedding(tokens), self.eot_positions(tokens))

    # ------------------------------------------------------------------
    # images
    # ------------------------------------------------------------------
    @property
    def pools_class_token(self) -> bool:
        """Whether the image tower is a ViT of open_clip's standard blocks
        whose feature is the class token's output (CLIP's ViTs): then the
        last block's queries, attention output and MLP are needed at that
        token only, an exact saving of about 1/14 of the tower, and vision
        tokens can be appended (:meth:`encode_image`)."""
        return self._vision_refusal() is None

    @property
    def vision_blocks(self) -> Optional[nn.ModuleList]:
        """The image transformer's blocks, or None for an image tower that
        is not a transformer (ResNet)."""
        visual = self.model.visual
        if isinstance(visual, VisionTransformer):
            return visual.transformer.resblocks
        return None

    def check_vision_tokens(self,
                            who: str = 'Prompt methods with vision '
                            'tokens') -> None:
        """Raise a ``ValueError`` saying why vision tokens cannot be added
        to this image tower (:meth:`encode_image`'s ``append``), if they
        cannot: prompt learners call it when they are built.

        Args:
            who (str): What needs the tokens, for the message.
        """
        refusal = self._vision_refusal()
        if refusal is not None:
            raise ValueError(
                f'vision tokens cannot be added to the image tower of '
                f'{self.arch!r}: {refusal}. {who} need a ViT pooled at its '
                "class token (e.g. ViT-B-16); text-only prompts work with "
                'every tower.')

    def _vision_refusal(self) -> Optional[str]:
        """Why :meth:`encode_image` cannot run its own ViT loop, or None."""
        visual = self.model.visual
        if type(visual) is not VisionTransformer:
            return (f'its image tower is a {type(visual).__name__}, not a '
                    'ViT')
        if visual.attn_pool is not None or visual.pool_type != 'tok':
            how = ('attention'
                   if visual.attn_pool is not None else repr(visual.pool_type))
            return (f'its ViT pools with {how}, not at the class token '
                    '(added tokens would be pooled too)')
        if visual.output_tokens or visual.training or getattr(
                visual, 'final_ln_after_pool', False):
            return 'its ViT returns tokens or pools after its LayerNorm'
        if not all(
                type(b) is ResidualAttentionBlock
                and not hasattr(b, 'ln_1_kv')
                for b in visual.transformer.resblocks):
            return "its ViT blocks are not open_clip's standard blocks"
        return None

    def encode_image(self,
                     images: torch.Tensor,
                     append: Optional[torch.Tensor] = None,
                     overwrite: Optional[Mapping[int, torch.Tensor]] = None,
                     rows_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Image features ``(B, embed_dim)``, not normalised.

        Without ``append`` this is open_clip's ``encode_image`` (for a ViT
        pooled at its class token, the last block runs at that token alone:
        exact, see :attr:`pools_class_token`).

        Args:
            images (Tensor): Preprocessed images ``(B, 3, H, W)``.
            append (Tensor, optional): ``n`` tokens appended to the sequence
                ``[CLS; patches] + pos`` before ``ln_pre``, ``(n, Wv)`` for
                every image or ``(B, n, Wv)``; no positional embedding is
                added to them and they are never pooled. ViTs pooled at the
                class token only. Defaults to None.
            overwrite (Mapping[int, Tensor], optional): ``{i: rows}``:
                before block ``i`` (0-based) the ``n`` appended tokens of
                the hidden state become ``rows``, ``(n, Wv)`` or
                ``(B, n, Wv)``. Needs ``append``. Defaults to None.
            rows_dtype (torch.dtype, optional): Each image's copy of
                ``append`` and of the ``overwrite`` rows passes through this
                dtype after they are expanded to the batch, rounding its
                value and its own gradient (the deep-prompt originals'
                ``p.expand(B, -1, -1).half()``, see :meth:`encode_text`).
                Defaults to None.

        Returns:
            Tensor: ``(B, embed_dim)``.
        """
        self._check_image_size(images)
        images = images.to(self.image_dtype)
        if append is None and overwrite:
            raise ValueError(
                'overwrite replaces appended vision tokens: pass append '
                'too (the tokens before the first block)')
        refusal = self._vision_refusal()
        if append is not None:
            self.check_vision_tokens()
        if refusal is not None:
            return self.model.encode_image(images)
        visual = self.model.visual
        x = self._vision_embeds(images, append, rows_dtype)  # (B, T (+ n), Wv)
        n = 0 if append is None else append.shape[-2]
        for block, rows in (overwrite or {}).items():
            if rows.shape[-2] != n:
                raise ValueError(
                    f'the vision rows written before block {block} must '
                    f'replace the {n} appended tokens, got '
                    f'{rows.shape[-2]} rows')
        overwrite = self._check_overwrite(
            {
                i: (x.shape[1] - n, rows)
                for i, rows in (overwrite or {}).items()
            }, len(visual.transformer.resblocks), x.shape[1], 'vision')
        return self._run_vision_blocks(x, overwrite, rows_dtype)

    @property
    def image_size(self) -> Optional[Tuple[int, int]]:
        """``(H, W)`` the image tower takes, where its positional embedding
        fixes it (CLIP's ViTs, and its ResNets' attention pooling); None
        for towers that take other sizes."""
        visual = self.model.visual
        if not isinstance(visual, (VisionTransformer, ModifiedResNet)):
            return None
        size = visual.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def _check_image_size(self, images: torch.Tensor) -> None:
        expected = self.image_size
        if expected is None or images.dim() != 4:
            return
        got = tuple(images.shape[-2:])
        if got == expected:
            return
        h, w = expected
        visual = self.model.visual
        if isinstance(visual, VisionTransformer):
            grid = 'x'.join(str(g) for g in visual.grid_size)
            patch = 'x'.join(str(p) for p in visual.patch_size)
            why = f'a {grid} grid of {patch}-pixel patches'
        else:
            side = visual.attnpool.positional_embedding.shape[0] - 1
            side = int(round(side**0.5))
            why = (f'a {side}x{side} feature map (the image downsampled 32 '
                   'times)')
        raise ValueError(
            f'the images are {got[0]}x{got[1]} pixels, but the image tower '
            f'of {self.arch!r} takes {h}x{w}: its positional embedding is '
            f'fixed to {why} (other sizes fail in the tower or silently '
            f"drop the pixels its stride does not cover). Make the data "
            f'pipelines give {h}x{w} images: RandomResizedCrop scale={h} '
            f'(train) and ResizeEdge scale={h} with CenterCrop '
            f'crop_size={h} (test), in mmprompt\'s configs '
            'configs/_base_/datasets/pipelines.py (or '
            'train_dataloader.dataset.pipeline / '
            'test_dataloader.dataset.pipeline), or choose the CLIP arch '
            'the pipelines were made for.')

    def _vision_embeds(self,
                       images: torch.Tensor,
                       append: Optional[torch.Tensor],
                       rows_dtype: Optional[torch.dtype] = None
                       ) -> torch.Tensor:
        """open_clip's ``VisionTransformer._embeds`` with ``append`` added
        between the positional embedding (and patch dropout) and
        ``ln_pre``."""
        visual = self.model.visual
        x = visual.conv1(images)  # (B, Wv, grid, grid)
        x = x.flatten(2).transpose(1, 2)  # (B, grid ** 2, Wv)
        cls = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls.to(x.dtype), x], dim=1)
        x = x + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        if append is not None:
            if append.dim() == 2:
                append = append.expand(x.shape[0], -1, -1)
            if rows_dtype is not None:
                append = append.to(rows_dtype)
            x = torch.cat([x, append.to(x.dtype)], dim=1)  # (B, T + n, Wv)
        return visual.ln_pre(x)

    def _run_vision_blocks(self,
                           x: torch.Tensor,
                           overwrite: dict,
                           rows_dtype: Optional[torch.dtype] = None):
        """The ViT's blocks with the last one's query at the class token
        (the other positions give keys and values there, and nothing reads
        their outputs), then the pooled head."""
        visual = self.model.visual
        transformer = visual.transformer
        *blocks, last = transformer.resblocks
        last_index = len(blocks)
        batch_first = getattr(transformer, 'batch_first', True)
        sequence = 1 if batch_first else 0
        if not batch_first:
            x = x.transpose(0, 1)
        for i, block in enumerate(blocks):
            if i in overwrite:
                x = _write_rows(x, *overwrite[i], sequence, rows_dtype)
            x = _run_block(block, x)
        if last_index in overwrite:
            x = _write_rows(x, *overwrite[last_index], sequence, rows_dtype)
        normed = last.ln_1(x)
        x = x.narrow(sequence, 0, 1) + last.ls_1(
            _attend(last, normed.narrow(sequence, 0, 1), normed))
        x = x + last.ls_2(last.mlp(last.ln_2(x)))
        pooled = visual.ln_post(x.select(sequence, 0))
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled

    # ------------------------------------------------------------------
    # shared by both towers
    # ------------------------------------------------------------------
    @staticmethod
    def _check_overwrite(overwrite: Optional[Mapping], num_blocks: int,
                         length: int, tower: str) -> dict:
        """Validate ``{block: (start, rows)}`` against a tower of
        ``num_blocks`` blocks and sequences of ``length`` positions."""
        checked = {}
        for block, (start, rows) in (overwrite or {}).items():
            if not isinstance(block, int) or not 0 <= block < num_blocks:
                raise ValueError(
                    f'overwrite names {tower} block {block!r}, but the '
                    f'{tower} tower has blocks 0..{num_blocks - 1}')
            if rows.dim() not in (2, 3):
                raise ValueError(
                    f'the {tower} rows written before block {block} must be '
                    f'(n, width) or (batch, n, width), got shape '
                    f'{tuple(rows.shape)}')
            if start < 0 or start + rows.shape[-2] > length:
                raise ValueError(
                    f'the {tower} rows written before block {block} span '
                    f'positions {start}..{start + rows.shape[-2] - 1}, '
                    f'outside the {length} positions of the sequence')
            checked[block] = (start, rows)
        return checked

    @staticmethod
    def _run_blocks(transformer: nn.Module,
                    x: torch.Tensor,
                    overwrite: dict,
                    mask: Optional[torch.Tensor],
                    rows_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """open_clip's ``Transformer.forward`` on batch-first ``x``, with
        rows written before the blocks ``overwrite`` names."""
        batch_first = getattr(transformer, 'batch_first', True)
        sequence = 1 if batch_first else 0
        if not batch_first:
            x = x.transpose(0, 1)
        for i, block in enumerate(transformer.resblocks):
            if i in overwrite:
                x = _write_rows(x, *overwrite[i], sequence, rows_dtype)
            x = _run_block(block, x, mask)
        return x if batch_first else x.transpose(0, 1)


def _run_block(block: nn.Module,
               x: torch.Tensor,
               attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``block(x, attn_mask=attn_mask)`` for batch-first ``x``; an open_clip
    ``ResidualAttentionBlock`` that autograd records takes its attention
    from :func:`_attend`. Other blocks, and every block without a graph, run
    as open_clip's own."""
    if not (torch.is_grad_enabled() and x.requires_grad
            and type(block) is ResidualAttentionBlock):
        return block(x, attn_mask=attn_mask)
    normed = block.ln_1(x)
    x = x + block.ls_1(_attend(block, normed, normed, attn_mask))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _attend(block: nn.Module,
            q: torch.Tensor,
            kv: torch.Tensor,
            attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``block.attention(q_x=q, k_x=kv, v_x=kv, attn_mask=attn_mask)``.

    Where autograd records it (deep prompts, a prompted image tower), a
    batch-first ``nn.MultiheadAttention`` runs on sequence-first contiguous
    copies of ``q`` and ``kv`` through the same
    ``F.multi_head_attention_forward`` that the module calls. The module
    itself transposes its batch-first inputs to ``(T, B, W)`` views, and
    ``torch.matmul`` runs a non-contiguous input that requires grad as
    ``T`` batched products of ``B`` rows with the weight broadcast: on a
    CPU the input projection's forward and backward take about 15x longer
    (``tools/analysis_tools/benchmark.py --preset maple-train``).
    """
    attn = block.attn
    if not (torch.is_grad_enabled() and (q.requires_grad or kv.requires_grad)
            and isinstance(attn, nn.MultiheadAttention) and attn.batch_first
            and attn._qkv_same_embed_dim):
        return block.attention(q_x=q, k_x=kv, v_x=kv, attn_mask=attn_mask)
    q_seq = q.transpose(0, 1).contiguous()
    kv_seq = q_seq if kv is q else kv.transpose(0, 1).contiguous()
    if attn_mask is not None:
        attn_mask = attn_mask.to(q_seq.dtype)
    out = F.multi_head_attention_forward(
        q_seq,
        kv_seq,
        kv_seq,
        attn.embed_dim,
        attn.num_heads,
        attn.in_proj_weight,
        attn.in_proj_bias,
        attn.bias_k,
        attn.bias_v,
        attn.add_zero_attn,
        attn.dropout,
        attn.out_proj.weight,
        attn.out_proj.bias,
        training=attn.training,
        need_weights=False,
        attn_mask=attn_mask)[0]
    return out.transpose(0, 1)


def _write_rows(x: torch.Tensor,
                start: int,
                rows: torch.Tensor,
                sequence: int,
                rows_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``x`` with positions ``start ..`` along dim ``sequence`` replaced by
    ``rows`` (``(n, W)`` or ``(N, n, W)``, batch first), as a new tensor:
    the gradient reaches ``rows`` and nothing flows to the replaced rows.
    Rows past the end of ``x`` (cut after the last EOT) are dropped. With
    ``rows_dtype`` each sequence's copy passes through it after the
    expansion (value and per-sequence gradient rounded)."""
    n = max(0, min(rows.shape[-2], x.shape[sequence] - start))
    if n == 0:
        return x
    rows = rows[..., :n, :]
    batch = x.shape[1 - sequence]
    if rows.dim() == 2:
        rows = rows.expand(batch, -1, -1)
    if rows_dtype is not None:
        rows = rows.to(rows_dtype)
    rows = rows.to(x.dtype)
    if sequence == 0:
        rows = rows.transpose(0, 1)
    before, _, after = x.split([start, n, x.shape[sequence] - start - n],
                               dim=sequence)
    return torch.cat([before, rows, after], dim=sequence)
