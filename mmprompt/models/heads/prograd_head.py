# Copyright (c) mmprompt contributors. All rights reserved.
"""ProGrad's head: CoOp's logits, and the two losses whose gradients the
optimizer wrapper projects."""
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmprompt.registry import MODELS
from .coop_head import CoOpHead
from .templates import resolve_templates
from .text_bank import TextFeatureBank

__all__ = ['ProGradHead', 'LossTerms']

_WRAPPER_HINT = (
    "set optim_wrapper=dict(type='ProGradOptimWrapper', ...) (with --amp, "
    "tools/train.py picks 'ProGradAmpOptimWrapper')")


class LossTerms(dict):
    """Loss terms that an optimizer wrapper needs one by one, in place of
    their sum: ProGrad's update takes the gradient of each term separately
    (``ProGradOptimWrapper``).

    :meth:`PromptClassifier.parse_losses` returns it for a head with
    ``update_terms`` (:class:`ProGradHead`). A wrapper that would divide or
    back-propagate it as one loss (mmengine's ``OptimWrapper``,
    ``AmpOptimWrapper``) is told which wrapper to use instead of silently
    training on the sum.
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError(
            f'the loss terms {sorted(self)} are back-propagated one by one '
            '(ProGrad projects the gradient of one away from the other), '
            f'not summed by a plain optimizer wrapper: {_WRAPPER_HINT}')

    backward = __truediv__ = __mul__ = _refuse


@MODELS.register_module()
class ProGradHead(CoOpHead):
    """Prompt-aligned gradient (`ProGrad
    <https://arxiv.org/abs/2205.14865>`_): CoOp's prompt, trained with
    cross-entropy and a distillation loss to zero-shot CLIP.

    The logits are CoOp's, ``z = logit_scale.exp() * cos(f, g(t_i))``. The
    teacher is the same frozen CLIP with a hand-written prompt per class
    (:class:`TextFeatureBank`, computed once per set of class names, in
    fp32 as the original's ``clip_model.float()`` teacher):
    ``z_zs = logit_scale.exp() * cos(f, w_i)``, with the student's image
    features ``f`` (the original's teacher runs its own copy of the image
    tower: the same features in fp32, fp16-rounded ones in the fp16 mode).
    :meth:`loss` returns

    * ``loss_ce = CE(z, y)``;
    * ``loss_kl = T² · mean_b Σ_c −softmax(z_zs / T)_c ·
      log_softmax(z / T)_c``: the original's ``kl_loss``, the soft
      cross-entropy (KL plus the teacher's entropy: the KL's gradient, not
      its value).

    They are not summed: ``ProGradOptimWrapper`` takes the gradient of each
    and, where they conflict, projects the cross-entropy gradient onto the
    normal plane of the KL gradient (:func:`~mmprompt.engine.prograd_project`).
    In evaluation the head is CoOp's.

    Args:
        prompt_learner (dict): Config of the prompt learner. Defaults to
            ``dict(type='ProGradPromptLearner', n_ctx=16, ctx_init=True)``:
            16 vectors, the last ones initialised from the words of the
            teacher's template (``ctx_init=True`` is replaced by them).
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        templates (str | Sequence[str]): The teacher's prompt: a dataset name
            of ``template_table`` (ProGrad's ``CUSTOM_TEMPLATES``), a
            template with ``'{}'``, or a list (their normalised features are
            averaged). Defaults to 'a photo of a {}.'.
        template_table (str): The per-dataset table of a dataset name in
            ``templates``. Defaults to 'prograd'.
        temperature (float): ``T`` of the distillation loss. Defaults to 1.
        **kwargs: The arguments of :class:`CoOpHead` (``text_encoder``,
            ``loss``, ``topk``, ``cal_acc``, ``cache_text_features``).

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmpretrain.structures import DataSample
        >>> from mmprompt.models import OpenCLIP, ProGradHead
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = ProGradHead(clip=clip, templates='OxfordPets')
        >>> head.prompt_learner.prompt_prefix
        'X X X X X X X X a type of pet, a photo of a'
        >>> head.set_class_names(['abyssinian', 'pug'])
        >>> feats = F.normalize(torch.randn(2, 64), dim=-1)
        >>> samples = [DataSample().set_gt_label(i) for i in (0, 1)]
        >>> sorted(head.loss((feats, ), samples))
        ['loss_ce', 'loss_kl']
    """

    def __init__(self,
                 prompt_learner: dict = dict(
                     type='ProGradPromptLearner', n_ctx=16, ctx_init=True),
                 clip: Union[nn.Module, dict, None] = None,
                 templates: Union[str, Sequence[str]] = 'a photo of a {}.',
                 template_table: str = 'prograd',
                 temperature: float = 1.0,
                 **kwargs) -> None:
        if isinstance(
                temperature,
                bool) or not isinstance(temperature,
                                        (int, float)) or not temperature > 0:
            raise ValueError('temperature must be a positive number, got '
                             f'{temperature!r}')
        # Checked before anything is built: the words come from it.
        resolved = resolve_templates(templates, template_table)
        prompt_learner = dict(prompt_learner)
        if prompt_learner.get('ctx_init') is True:
            prompt_learner['ctx_init'] = self.template_words(resolved)
        super().__init__(prompt_learner, clip, **kwargs)
        self.temperature = float(temperature)
        # fp32 whatever the CLIP's precision, as the original's teacher.
        self.teacher = TextFeatureBank(
            self.clip, resolved, table=template_table, precision='fp32')

    @staticmethod
    def template_words(templates: List[str]) -> str:
        """The words of ``CTX_INIT True``: the template without its
        ``' {}.'``, ``_`` read as a space.

        Args:
            templates (list[str]): The teacher's template, exactly one.

        Returns:
            str: e.g. ``'a type of pet, a photo of a'``.
        """
        if len(templates) != 1 or not templates[0].endswith(' {}.'):
            raise ValueError(
                'ctx_init=True takes the words of one template ending in '
                f"' {{}}.' (as ProGrad's), got {templates}: give the words "
                "as ctx_init='...' instead")
        return templates[0][:-len(' {}.')].replace('_', ' ').strip()

    def teacher_logits(self, image_features: torch.Tensor) -> torch.Tensor:
        """Zero-shot CLIP's logits ``(B, K)`` for normalised image features
        ``(B, D)``, without gradient."""
        with torch.no_grad():
            return self.cosine_logits(image_features.detach(),
                                      self.teacher(self.class_names))

    def distillation_loss(self, logits: torch.Tensor,
                          teacher_logits: torch.Tensor) -> torch.Tensor:
        """The original's ``kl_loss``: ``T² · mean_b Σ_c −softmax(z_zs/T)_c
        · log_softmax(z/T)_c``."""
        t = self.temperature
        target = F.softmax(teacher_logits.float() / t, dim=-1)
        log_prob = F.log_softmax(logits.float() / t, dim=-1)
        return t * t * -(target * log_prob).sum(-1).mean()

    def loss(self, feats, data_samples: List[DataSample], **kwargs) -> dict:
        """``loss_ce`` and ``loss_kl`` (and the accuracy with ``cal_acc``).

        Args:
            feats (tuple[Tensor]): Normalised image features ``((B, D), )``.
            data_samples (list[DataSample]): With ``gt_label``.

        Returns:
            dict[str, Tensor]: The two loss terms, never summed for the
            update (see :meth:`update_terms`).
        """
        image_features = self.pre_logits(feats)
        logits = self.cosine_logits(image_features, self.text_features())
        losses = self._get_loss(logits, data_samples, **kwargs)
        terms = dict(
            loss_ce=losses.pop('loss'),
            loss_kl=self.distillation_loss(
                logits, self.teacher_logits(image_features)))
        return dict(terms, **losses)

    @staticmethod
    def update_terms(losses: dict) -> LossTerms:
        """What the optimizer wrapper gets in place of the summed loss
        (``PromptClassifier.parse_losses``): both terms."""
        return LossTerms(loss_ce=losses['loss_ce'], loss_kl=losses['loss_kl'])
