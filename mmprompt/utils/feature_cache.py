# Copyright (c) mmprompt contributors. All rights reserved.
"""Frozen image features on disk, each file holding the key it was made
for."""
import hashlib
import io
import json
import logging
import os.path as osp
from typing import Any, Dict, List, NamedTuple, Optional

import torch
from mmengine.logging import print_log

from .checkpoint import atomic_write

__all__ = [
    'FeatureCache', 'FEATURE_CACHE_VERSION', 'FeatureSet', 'SEARCH_SPLITS',
    'check_search_split'
]

#: Changes when the format of the files or of the keys changes.
FEATURE_CACHE_VERSION = 1

#: The splits a hyper-parameter may be chosen on. Never the test split.
SEARCH_SPLITS = ('train', 'val')


def check_search_split(split: Optional[str], what: str = 'search') -> str:
    """Refuse to choose anything on the test split.

    Args:
        split (str): The split a value is to be chosen on.
        what (str): What is chosen, for the message.

    Returns:
        str: ``split``.

    Raises:
        ValueError: ``split`` is not one of :data:`SEARCH_SPLITS`.

    Examples:
        >>> check_search_split('val')
        'val'
        >>> check_search_split('test', 'alpha/beta search')
        Traceback (most recent call last):
        ...
        ValueError: the alpha/beta search runs on the training or the ...
    """
    if split not in SEARCH_SPLITS:
        raise ValueError(
            f'the {what} runs on the training or the validation features '
            f'only (one of {SEARCH_SPLITS}), got {split!r}: choosing a '
            'value on the test split reports a test accuracy that the '
            'method cannot reach on unseen data (Tip-Adapter issue #11)')
    return split


class FeatureSet(NamedTuple):
    """Frozen CLIP image features of one split, as the feature cache holds
    them.

    Attributes:
        features (Tensor): ``(V, N, D)``, fp32, NOT normalised (each method
            normalises as its original does): ``V`` views of ``N`` images
            (augmented passes of a training split; one view of a split
            under the test transform).
        labels (Tensor): ``(N, )`` int64.
        split (str): ``'train'``, ``'val'`` or ``'test'``: what the set is,
            for the protocol guard and the record of what chose what.
    """
    features: torch.Tensor
    labels: torch.Tensor
    split: str


def _canonical(key: Dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(',', ':'))


class FeatureCache:
    """A folder of feature files, one per key.

    A key is a JSON-able dict of everything that changes the features (the
    CLIP's arch, weights fingerprint and precision, the data, the
    transform, the view). The file's name is a hash of the key; the file
    holds the key itself, which :meth:`load` compares with the key asked
    for: a file written for another key (a foreign file copied in, a
    collision) or one that cannot be read (truncated, corrupted, not a
    feature file) is never used: :meth:`load` warns, naming the file and
    why, and returns None, so that the caller extracts the features again
    and :meth:`save` replaces the file. Files are written atomically.

    Args:
        folder (str): The folder, created on the first save.

    Examples:
        >>> import tempfile, torch
        >>> cache = FeatureCache(tempfile.mkdtemp())
        >>> key = dict(clip='ViT-B-16', split='train', view=0)
        >>> cache.load(key) is None
        True
        >>> path = cache.save(key, torch.ones(2, 3))
        >>> cache.load(key).shape
        torch.Size([2, 3])
    """

    def __init__(self, folder: str) -> None:
        self.folder = str(folder)

    def path(self, key: Dict[str, Any]) -> str:
        """The file of ``key``."""
        digest = hashlib.sha256(_canonical(
            self._full(key)).encode('utf-8')).hexdigest()[:24]
        return osp.join(self.folder, f'features_{digest}.pt')

    @staticmethod
    def _full(key: Dict[str, Any]) -> Dict[str, Any]:
        return dict(key, cache_version=FEATURE_CACHE_VERSION)

    def load(self, key: Dict[str, Any]) -> Optional[torch.Tensor]:
        """The features stored for ``key``, or None (absent, unreadable or
        made for another key; the last two with a warning).

        Args:
            key (dict): The key.

        Returns:
            Tensor | None: The features as saved.
        """
        path = self.path(key)
        if not osp.isfile(path):
            return None
        try:
            stored = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:  # truncated, corrupted, not torch's
            self._refuse(
                path, f'it cannot be read ({type(err).__name__}: '
                f'{err})')
            return None
        if not isinstance(stored, dict) or not isinstance(
                stored.get('features'), torch.Tensor) or not isinstance(
                    stored.get('key'), str):
            self._refuse(path, 'it is not a feature file of mmprompt')
            return None
        expected = _canonical(self._full(key))
        if stored['key'] != expected:
            self._refuse(
                path, 'it was made for another key: ' + ', '.join(
                    _differences(
                        json.loads(stored['key']), json.loads(expected))))
            return None
        return stored['features']

    def save(self, key: Dict[str, Any], features: torch.Tensor) -> str:
        """Write ``features`` for ``key`` atomically; returns the path."""
        path = self.path(key)
        buffer = io.BytesIO()
        torch.save(
            dict(
                key=_canonical(self._full(key)),
                features=features.detach().cpu().contiguous()), buffer)
        atomic_write(path, buffer.getvalue())
        return path

    @staticmethod
    def _refuse(path: str, why: str) -> None:
        print_log(
            f'feature cache: not using {path}: {why}. The features are '
            'extracted again and the file replaced.',
            logger='current',
            level=logging.WARNING)


def _differences(saved: Any, expected: Any, prefix: str = '') -> List[str]:
    if isinstance(saved, dict) and isinstance(expected, dict):
        out = []
        for name in sorted(set(saved) | set(expected)):
            out += _differences(
                saved.get(name, '<absent>'), expected.get(name, '<absent>'),
                f'{prefix}{name}.')
        return out
    if saved != expected:
        text = f'{prefix[:-1]}: {str(saved)[:60]} in the file, ' \
               f'{str(expected)[:60]} asked for'
        return [text]
    return []
