# Copyright (c) mmprompt contributors. All rights reserved.
from .adapters import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .clip import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .prompt_learners import *  # noqa: F401,F403
from .text_encoders import *  # noqa: F401,F403
