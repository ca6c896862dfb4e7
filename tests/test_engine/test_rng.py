# Copyright (c) mmprompt contributors. All rights reserved.
import io
import random

import numpy as np
import torch

from mmprompt.engine import get_rng_state, set_rng_state
from mmprompt.utils import load_checkpoint_file


def test_states_survive_a_weights_only_checkpoint():
    buffer = io.BytesIO()
    torch.save(dict(rng_state=get_rng_state()), buffer)
    expected = (random.random(), np.random.rand(), torch.rand(2))
    buffer.seek(0)
    set_rng_state(load_checkpoint_file(buffer)['rng_state'])
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(2), expected[2])
