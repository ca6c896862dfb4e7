# Copyright (c) mmprompt contributors. All rights reserved.
"""Distributed training on CPUs (gloo) through mmengine's Runner.

mmengine 0.10's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
before ``init_process_group``, and its default DDP wrapper passes
``device_ids=[LOCAL_RANK]``; both fail on a machine without a GPU.
:func:`setup_cpu_distributed` starts the process group with gloo itself
(the Runner then finds it started and leaves it alone) and wraps the model
with ``device_ids=None``, the form DDP wants for CPU modules. On a machine
with a GPU it does nothing and mmengine proceeds as usual (nccl).
"""
import datetime
import gc
import logging
import os

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log

__all__ = [
    'accelerator_available', 'setup_cpu_distributed', 'teardown_distributed'
]


def accelerator_available() -> bool:
    """Whether mmengine would run on a CUDA, NPU, MLU or MUSA device."""
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def setup_cpu_distributed(cfg: Config) -> bool:
    """Start ``torch.distributed`` with gloo for a CPU-only ``pytorch``
    launch.

    Does something only when ``cfg.launcher == 'pytorch'`` (torchrun,
    ``tools/dist_train.sh``), no accelerator is available and no process
    group exists yet. It then sets ``env_cfg.dist_cfg.backend='gloo'``,
    initialises the process group from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) with
    ``env_cfg.dist_cfg.timeout`` (seconds) if given, and gives the DDP
    wrapper (``model_wrapper_cfg``) ``device_ids=None`` unless the config
    sets them.

    Args:
        cfg (Config): The merged config; changed in place.

    Returns:
        bool: Whether it started the process group.
    """
    if cfg.get('launcher') != 'pytorch' or accelerator_available() \
            or torch_dist.is_initialized():
        return False
    missing = [
        k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
        if k not in os.environ
    ]
    if missing:
        raise SystemExit(
            f'train.py: error: --launcher pytorch needs the environment '
            f'that torchrun sets, but {missing} are not set; start it with '
            'tools/dist_train.sh CONFIG NPROC or torchrun --nproc_per_node '
            'NPROC tools/train.py CONFIG --launcher pytorch')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        print_log(
            f"no GPU: distributed training on CPUs with the 'gloo' backend "
            f"instead of {dist_cfg.get('backend', 'nccl')!r}",
            logger='current',
            level=logging.WARNING)
    dist_cfg['backend'] = 'gloo'
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    ddp = ('MMDistributedDataParallel', 'DistributedDataParallel')
    if wrapper.get('type', ddp[0]) in ddp:
        wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    return True


def teardown_distributed(wait: bool = True) -> bool:
    """Destroy the default process group, if there is one.

    Called by ``tools/train.py`` and ``tools/test.py`` at the end of a run
    (also when it failed), so that the backend's threads and sockets are
    shut down in order before the interpreter exits.

    Args:
        wait (bool): Wait at a barrier for every rank first, so that no rank
            closes its connections while another still uses them. Pass
            False after an error (the other ranks may never arrive).
            Defaults to True.

    Returns:
        bool: Whether a process group was destroyed.

    Examples:
        >>> teardown_distributed()  # no process group: nothing to do
        False
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return False
    if wait:
        torch_dist.barrier()
    torch_dist.destroy_process_group()
    # The group lives on while a DDP model refers to it; its worker threads
    # must finish (and drop their tensors, which takes the GIL) before the
    # interpreter finalizes, or the process aborts. Collecting the model the
    # caller released destroys the group here, joining its threads.
    gc.collect()
    return True
